//! Connector configs are their own factories: a config is decoded from the pipeline
//! YAML, checked with `validate`, then asked to `build` the running connector.

use std::path::{Path, PathBuf};

use arrow::datatypes::{Schema, SchemaRef};

use crate::{Result, Sink, SinkContext, Source, SourceContext};

/// One problem with a connector's configuration, found before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The key the problem is about, relative to the connector's block; `None` for
    /// the block as a whole. The engine maps it back to a file, line and column.
    pub key: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl ConfigIssue {
    pub fn new(key: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            key: key.map(str::to_owned),
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// What plan-time checks may look at besides the config itself.
#[derive(Debug, Clone)]
pub struct PlanContext {
    /// Folder of the pipeline file; relative paths in a config resolve against it.
    pub base_dir: PathBuf,
}

impl PlanContext {
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        Self {
            base_dir: base_dir.into(),
        }
    }

    /// `path` resolved against the pipeline's folder (absolute paths stay as they are).
    pub fn resolve(&self, path: impl AsRef<Path>) -> PathBuf {
        self.base_dir.join(path)
    }
}

/// The decoded configuration of a source. `validate` reports every issue at once.
pub trait SourceConfig: Send + Sync + std::fmt::Debug {
    /// Schema of the batches the source emits (the `documents` columns by default).
    fn schema(&self) -> SchemaRef {
        crate::documents::schema()
    }

    /// Semantic checks beyond what decoding caught, such as a missing folder.
    fn validate(&self, ctx: &PlanContext) -> Vec<ConfigIssue> {
        let _ = ctx;
        Vec::new()
    }

    /// Build the running source.
    fn build(&self, ctx: &SourceContext) -> Result<Box<dyn Source>>;

    /// Other processes may run this source into the same sinks at the same time
    /// (a Kafka consumer group). Epoch numbers are per process, so shared sinks
    /// must then not roll back by epoch number; see [`crate::SinkRole::SharedGroup`].
    fn shares_sinks(&self) -> bool {
        false
    }

    /// This source bounded for `sluice backfill` and narrowed by `options`: it
    /// reads what exists and ends. A source that cannot be bounded, or an option
    /// it cannot honour, is refused with a user error.
    fn backfill(&self, options: &crate::BackfillOptions) -> Result<Box<dyn SourceConfig>> {
        let _ = options;
        Err(crate::ConnectorError::user("this source cannot be backfilled"))
    }

    /// The objects a bounded run would read, for `backfill --dry-run` and
    /// `--emit-to`. None: the source has no object listing (Kafka).
    fn list(
        &self,
        ctx: &SourceContext,
    ) -> Option<futures::future::BoxFuture<'static, Result<Vec<crate::ListedObject>>>> {
        let _ = ctx;
        None
    }

    /// The checkpointed source `state`, changed so that the next run emits the
    /// documents `doc_ids` again (`sluice dlq replay`). A source that cannot
    /// re-read documents says so.
    fn replay(&self, state: serde_json::Value, doc_ids: &[String]) -> Result<serde_json::Value> {
        let _ = (state, doc_ids);
        Err(crate::ConnectorError::user("this source cannot replay documents"))
    }
}

/// Where a sink keeps an epoch log that `sluice sql` can read as Parquet.
#[derive(Debug, Clone)]
pub struct ParquetLogLocation {
    /// URL of the folder, e.g. `file:///abs/out/chunks/`.
    pub url: String,
    /// Schema of the files (the sink's input plus what the sink adds).
    pub schema: SchemaRef,
}

/// Another table `sluice sql` can read for a sink, named after the sink.
#[derive(Debug, Clone)]
pub enum InspectTable {
    /// A Parquet dataset under `url`, Hive-partitioned by the text columns `partitions`.
    ParquetDataset {
        url: String,
        schema: SchemaRef,
        partitions: Vec<String>,
    },
    /// The sink's store, read through its own client (see [`crate::read`]).
    Store(std::sync::Arc<dyn crate::read::SinkTable>),
}

/// The decoded configuration of a sink.
pub trait SinkConfig: Send + Sync + std::fmt::Debug {
    /// Checks against the schema the sink will receive.
    fn validate(&self, ctx: &PlanContext, input: &Schema) -> Vec<ConfigIssue> {
        let _ = (ctx, input);
        Vec::new()
    }

    /// Build the running sink for batches of `input`.
    fn build(&self, ctx: &SinkContext, input: SchemaRef) -> Result<Box<dyn Sink>>;

    /// The Parquet change log this sink writes, if `sluice sql` can read it.
    fn parquet_log(&self, ctx: &SinkContext, input: &SchemaRef) -> Option<ParquetLogLocation> {
        let _ = (ctx, input);
        None
    }

    /// Rebuild the sink's vector index now (`sluice index rebuild`), if it has one.
    /// The future resolves to a line describing what was built.
    fn rebuild_index(
        &self,
        ctx: &SinkContext,
    ) -> Option<futures::future::BoxFuture<'static, Result<String>>> {
        let _ = ctx;
        None
    }

    /// Whether every row this sink writes carries the run's lineage
    /// ([`crate::lineage`]) as columns: the engine adds them to the sink's
    /// input schema at plan time and stamps them on every batch.
    fn keeps_lineage(&self) -> bool {
        false
    }

    /// The table `sluice sql` shows under the sink's name, if not a Parquet log.
    fn inspect_table(&self, ctx: &SinkContext, input: &SchemaRef) -> Option<InspectTable> {
        let _ = (ctx, input);
        None
    }

    /// The table of its store this sink writes, for a store whose rows a model
    /// migration (`sluice migrate`) can copy into a table of their own.
    fn table(&self) -> Option<String> {
        None
    }

    /// This sink writing `table` of the same store instead, taking its
    /// dimension from its input: a model migration's shadow table. `None`: the
    /// store has no tables to migrate between.
    fn with_table(&self, table: &str) -> Option<Box<dyn SinkConfig>> {
        let _ = table;
        None
    }

    /// Drop this sink's table and everything in it (`sluice migrate abort`);
    /// a table that does not exist is no error.
    fn drop_table(&self, ctx: &SinkContext) -> Option<futures::future::BoxFuture<'static, Result<()>>> {
        let _ = ctx;
        None
    }

    /// Point `view`, a name readers outside sluice query, at this sink's table,
    /// in one transaction (`sluice migrate promote` and `rollback`). `None`: the
    /// store has no views, and sluice's own readers follow the migration's
    /// record instead.
    fn serve_as(
        &self,
        ctx: &SinkContext,
        view: &str,
    ) -> Option<futures::future::BoxFuture<'static, Result<()>>> {
        let _ = (ctx, view);
        None
    }
}

/// Check that `input` has an embedding `column` of `FixedSizeList<Float32, dim>` and,
/// when the sink declares a `dimension`, that the two agree.
pub fn check_embedding(input: &Schema, column: &str, declared: Option<usize>) -> Vec<ConfigIssue> {
    use arrow::datatypes::DataType;
    match input.field_with_name(column).map(|f| f.data_type()) {
        Ok(DataType::FixedSizeList(item, dim)) if item.data_type() == &DataType::Float32 => declared
            .filter(|d| *d != *dim as usize)
            .map(|want| {
                ConfigIssue::new(
                    Some("dimension"),
                    format!("the pipeline makes {dim}-dimensional embeddings, this sink declares {want}"),
                )
                .with_hint("the embed stage's model sets the dimension")
            })
            .into_iter()
            .collect(),
        Ok(other) => vec![ConfigIssue::new(
            Some("embedding_column"),
            format!("`{column}` is {other}, a vector sink needs FixedSizeList<Float32, dim>"),
        )],
        Err(_) => vec![
            ConfigIssue::new(None, format!("the input has no column `{column}`"))
                .with_hint("add an embed stage before this sink"),
        ],
    }
}

/// The distance a vector sink's ANN index is built for (`metric:` in the YAML).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Cosine,
    L2,
    Dot,
}

/// `url` with any password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let mut out = match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://{userinfo}@{host}"),
        },
        None => format!("{scheme}://{rest}"),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_name(k) => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// A parameter or option name that holds a secret (`password`, `sslpassword`,
/// `sasl.password`, `secret_access_key`, `token`, ...).
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let word_secret = n.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
        w.ends_with("password")
            || w.ends_with("passwd")
            || matches!(w, "secret" | "token" | "credential" | "credentials" | "apikey")
    });
    word_secret || n.contains("api_key") || n.contains("private_key")
}

/// The secrets inside a URL: the password of its user info and the values of
/// query parameters with a secret's name (`?password=`, `?sslpassword=`).
pub fn url_secrets(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut out = Vec::new();
    if let Some((userinfo, _)) = rest.rsplit_once('@') {
        if let Some((_, password)) = userinfo.split_once(':') {
            out.push(password.to_string());
        }
    }
    for kv in query.split('&') {
        if let Some((k, v)) = kv.split_once('=') {
            if is_secret_name(k) {
                out.push(v.to_string());
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn secret_names_are_words_not_substrings() {
        for yes in [
            "password",
            "sasl.password",
            "sslpassword",
            "secret_access_key",
            "token",
            "api_token",
            "API_KEY",
            "private_key",
        ] {
            assert!(super::is_secret_name(yes), "{yes}");
        }
        for no in [
            "max_tokens",
            "overlap_tokens",
            "key",
            "key_column",
            "table",
            "entity",
        ] {
            assert!(!super::is_secret_name(no), "{no}");
        }
    }
}
