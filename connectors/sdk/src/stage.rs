//! The contract between the engine and a stage: what turns batches into batches.
//!
//! A stage is configured by a [`StageConfig`], which computes its output schema at
//! plan time and builds a [`StageRunner`]:
//! - a [`Transform`] is a pure function of one batch, so the runtime may run several
//!   batches of one stage at once on the blocking pool and still emit them in
//!   input order;
//! - a [`BufferedTransform`] holds rows across batches (a model stage gathers
//!   micro-batches) and is flushed at every barrier, so no row crosses an epoch.
//!
//! Per-document failures become [`DeadLetter`]s in the [`StageOutput`]; an `Err`
//! fails the whole pipeline, and its [`ConnectorError`](crate::ConnectorError)
//! kind says whose fault it is.
//!
//! A stage that upper-cases a column, in full:
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{ArrayRef, AsArray, StringArray};
//! use arrow::datatypes::{DataType, SchemaRef};
//! use arrow::record_batch::RecordBatch;
//! use sluice_connector_sdk::stage::*;
//! use sluice_connector_sdk::{ConfigIssue, PlanContext, Result};
//!
//! #[derive(Debug)]
//! struct Upper;
//!
//! impl StageConfig for Upper {
//!     fn plan(&self, _: &PlanContext, input: &SchemaRef) -> Result<SchemaRef, Vec<ConfigIssue>> {
//!         let mut issues = Vec::new();
//!         require_column(input, "text", &DataType::Utf8, &mut issues);
//!         if issues.is_empty() { Ok(input.clone()) } else { Err(issues) }
//!     }
//!     fn build(&self, _: &StageContext) -> Result<StageRunner> {
//!         Ok(StageRunner::PerBatch(Arc::new(Upper)))
//!     }
//! }
//!
//! impl Transform for Upper {
//!     fn apply(&self, batch: RecordBatch) -> Result<StageOutput> {
//!         let i = batch.schema().index_of("text")?;
//!         let upper: StringArray =
//!             batch.column(i).as_string::<i32>().iter().map(|t| t.map(str::to_uppercase)).collect();
//!         let mut columns = batch.columns().to_vec();
//!         columns[i] = Arc::new(upper) as ArrayRef;
//!         Ok(StageOutput::new(RecordBatch::try_new(batch.schema(), columns)?))
//!     }
//! }
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::metrics::StageMetrics;
use crate::{ConfigIssue, DeadLetter, PlanContext, Result};

/// The decoded configuration of a stage; it is its own factory.
pub trait StageConfig: std::fmt::Debug + Send + Sync {
    /// Checks of the settings alone, run even when the input schema is unknown
    /// (because an earlier stage has errors).
    fn validate(&self) -> Vec<ConfigIssue> {
        Vec::new()
    }

    /// The schema this stage outputs for `input`, or every problem with it.
    /// Files the stage needs (a model, say) are checked here too.
    fn plan(&self, ctx: &PlanContext, input: &SchemaRef) -> Result<SchemaRef, Vec<ConfigIssue>>;

    /// Build what runs the stage.
    fn build(&self, ctx: &StageContext) -> Result<StageRunner>;

    /// What this stage says of itself in the lineage of every row a vector
    /// sink writes ([`crate::lineage`]): column name and value, e.g. the
    /// model's fingerprint. Called after `plan`.
    fn lineage(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The stage's model as a query embedder, for vector search: a stage that
    /// makes vectors offers it, so a query is embedded the way rows were.
    fn query_embedder(&self) -> Option<Arc<dyn QueryEmbedder>> {
        None
    }

    /// This stage with another model (a folder; a relative path resolves
    /// against the pipeline's folder), for a model migration: a stage that
    /// makes vectors offers it, with the columns it reads and writes.
    fn remodel(&self, model: &std::path::Path) -> Option<Remodeled> {
        let _ = model;
        None
    }

    /// The audit table this stage keeps beside its output, if any
    /// ([`AuditTable`]). Called after `plan`.
    fn audit(&self) -> Option<AuditTable> {
        None
    }

    /// Whether this stage takes sensitive values out of the rows (a guard).
    /// A tap on a stage before it would keep those values on disk, so the
    /// plan refuses one.
    fn scrubs(&self) -> bool {
        false
    }
}

/// A stage that makes vectors, made again with another model
/// ([`StageConfig::remodel`]).
#[derive(Debug)]
pub struct Remodeled {
    /// The stage with the other model; `plan` it before anything else.
    pub config: Box<dyn StageConfig>,
    /// The text column it embeds.
    pub text_column: String,
    /// The vector column it adds.
    pub vector_column: String,
}

/// Turns a query text into a vector with a pipeline's own model.
pub trait QueryEmbedder: Send + Sync {
    fn embed_query(&self, text: &str) -> Result<Vec<f32>>;
}

/// What a stage is built with.
#[derive(Clone)]
pub struct StageContext {
    pub name: String,
    pub input: SchemaRef,
    pub output: SchemaRef,
    /// The pipeline's state folder (a stage may keep a cache there).
    pub state_dir: PathBuf,
    /// The counters of this stage; a stage registers its own series on
    /// [`StageMetrics::own`].
    pub metrics: Arc<StageMetrics>,
}

impl StageContext {
    pub fn new(
        name: impl Into<String>,
        input: SchemaRef,
        output: SchemaRef,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        let name = name.into();
        StageContext {
            metrics: Arc::new(StageMetrics {
                name: name.clone(),
                ..Default::default()
            }),
            name,
            input,
            output,
            state_dir: state_dir.into(),
        }
    }
}

/// How the runtime drives a stage.
pub enum StageRunner {
    PerBatch(Arc<dyn Transform>),
    Buffered(Box<dyn BufferedTransform>),
}

/// A stage's output for one batch.
pub struct StageOutput {
    pub batch: RecordBatch,
    pub dead_letters: Vec<DeadLetter>,
    /// Rows for the stage's audit table ([`StageConfig::audit`]), if any.
    pub audit: Option<RecordBatch>,
}

impl StageOutput {
    /// A batch with no dead letters and no audit rows.
    pub fn new(batch: RecordBatch) -> Self {
        StageOutput {
            batch,
            dead_letters: Vec::new(),
            audit: None,
        }
    }

    pub fn with_dead_letters(mut self, letters: Vec<DeadLetter>) -> Self {
        self.dead_letters = letters;
        self
    }
}

/// A table a stage keeps of what it did, beside its output: the runtime
/// writes the rows a stage hands back in [`StageOutput::audit`], with the
/// stage's name and the epoch added (columns `stage` and `epoch`), to
/// `state_dir/audit/<stage>/`, one Parquet file per epoch, as a checkpoint
/// participant; `sluice sql` shows every stage's rows under `name`.
#[derive(Debug, Clone)]
pub struct AuditTable {
    /// The table's name in `sluice sql`, e.g. `guard_findings`.
    pub name: String,
    /// The columns the stage fills (without `stage` and `epoch`).
    pub schema: SchemaRef,
}

/// Runs one stage on one batch. Called from the blocking pool, possibly on several
/// batches at once.
pub trait Transform: Send + Sync {
    fn apply(&self, batch: RecordBatch) -> Result<StageOutput>;
}

/// A stage that holds rows across batches. Called on the blocking pool, one call
/// at a time. Outputs come back whole (one per input batch) and in input order.
pub trait BufferedTransform: Send + Sync {
    /// Take one batch; return the input batches that are now complete.
    fn push(&mut self, batch: RecordBatch) -> Result<Vec<StageOutput>>;
    /// Finish everything held (at a barrier, at the end, or after `max_wait`).
    fn flush(&mut self) -> Result<Vec<StageOutput>>;
    /// Whether rows are held.
    fn has_pending(&self) -> bool;
    /// How long a held row may wait for a fuller micro-batch.
    fn max_wait(&self) -> Duration;
}

/// Check that `input` has `column` of type `ty`, recording a problem otherwise.
pub fn require_column(input: &Schema, column: &str, ty: &DataType, issues: &mut Vec<ConfigIssue>) {
    match input.field_with_name(column) {
        Ok(f) if f.data_type() == ty => {}
        Ok(f) => issues.push(ConfigIssue::new(
            None,
            format!("column `{column}` is {}, this stage needs {ty}", f.data_type()),
        )),
        Err(_) => {
            let have: Vec<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
            issues.push(
                ConfigIssue::new(
                    None,
                    format!(
                        "this stage needs a column `{column}`, its input has {}",
                        have.join(", ")
                    ),
                )
                .with_hint("check the stage order: parse comes before chunk"),
            );
        }
    }
}

/// Check that `input` has a text column (`Utf8` or `LargeUtf8`) named
/// `column`, recording a problem at `key` otherwise: "column `c` is T,
/// {stage} needs text", or "the input has no column `c`" with `hint`.
pub fn require_text(
    input: &Schema,
    column: &str,
    key: &'static str,
    stage: &str,
    hint: Option<&str>,
    issues: &mut Vec<ConfigIssue>,
) {
    match input.field_with_name(column) {
        Ok(f) if matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8) => {}
        Ok(f) => issues.push(ConfigIssue::new(
            Some(key),
            format!("column `{column}` is {}, {stage} needs text", f.data_type()),
        )),
        Err(_) => {
            let issue = ConfigIssue::new(Some(key), format!("the input has no column `{column}`"));
            issues.push(match hint {
                Some(h) => issue.with_hint(h),
                None => issue,
            });
        }
    }
}
