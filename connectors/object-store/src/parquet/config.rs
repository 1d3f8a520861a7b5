//! Configuration of the `parquet` sink.

use arrow::datatypes::{Schema, SchemaRef};
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
    fn validate(&self, _ctx: &PlanContext, input: &Schema) -> Vec<ConfigIssue> {
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
        }
        issues
    }

    fn build(&self, ctx: &SinkContext, input: SchemaRef) -> Result<Box<dyn Sink>> {
        let location = crate::location::resolve(&self.path, &ctx.base_dir, true)?;
        Ok(Box::new(ParquetSink::new(location, input)))
    }

    fn parquet_log(&self, ctx: &SinkContext, input: &SchemaRef) -> Option<ParquetLogLocation> {
        let location = crate::location::resolve(&self.path, &ctx.base_dir, true).ok()?;
        Some(ParquetLogLocation {
            url: location.url,
            schema: super::sink::output_schema(input),
        })
    }
}
