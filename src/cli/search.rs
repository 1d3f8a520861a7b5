//! `sluice search --pipeline FILE [--sink S] [-k N] [--mode M] [--where P] "query"`

use std::path::Path;

use anyhow::Context;

use super::EXIT_OK;
use crate::inspect::OutputFormat;
use crate::search::{self, Request};

pub async fn search(
    pipeline: &Path,
    state: Option<&Path>,
    request: &Request,
    format: OutputFormat,
) -> anyhow::Result<u8> {
    let plan = super::load(pipeline, state)?;
    let found = search::search(&plan, request)
        .await
        .with_context(|| format!("search on `{}`", plan.name))?;
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&found)?),
        _ => print!("{}", found.render()),
    }
    Ok(EXIT_OK)
}
