//! Configuration of the `lancedb` sink.

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::Deserialize;
use sluice_connector_sdk::{
    ConfigIssue, InspectTable, Metric, PlanContext, Result, Sink, SinkConfig, SinkContext,
};

use crate::sink::LanceDbSink;

/// ```yaml
/// sinks:
///   - name: vectors
///     type: lancedb
///     uri: .sluice/lancedb      # a folder (relative to the pipeline file) or s3://bucket/prefix
///     table: chunks
///     dimension: 384            # optional; checked against the plan and the table
///     index: {type: ivf_pq, metric: cosine, after_rows: 100000}
///     full_text: true           # a full-text index on `text`, for text and hybrid search
///     storage_options:          # for s3://, as LanceDB names them; ${ENV} works
///       aws_endpoint: http://127.0.0.1:9000
///       allow_http: "true"
///     max_outage: 60s           # retry this long while the store is unreachable
/// ```
#[derive(Debug, Clone, Deserialize)]
pub struct LanceDbSinkConfig {
    pub uri: String,
    pub table: String,
    #[serde(default)]
    pub dimension: Option<usize>,
    #[serde(default = "default_doc")]
    pub doc_column: String,
    #[serde(default = "default_embedding")]
    pub embedding_column: String,
    #[serde(default)]
    pub index: Option<IndexSpec>,
    /// Keep a full-text index (`full_text: true` or `{column, language}`).
    #[serde(
        default,
        deserialize_with = "sluice_connector_sdk::read::full_text::deserialize"
    )]
    pub full_text: Option<sluice_connector_sdk::read::FullText>,
    /// Passed to LanceDB's object store as they are.
    #[serde(default)]
    pub storage_options: std::collections::BTreeMap<String, String>,
    /// Retry with backoff this long while the store is unreachable, holding the epoch.
    #[serde(default = "default_outage")]
    pub max_outage: sluice_connector_sdk::HumanDuration,
}

fn default_outage() -> sluice_connector_sdk::HumanDuration {
    sluice_connector_sdk::HumanDuration(std::time::Duration::from_secs(60))
}

#[derive(Debug, Clone, Deserialize)]
pub struct IndexSpec {
    #[serde(rename = "type")]
    pub kind: IndexType,
    #[serde(default = "default_metric")]
    pub metric: Metric,
    /// Build the index once the table holds this many rows.
    #[serde(default = "default_after")]
    pub after_rows: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexType {
    IvfPq,
    Hnsw,
}

fn default_doc() -> String {
    "doc_id".into()
}
fn default_embedding() -> String {
    "embedding".into()
}
fn default_metric() -> Metric {
    Metric::Cosine
}
fn default_after() -> usize {
    100_000
}

/// Columns the sink does not store: the change marker and raw bytes.
pub const SKIPPED: &[&str] = &["op", "content"];
pub const EPOCH: &str = "epoch";
/// The column that says which run wrote a row (see `SinkContext::writer`).
pub const WRITER: &str = "sluice_writer";

/// The table's schema for sink input `input`.
pub fn table_schema(input: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = input
        .fields()
        .iter()
        .filter(|f| !SKIPPED.contains(&f.name().as_str()))
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(EPOCH, DataType::Int64, false));
    fields.push(Field::new(WRITER, DataType::Utf8, true));
    std::sync::Arc::new(Schema::new(fields))
}

impl LanceDbSinkConfig {
    pub fn storage_options(&self) -> crate::StorageOptions {
        self.storage_options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The URI with a relative local path resolved against `base_dir`.
    pub fn resolved_uri(&self, base_dir: &std::path::Path) -> String {
        if self.uri.contains("://") {
            self.uri.clone()
        } else {
            base_dir.join(&self.uri).to_string_lossy().into_owned()
        }
    }
}

impl SinkConfig for LanceDbSinkConfig {
    fn validate(&self, _ctx: &PlanContext, input: &Schema) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.table.is_empty()
            || !self
                .table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            issues.push(ConfigIssue::new(
                Some("table"),
                format!("`{}`: use letters, digits, _, - or .", self.table),
            ));
        }
        if let Some(scheme) = self.uri.split_once("://").map(|(s, _)| s) {
            if !["s3", "file", "memory"].contains(&scheme) {
                issues.push(ConfigIssue::new(
                    Some("uri"),
                    format!("`{scheme}://` is not supported; use a folder or s3://"),
                ));
            }
        }
        for added in [EPOCH, WRITER] {
            if input.field_with_name(added).is_ok() {
                issues.push(ConfigIssue::new(
                    None,
                    format!("the input already has a column `{added}`, which this sink adds"),
                ));
            }
        }
        if input.field_with_name(&self.doc_column).is_err() {
            issues.push(ConfigIssue::new(
                Some("doc_column"),
                format!("the input has no column `{}`", self.doc_column),
            ));
        }
        issues.extend(sluice_connector_sdk::config::check_embedding(
            input,
            &self.embedding_column,
            self.dimension,
        ));
        if let Some(ft) = &self.full_text {
            issues.extend(ft.check(input));
        }
        issues
    }

    fn rebuild_index(
        &self,
        ctx: &SinkContext,
    ) -> Option<futures::future::BoxFuture<'static, Result<String>>> {
        let (uri, config) = (self.resolved_uri(&ctx.base_dir), self.clone());
        Some(Box::pin(async move {
            crate::index::rebuild_index(&uri, &config).await
        }))
    }

    fn inspect_table(&self, ctx: &SinkContext, input: &SchemaRef) -> Option<InspectTable> {
        Some(InspectTable::Store(std::sync::Arc::new(
            crate::read::LanceTable {
                uri: self.resolved_uri(&ctx.base_dir),
                table: self.table.clone(),
                options: self.storage_options(),
                schema: table_schema(input),
                embedding: self.embedding_column.clone(),
                full_text: self.full_text.is_some(),
                metric: self.index.as_ref().map_or(Metric::Cosine, |i| i.metric),
            },
        )))
    }

    fn keeps_lineage(&self) -> bool {
        true
    }

    fn table(&self) -> Option<String> {
        Some(self.table.clone())
    }

    fn with_table(&self, table: &str) -> Option<Box<dyn SinkConfig>> {
        Some(Box::new(LanceDbSinkConfig {
            table: table.to_string(),
            dimension: None,
            ..self.clone()
        }))
    }

    /// LanceDB has no views: sluice's readers follow the migration's record.
    fn drop_table(&self, ctx: &SinkContext) -> Option<futures::future::BoxFuture<'static, Result<()>>> {
        let (uri, options, table) = (
            self.resolved_uri(&ctx.base_dir),
            self.storage_options(),
            self.table.clone(),
        );
        Some(Box::pin(async move {
            crate::drop_table(&uri, &table, &options).await
        }))
    }

    fn build(&self, ctx: &SinkContext, input: SchemaRef) -> Result<Box<dyn Sink>> {
        let store = LanceDbSink::new(
            self.clone(),
            self.resolved_uri(&ctx.base_dir),
            table_schema(&input),
            ctx,
        );
        Ok(Box::new(sluice_connector_sdk::writer::BufferedSink::new(
            &ctx.name, store,
        )))
    }
}
