//! `sluice guard report`: what the guard stages of a pipeline found, from
//! the `guard_findings` audit table: counts by kind and action, and the
//! documents with the most findings. Never a matched value: the table holds
//! none.

use std::path::Path;

use super::EXIT_OK;
use crate::inspect::{self, OutputFormat};
use crate::Error;

/// The audit table the guard stage keeps.
const FINDINGS: &str = "guard_findings";

pub async fn report(
    pipeline: &Path,
    state: Option<&Path>,
    top: usize,
    format: OutputFormat,
) -> anyhow::Result<u8> {
    let plan = super::load(pipeline, state)?;
    if !plan
        .stages
        .iter()
        .any(|s| s.audit.as_ref().is_some_and(|a| a.name == FINDINGS))
    {
        return Err(Error::Usage(format!("{} has no guard stage", pipeline.display())).into());
    }
    let by_kind = inspect::query(
        &plan,
        &format!(
            "SELECT kind, action, count(*) AS findings, count(DISTINCT document) AS documents \
             FROM {FINDINGS} GROUP BY kind, action ORDER BY findings DESC, kind, action"
        ),
    )
    .await?;
    let top_docs = inspect::query(
        &plan,
        &format!(
            "SELECT document, count(*) AS findings, \
               array_to_string(array_sort(array_agg(DISTINCT kind)), ', ') AS kinds, max(epoch) AS last_epoch \
             FROM {FINDINGS} GROUP BY document ORDER BY findings DESC, document LIMIT {top}"
        ),
    )
    .await?;
    let empty = by_kind.iter().all(|b| b.num_rows() == 0);
    match format {
        OutputFormat::Table if empty => println!("no findings"),
        OutputFormat::Table => {
            println!(
                "findings by kind and action\n{}",
                inspect::format(&by_kind, format)?
            );
            println!(
                "\ndocuments with the most findings\n{}",
                inspect::format(&top_docs, format)?
            );
        }
        _ => {
            println!("{}", inspect::format(&by_kind, format)?);
            println!("{}", inspect::format(&top_docs, format)?);
        }
    }
    Ok(EXIT_OK)
}
