//! Configuration of the `parquet` sink.

use arrow::datatypes::{Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Deserialize;
use sluice_connector_sdk::config::ParquetLogLocation;
use sluice_connector_sdk::{ConfigIssue, PlanContext, Result, Sink, SinkConfig, SinkContext};

use super::sink::{ParquetSink, EPOCH_COLUMN};

/// ```yaml
/// sinks:
///   - name: chunks
///     type: parquet
///     path: ./out/chunks    # folder relative to the pipeline file, or a file:// URL
/// ```
#[derive(Debug, Clone, Deserialize)]
pub struct ParquetSinkConfig {
    pub path: String,
}

impl SinkConfig for ParquetSinkConfig {
    fn validate(&self, ctx: &PlanContext, input: &Schema) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if input.field_with_name(EPOCH_COLUMN).is_ok() {
            issues.push(
                ConfigIssue::new(
                    None,
                    format!("the input already has a column `{EPOCH_COLUMN}`, which this sink adds"),
                )
                .with_hint("rename it in a sql stage"),
            );
        }
        if self.path.contains("://") && !self.path.starts_with("file://") {
            issues.push(ConfigIssue::new(
                Some("path"),
                format!(
                    "`{}`: only local folders and file:// URLs are built in",
                    self.path
                ),
            ));
        } else {
            let local = self.path.strip_prefix("file://").unwrap_or(&self.path);
            issues.extend(existing_schema_issues(&ctx.resolve(local), &self.path, input));
        }
        issues
    }

    fn build(&self, ctx: &SinkContext, input: SchemaRef) -> Result<Box<dyn Sink>> {
        let location = crate::location::resolve(&self.path, &ctx.base_dir, true)?;
        Ok(Box::new(ParquetSink::new(location, input, ctx.epoch_stem())))
    }

    fn parquet_log(&self, ctx: &SinkContext, input: &SchemaRef) -> Option<ParquetLogLocation> {
        let location = crate::location::resolve(&self.path, &ctx.base_dir, true).ok()?;
        Some(ParquetLogLocation {
            url: location.url,
            schema: super::sink::output_schema(input),
        })
    }
}

/// Columns whose type differs between `input` and the newest file already in
/// `folder`: writing them would leave a log that cannot be read as one table (an
/// embedding of another dimension, say).
fn existing_schema_issues(folder: &std::path::Path, shown: &str, input: &Schema) -> Vec<ConfigIssue> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let newest = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains("epoch-") && n.ends_with(".parquet"))
        })
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let Some(file) = newest else {
        return Vec::new();
    };
    let existing = match std::fs::File::open(&file)
        .map_err(|e| e.to_string())
        .and_then(|f| ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| e.to_string()))
    {
        Ok(reader) => reader.schema().clone(),
        Err(e) => {
            return vec![ConfigIssue::new(
                Some("path"),
                format!("cannot read the existing {}: {e}", file.display()),
            )]
        }
    };
    input
        .fields()
        .iter()
        .filter_map(|f| {
            let old = existing.field_with_name(f.name()).ok()?;
            (old.data_type() != f.data_type()).then(|| {
                ConfigIssue::new(
                    Some("path"),
                    format!(
                        "`{}` in {shown} is {} in the files already there, and this pipeline writes {}",
                        f.name(),
                        old.data_type(),
                        f.data_type()
                    ),
                )
                .with_hint("write to a new path, or remove the old output (and the state_dir) to start over")
            })
        })
        .collect()
}
