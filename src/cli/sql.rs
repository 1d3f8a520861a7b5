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
) -> anyhow::Result<u8> {
    let plan = super::load(pipeline, state)?;
    let batches = inspect::query(&plan, query)
        .await
        .with_context(|| format!("query on `{}`", plan.name))?;
    println!("{}", inspect::format(&batches, format)?);
    Ok(EXIT_OK)
}
