//! Configuration of the `pgvector` sink.

use std::time::Duration;

use arrow::datatypes::{Schema, SchemaRef};
use serde::Deserialize;
use sluice_connector_sdk::read::FullText;
use sluice_connector_sdk::{
    ConfigIssue, HumanDuration, InspectTable, Metric, PlanContext, Result, Sink, SinkConfig, SinkContext,
};

use crate::columns::{self, Column};
use crate::sink::PgVectorSink;

/// ```yaml
/// sinks:
///   - name: vectors
///     type: pgvector
///     url: postgresql://sluice:${PGPASSWORD}@127.0.0.1:5432/rag
///     table: chunks
///     dimension: 384          # optional; checked against the plan and the table
///     tls: disable            # or require: TLS or no connection
///     ca_file: ca.pem         # optional, with tls: require; trusted besides the web PKI roots
///     index: {type: hnsw, metric: cosine}
///     full_text: true         # a stored to_tsvector('english', text) with a GIN index, for text and hybrid search
///     max_outage: 60s         # retry this long while the database is unreachable
/// ```
#[derive(Clone, Deserialize)]
pub struct PgVectorSinkConfig {
    pub url: String,
    pub table: String,
    #[serde(default)]
    pub dimension: Option<usize>,
    #[serde(default = "default_id")]
    pub id_column: String,
    #[serde(default = "default_doc")]
    pub doc_column: String,
    #[serde(default = "default_embedding")]
    pub embedding_column: String,
    /// Columns to store; by default every column of a supported type.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    #[serde(default)]
    pub tls: Tls,
    /// A PEM file of CA certificates (relative to the pipeline file).
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub index: IndexSpec,
    /// Keep a full-text index (`full_text: true` or `{column, language}`).
    #[serde(
        default,
        deserialize_with = "sluice_connector_sdk::read::full_text::deserialize"
    )]
    pub full_text: Option<FullText>,
    #[serde(default = "default_outage")]
    pub max_outage: HumanDuration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tls {
    #[default]
    Disable,
    Require,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IndexSpec {
    #[serde(default = "default_index_type", rename = "type")]
    pub kind: IndexType,
    #[serde(default = "default_metric")]
    pub metric: Metric,
}

impl Default for IndexSpec {
    fn default() -> Self {
        IndexSpec {
            kind: default_index_type(),
            metric: default_metric(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexType {
    Hnsw,
    None,
}

/// The pgvector operator class of an index for `metric`.
pub fn ops(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "vector_cosine_ops",
        Metric::L2 => "vector_l2_ops",
        Metric::Dot => "vector_ip_ops",
    }
}

fn default_id() -> String {
    "chunk_id".into()
}
fn default_doc() -> String {
    "doc_id".into()
}
fn default_embedding() -> String {
    "embedding".into()
}
fn default_index_type() -> IndexType {
    IndexType::Hnsw
}
fn default_metric() -> Metric {
    Metric::Cosine
}
fn default_outage() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

pub use sluice_connector_sdk::config::redact_url as redact;

impl std::fmt::Debug for PgVectorSinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgVectorSinkConfig")
            .field("url", &redact(&self.url))
            .field("table", &self.table)
            .field("dimension", &self.dimension)
            .finish_non_exhaustive()
    }
}

/// The name of every stored tsvector column starts so.
pub const FTS_PREFIX: &str = "sluice_fts_";

/// A stable 32-bit hash (FNV-1a), for a name that follows its expression.
fn fnv1a(text: &str) -> u32 {
    text.bytes()
        .fold(0x811c_9dc5, |h: u32, b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

impl PgVectorSinkConfig {
    /// The TLS connector `tls: require` uses; `None` with `tls: disable`.
    pub(crate) fn tls_connector(
        &self,
        ctx: &SinkContext,
    ) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>> {
        match self.tls {
            Tls::Disable => Ok(None),
            Tls::Require => {
                crate::tls::connector(self.ca_file.as_ref().map(|f| ctx.base_dir.join(f)).as_deref())
                    .map(Some)
            }
        }
    }

    /// The columns written, in order, or every problem with them.
    pub fn columns(&self, input: &Schema) -> std::result::Result<Vec<Column>, Vec<ConfigIssue>> {
        columns::select(input, self)
    }

    /// The stored `tsvector` column the full-text index is built on, and the
    /// expression PostgreSQL generates it with. The column is named after the
    /// expression, so a new column or language is a new column.
    pub fn full_text_column(&self) -> Option<(String, String)> {
        self.full_text.as_ref().map(|ft| {
            let expression = format!(
                "to_tsvector('{}'::regconfig, coalesce({}, ''))",
                ft.language.name(),
                crate::sink::quote(&ft.column)
            );
            (format!("{FTS_PREFIX}{:08x}", fnv1a(&expression)), expression)
        })
    }
}

impl SinkConfig for PgVectorSinkConfig {
    fn validate(&self, ctx: &PlanContext, input: &Schema) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if let Some(ca) = &self.ca_file {
            if self.tls != Tls::Require {
                issues.push(ConfigIssue::new(
                    Some("ca_file"),
                    "`ca_file` needs `tls: require`",
                ));
            } else if let Err(e) = crate::tls::read_ca(&ctx.base_dir.join(ca)) {
                issues.push(ConfigIssue::new(Some("ca_file"), e.describe()));
            }
        }
        if !self.url.starts_with("postgres://") && !self.url.starts_with("postgresql://") {
            issues.push(ConfigIssue::new(
                Some("url"),
                format!("`{}` is not a postgresql:// URL", redact(&self.url)),
            ));
        }
        if !is_identifier(&self.table) {
            issues.push(ConfigIssue::new(
                Some("table"),
                format!("`{}`: use letters, digits and _ (at most 63)", self.table),
            ));
        }
        issues.extend(sluice_connector_sdk::config::check_embedding(
            input,
            &self.embedding_column,
            self.dimension,
        ));
        for (key, col) in [("id_column", &self.id_column), ("doc_column", &self.doc_column)] {
            if input.field_with_name(col).is_err() {
                issues.push(ConfigIssue::new(
                    Some(key),
                    format!("the input has no column `{col}`"),
                ));
            }
        }
        match self.columns(input) {
            Err(more) => issues.extend(more),
            Ok(stored) => {
                if let Some(ft) = &self.full_text {
                    let problems = ft.check(input);
                    if problems.is_empty() && !stored.iter().any(|c| c.name == ft.column) {
                        issues.push(ConfigIssue::new(
                            Some("full_text.column"),
                            format!("`{}` is not among the `columns` stored", ft.column),
                        ));
                    }
                    issues.extend(problems);
                }
            }
        }
        issues
    }

    fn build(&self, ctx: &SinkContext, input: SchemaRef) -> Result<Box<dyn Sink>> {
        let columns = self.columns(&input).map_err(|issues| {
            sluice_connector_sdk::ConnectorError::user(
                issues
                    .into_iter()
                    .map(|i| i.message)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let store = PgVectorSink::new(self.clone(), columns, ctx, self.tls_connector(ctx)?);
        Ok(Box::new(sluice_connector_sdk::writer::BufferedSink::new(
            &ctx.name, store,
        )))
    }

    fn keeps_lineage(&self) -> bool {
        true
    }

    fn table(&self) -> Option<String> {
        Some(self.table.clone())
    }

    fn with_table(&self, table: &str) -> Option<Box<dyn SinkConfig>> {
        Some(Box::new(PgVectorSinkConfig {
            table: table.to_string(),
            dimension: None,
            ..self.clone()
        }))
    }

    fn drop_table(&self, ctx: &SinkContext) -> Option<futures::future::BoxFuture<'static, Result<()>>> {
        Some(crate::tables::drop_table(self, ctx))
    }

    fn serve_as(
        &self,
        ctx: &SinkContext,
        view: &str,
    ) -> Option<futures::future::BoxFuture<'static, Result<()>>> {
        Some(crate::tables::serve_as(self, ctx, view))
    }

    fn inspect_table(&self, ctx: &SinkContext, input: &SchemaRef) -> Option<InspectTable> {
        // A plan that does not validate has no table to read.
        let columns = self.columns(input).ok()?;
        let tls = self.tls_connector(ctx).ok()?;
        Some(InspectTable::Store(std::sync::Arc::new(crate::read::PgTable {
            config: self.clone(),
            columns,
            tls,
        })))
    }

    fn rebuild_index(
        &self,
        ctx: &SinkContext,
    ) -> Option<futures::future::BoxFuture<'static, Result<String>>> {
        let sink = self
            .tls_connector(ctx)
            .map(|tls| PgVectorSink::new(self.clone(), Vec::new(), ctx, tls));
        Some(Box::pin(async move { sink?.rebuild_index().await }))
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("postgresql://u:s3cret@h:5432/db"),
            "postgresql://u:***@h:5432/db"
        );
        assert_eq!(redact("postgresql://u@h/db"), "postgresql://u@h/db");
        assert_eq!(redact("postgresql://h/db"), "postgresql://h/db");
        // Regression: a password in the query string was printed as given.
        assert_eq!(
            redact("postgresql://u@h/db?sslmode=require&password=s3cret"),
            "postgresql://u@h/db?sslmode=require&password=***"
        );
    }
}
