//! `sluice dlq list`

use std::path::Path;

use super::EXIT_OK;
use crate::inspect::{self, OutputFormat};

fn quote(s: &str) -> String {
    s.replace('\'', "''")
}

pub async fn list(
    pipeline: &Path,
    stage: Option<String>,
    doc_id: Option<String>,
    since: Option<String>,
    format: OutputFormat,
) -> anyhow::Result<u8> {
    let plan = crate::spec::load_file(pipeline).map_err(crate::Error::from)?;
    let mut filters = Vec::new();
    if let Some(s) = stage {
        filters.push(format!("stage = '{}'", quote(&s)));
    }
    if let Some(d) = doc_id {
        filters.push(format!("strpos(doc_id, '{}') > 0", quote(&d)));
    }
    if let Some(t) = since {
        chrono::DateTime::parse_from_rfc3339(&t)
            .map_err(|e| crate::Error::Sql(format!("--since `{t}`: {e}")))?;
        filters.push(format!("time >= TIMESTAMP '{}'", quote(&t)));
    }
    let filter = if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    };
    let sql = format!("SELECT doc_id, stage, error, time FROM dead_letters {filter} ORDER BY time, doc_id");
    let batches = inspect::query(&plan, &sql).await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows == 0 && format == OutputFormat::Table {
        println!("no dead letters");
    } else {
        println!("{}", inspect::format(&batches, format)?);
    }
    Ok(EXIT_OK)
}
