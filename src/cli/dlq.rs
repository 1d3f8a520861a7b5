//! `sluice dlq list | show | replay`

use std::path::Path;

use arrow::array::AsArray;

use super::EXIT_OK;
use crate::inspect::{self, OutputFormat};
use crate::Error;

fn quote(s: &str) -> String {
    s.replace('\'', "''")
}

/// Filters shared by `list` and `replay`.
#[derive(Debug, Default, clap::Args)]
pub struct Filters {
    /// Only letters from this stage (`source` for the source).
    #[arg(long)]
    pub stage: Option<String>,
    /// Only letters whose doc_id contains this.
    #[arg(long)]
    pub doc_id: Option<String>,
    /// Only letters at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
}

impl Filters {
    fn where_clause(&self) -> crate::Result<String> {
        let mut filters = Vec::new();
        if let Some(s) = &self.stage {
            filters.push(format!("stage = '{}'", quote(s)));
        }
        if let Some(d) = &self.doc_id {
            filters.push(format!("strpos(doc_id, '{}') > 0", quote(d)));
        }
        if let Some(t) = &self.since {
            chrono::DateTime::parse_from_rfc3339(t).map_err(|e| Error::Sql(format!("--since `{t}`: {e}")))?;
            filters.push(format!("time >= TIMESTAMP '{}'", quote(t)));
        }
        Ok(if filters.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", filters.join(" AND "))
        })
    }
}

/// The single `count(...)` of a query's answer.
fn count(batches: &[arrow::record_batch::RecordBatch]) -> i64 {
    batches[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0)
}

fn rows(batches: &[arrow::record_batch::RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

/// `sluice dlq list`: the open letters, oldest first, errors cut to one line.
pub async fn list(
    pipeline: &Path,
    state: Option<&Path>,
    filters: Filters,
    format: OutputFormat,
) -> anyhow::Result<u8> {
    let plan = super::load(pipeline, state)?;
    let error = if format == OutputFormat::Table {
        "CASE WHEN length(error) > 100 THEN substr(error, 1, 99) || '…' ELSE error END AS error"
    } else {
        "error"
    };
    let sql = format!(
        "SELECT id, doc_id, stage, {error}, time FROM dead_letters {} ORDER BY time, doc_id",
        filters.where_clause()?
    );
    let batches = inspect::query(&plan, &sql).await?;
    if rows(&batches) == 0 && format == OutputFormat::Table {
        println!("no dead letters");
    } else {
        println!("{}", inspect::format(&batches, format)?);
    }
    Ok(EXIT_OK)
}

/// `sluice dlq show ID`: one letter, whole, with its document's history.
pub async fn show(pipeline: &Path, state: Option<&Path>, id: &str) -> anyhow::Result<u8> {
    let plan = super::load(pipeline, state)?;
    let sql = format!(
        "SELECT id, doc_id, version, stage, time, epoch, coalesce(status, 'open') AS status, error \
         FROM dead_letters_log WHERE id = '{}'",
        quote(id)
    );
    let batches = inspect::query(&plan, &sql).await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Err(Error::Sql(format!("no dead letter with id `{id}` (see `sluice dlq list`)")).into());
    };
    let schema = batch.schema();
    for (i, field) in schema.fields().iter().enumerate() {
        let value = arrow::util::display::array_value_to_string(batch.column(i), 0)?;
        println!("{:<8} {value}", field.name());
    }
    let doc = batch
        .column_by_name("doc_id")
        .expect("selected")
        .as_string::<i32>()
        .value(0);
    let open = inspect::query(
        &plan,
        &format!(
            "SELECT count(*) AS n FROM dead_letters WHERE doc_id = '{}'",
            quote(doc)
        ),
    )
    .await?;
    let still_open = count(&open) > 0;
    if !still_open {
        println!("\nthis document has been ingested since: the letter is resolved");
    }
    Ok(EXIT_OK)
}

/// `sluice dlq replay`: forget the dead-lettered documents in the source's
/// checkpoint, then run the pipeline, which reads them again.
pub async fn replay(pipeline: &Path, state: Option<&Path>, filters: Filters) -> anyhow::Result<u8> {
    let plan = super::load(pipeline, state)?;
    let doc_ids = crate::dlq::letter_documents(&plan, &filters.where_clause()?).await?;
    if doc_ids.is_empty() {
        println!("no dead letters to replay");
        return Ok(EXIT_OK);
    }
    // Held through the run below (which shares it): nothing else may resume
    // from the checkpoint between the rewrite and the run.
    let _lock = crate::checkpoint::StateLock::acquire(&plan.state_dir)?;
    crate::dlq::forget(&plan, &doc_ids)?;
    println!("replaying {} dead-lettered documents", doc_ids.len());
    super::run::run(pipeline, state, false).await?;
    let list = doc_ids
        .iter()
        .map(|d| format!("'{}'", quote(d)))
        .collect::<Vec<_>>()
        .join(", ");
    let open = inspect::query(
        &plan,
        &format!("SELECT count(DISTINCT doc_id) AS n FROM dead_letters WHERE doc_id IN ({list})"),
    )
    .await?;
    let failed = count(&open) as usize;
    println!(
        "replayed {}: {} now succeed, {failed} failed again (sluice dlq list)",
        doc_ids.len(),
        doc_ids.len() - failed
    );
    Ok(EXIT_OK)
}
