//! `sluice lineage`: where one chunk came from and where it is now. Every
//! sink table of the pipeline that has a `chunk_id` column is asked for the
//! chunk; the rows found say the source document and version, the chunk's
//! place in it, the epoch that wrote it, and (in a vector sink) the lineage
//! the row was stamped with. The pipeline's stages say their settings.

use serde::Serialize;
use serde_json::{Map, Value};
use sluice_connector_sdk::lineage::{MODEL_FINGERPRINT, MODEL_ID, PIPELINE_VERSION};

use crate::plan::Plan;
use crate::{Error, Result};

/// One sink's row of the chunk.
#[derive(Debug, Serialize)]
pub struct Holder {
    pub sink: String,
    pub row: Map<String, Value>,
}

/// What `sluice lineage` reports.
#[derive(Debug, Serialize)]
pub struct ChunkLineage {
    pub chunk_id: String,
    pub pipeline: String,
    /// The version of the pipeline file as it is now.
    pub current_version: String,
    /// The sinks holding the chunk, with their row.
    pub held_by: Vec<Holder>,
    /// Sinks with chunks that do not hold this one.
    pub not_in: Vec<String>,
    /// Each stage: name, type and settings.
    pub stages: Vec<(String, String, String)>,
}

/// Columns shown of a row: where the chunk came from and what made it.
const SHOWN: &[&str] = &[
    "doc_id",
    "version",
    "chunk_index",
    "char_start",
    "char_end",
    "token_count",
    "epoch",
    "pipeline_name",
    "pipeline_version",
    "chunk_settings",
    "model_id",
    "model_fingerprint",
];

/// A chunk id is 32 hex digits; anything else is refused before any query.
pub fn check_chunk_id(id: &str) -> Result<()> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "`{id}` is not a chunk id (32 hexadecimal digits, the `chunk_id` column)"
        )))
    }
}

/// Find `chunk_id` in every sink of `plan`.
pub async fn find(plan: &Plan, chunk_id: &str) -> Result<ChunkLineage> {
    check_chunk_id(chunk_id)?;
    let ctx = super::session(plan).await?;
    let mut held_by = Vec::new();
    let mut not_in = Vec::new();
    for sink in &plan.sinks {
        let Ok(table) = ctx.table(sink.name.as_str()).await else {
            continue;
        };
        let schema = table.schema().as_arrow().clone();
        if schema.field_with_name("chunk_id").is_err() {
            continue;
        }
        let columns: Vec<String> = SHOWN
            .iter()
            .filter(|c| schema.field_with_name(c).is_ok())
            .map(|c| format!("\"{c}\""))
            .collect();
        let sql = format!(
            "SELECT {} FROM \"{}\" WHERE chunk_id = '{chunk_id}' LIMIT 1",
            columns.join(", "),
            sink.name
        );
        let batches = ctx.sql(&sql).await?.collect().await?;
        let json = super::format(&batches, super::OutputFormat::Json)?;
        let rows: Vec<Map<String, Value>> = serde_json::from_str(json.trim()).unwrap_or_default();
        match rows.into_iter().next() {
            Some(row) => held_by.push(Holder {
                sink: sink.name.clone(),
                row,
            }),
            None => not_in.push(sink.name.clone()),
        }
    }
    if held_by.is_empty() {
        return Err(Error::Usage(format!(
            "no sink of `{}` holds chunk {chunk_id}",
            plan.name
        )));
    }
    Ok(ChunkLineage {
        chunk_id: chunk_id.to_string(),
        pipeline: plan.name.clone(),
        current_version: plan.lineage.get(PIPELINE_VERSION).unwrap_or_default().to_string(),
        held_by,
        not_in,
        stages: plan
            .stages
            .iter()
            .map(|s| {
                let settings = format!("{:?}", s.config);
                let settings = crate::telemetry::secrets::scrub(&settings).into_owned();
                (s.name.clone(), s.kind.clone(), settings)
            })
            .collect(),
    })
}

impl ChunkLineage {
    /// The first value of `column` among the rows found.
    fn value(&self, column: &str) -> Option<String> {
        self.held_by.iter().find_map(|h| match h.row.get(column)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        })
    }

    /// The chain, for a person to read.
    pub fn render(&self) -> String {
        let v = |c: &str| self.value(c).unwrap_or_else(|| "?".into());
        let mut out = format!("chunk {} of pipeline `{}`\n", self.chunk_id, self.pipeline);
        out.push_str(&format!(
            "  source     {} (version {})\n",
            v("doc_id"),
            v("version")
        ));
        out.push_str(&format!(
            "  chunk      #{}, characters {}..{}, {} tokens\n",
            v("chunk_index"),
            v("char_start"),
            v("char_end"),
            v("token_count")
        ));
        if let Some(version) = self.value(PIPELINE_VERSION) {
            let now = if version == self.current_version {
                "the file as it is now".to_string()
            } else {
                format!("the file is now {}", self.current_version)
            };
            out.push_str(&format!(
                "  written by version {version} ({now}), chunk settings {}\n",
                v("chunk_settings")
            ));
        }
        if let Some(model) = self.value(MODEL_ID) {
            out.push_str(&format!(
                "  model      {model} (fingerprint {})\n",
                v(MODEL_FINGERPRINT)
            ));
        }
        for (name, kind, settings) in &self.stages {
            out.push_str(&format!("  stage      {name} ({kind}): {settings}\n"));
        }
        for h in &self.held_by {
            let epoch = h
                .row
                .get("epoch")
                .map(|e| format!(", epoch {e}"))
                .unwrap_or_default();
            out.push_str(&format!("  held by    {}{epoch}\n", h.sink));
        }
        for s in &self.not_in {
            out.push_str(&format!("  not in     {s}\n"));
        }
        out
    }
}
