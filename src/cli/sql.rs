//! `sluice sql --pipeline FILE "SELECT ..."`

use std::path::Path;

use anyhow::Context;

use super::EXIT_OK;
use crate::inspect::{self, OutputFormat};

pub async fn sql(
    pipeline: &Path,
    state: Option<&Path>,
    query: &str,
    format: OutputFormat,
    limits: inspect::QueryLimits,
) -> anyhow::Result<u8> {
    let plan = super::load(pipeline, state)?;
    let batches = inspect::query_within(&plan, query, limits)
        .await
        .with_context(|| format!("query on `{}`", plan.name))?;
    println!("{}", inspect::format(&batches, format)?);
    Ok(EXIT_OK)
}
