//! Stages turn one batch into another: [`parse`], [`chunk`] and [`sql`].
//!
//! A stage is configured by a [`StageConfig`], which computes its output schema at
//! plan time and builds a [`Transform`]. A transform is a pure function of one
//! batch, so the runtime may run several batches of one stage at once on the
//! blocking pool and still emit them in input order. Per-document failures become
//! [`DeadLetter`]s; an `Err` fails the whole pipeline.

pub mod chunk;
pub mod parse;
pub mod sql;

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use sluice_connector_sdk::{ConfigIssue, DeadLetter, PlanContext};

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

    /// Build the transform that runs the stage.
    fn build(&self, ctx: &StageContext) -> crate::Result<Arc<dyn Transform>>;
}

/// What a stage is built with.
#[derive(Debug, Clone)]
pub struct StageContext {
    pub name: String,
    pub input: SchemaRef,
    pub output: SchemaRef,
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
