//! Stages turn batches into batches: [`parse`], [`chunk`], [`embed`] and [`sql`].
//!
//! A stage is configured by a [`StageConfig`], which computes its output schema at
//! plan time and builds a [`StageRunner`]:
//! - a [`Transform`] is a pure function of one batch, so the runtime may run several
//!   batches of one stage at once on the blocking pool and still emit them in
//!   input order;
//! - a [`BufferedTransform`] holds rows across batches (the embed stage gathers
//!   micro-batches) and is flushed at every barrier, so no row crosses an epoch.
//!
//! Per-document failures become [`DeadLetter`]s; an `Err` fails the whole pipeline.

pub mod chunk;
#[cfg(feature = "embed")]
pub mod embed;
pub mod parse;
pub mod sql;

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use sluice_connector_sdk::{ConfigIssue, DeadLetter, PlanContext};

use crate::telemetry::metrics::StageMetrics;

pub use chunk::ChunkConfig;
pub use parse::ParseConfig;
pub use sql::SqlConfig;

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
    fn build(&self, ctx: &StageContext) -> crate::Result<StageRunner>;

    /// The stage's model as a query embedder, for `vector_search` (embed only).
    fn query_embedder(&self) -> Option<Arc<dyn QueryEmbedder>> {
        None
    }
}

/// Turns a query text into a vector with a pipeline's own model.
pub trait QueryEmbedder: Send + Sync {
    fn embed_query(&self, text: &str) -> std::result::Result<Vec<f32>, String>;
}

/// What a stage is built with.
#[derive(Clone)]
pub struct StageContext {
    pub name: String,
    pub input: SchemaRef,
    pub output: SchemaRef,
    /// The pipeline's state folder (the embed stage keeps its cache there).
    pub state_dir: std::path::PathBuf,
    /// The counters of this stage.
    pub metrics: Arc<StageMetrics>,
}

impl StageContext {
    pub fn new(
        name: impl Into<String>,
        input: SchemaRef,
        output: SchemaRef,
        state_dir: impl Into<std::path::PathBuf>,
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
}

/// Runs one stage on one batch. Called from the blocking pool, possibly on several
/// batches at once.
pub trait Transform: Send + Sync {
    fn apply(&self, batch: RecordBatch) -> crate::Result<StageOutput>;
}

/// A stage that holds rows across batches. Called on the blocking pool, one call
/// at a time. Outputs come back whole (one per input batch) and in input order.
pub trait BufferedTransform: Send + Sync {
    /// Take one batch; return the input batches that are now complete.
    fn push(&mut self, batch: RecordBatch) -> crate::Result<Vec<StageOutput>>;
    /// Finish everything held (at a barrier, at the end, or after `max_wait`).
    fn flush(&mut self) -> crate::Result<Vec<StageOutput>>;
    /// Whether rows are held.
    fn has_pending(&self) -> bool;
    /// How long a held row may wait for a fuller micro-batch.
    fn max_wait(&self) -> std::time::Duration;
}

/// Check that `input` has `column` of type `ty`, recording a problem otherwise.
pub(crate) fn require_column(input: &Schema, column: &str, ty: &DataType, issues: &mut Vec<ConfigIssue>) {
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
