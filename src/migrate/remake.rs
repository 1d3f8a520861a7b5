//! The shadow's vectors: the live sink's rows, their vector column dropped
//! and made again by the migration's model, in the stage's own batcher (so
//! its embed cache and micro-batching apply). Rows held by the batcher are
//! flushed before each commit, so none crosses an epoch.

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use sluice_connector_sdk::stage::{BufferedTransform, StageContext, StageOutput, StageRunner, Transform};
use sluice_connector_sdk::{ConnectorError, DeadLetter, Result};

use super::plan::Shadow;

/// A per-batch stage driven like a buffered one.
struct EachBatch {
    transform: Arc<dyn Transform>,
    done: Vec<StageOutput>,
}

impl BufferedTransform for EachBatch {
    fn push(&mut self, batch: RecordBatch) -> Result<Vec<StageOutput>> {
        self.done.push(self.transform.apply(batch)?);
        Ok(std::mem::take(&mut self.done))
    }
    fn flush(&mut self) -> Result<Vec<StageOutput>> {
        Ok(std::mem::take(&mut self.done))
    }
    fn has_pending(&self) -> bool {
        false
    }
    fn max_wait(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

pub struct Remake {
    /// Taken while a call runs on the blocking pool.
    stage: Option<Box<dyn BufferedTransform>>,
    /// What the stage reads.
    base: SchemaRef,
    /// Where the documents the stage refuses go.
    letters: Arc<Mutex<Vec<DeadLetter>>>,
}

impl Remake {
    /// The shadow's stage, built to write `output` (the shadow's input before
    /// its lineage), with its cache under `cache_dir`.
    pub fn build(
        name: &str,
        shadow: &Shadow,
        output: SchemaRef,
        cache_dir: &std::path::Path,
        letters: Arc<Mutex<Vec<DeadLetter>>>,
    ) -> Result<Remake> {
        let ctx = StageContext::new(
            format!("{name} (re-embedding)"),
            shadow.base.clone(),
            output,
            cache_dir,
        );
        let stage: Box<dyn BufferedTransform> = match shadow.stage.config.build(&ctx)? {
            StageRunner::Buffered(b) => b,
            StageRunner::PerBatch(transform) => Box::new(EachBatch {
                transform,
                done: Vec::new(),
            }),
        };
        Ok(Remake {
            stage: Some(stage),
            base: shadow.base.clone(),
            letters,
        })
    }

    /// `batch` in the stage's input: every column but the old vectors.
    fn project(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let columns = self
            .base
            .fields()
            .iter()
            .map(|f| {
                batch.column_by_name(f.name()).cloned().ok_or_else(|| {
                    ConnectorError::internal(format!("re-embedding: no column `{}`", f.name()))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.base.clone(), columns)?)
    }

    /// Take `batch`; the batches now made again, in order.
    pub async fn push(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let batch = self.project(&batch)?;
        self.call(move |stage| stage.push(batch)).await
    }

    /// Everything held.
    pub async fn flush(&mut self) -> Result<Vec<RecordBatch>> {
        self.call(|stage| stage.flush()).await
    }

    async fn call(
        &mut self,
        f: impl FnOnce(&mut dyn BufferedTransform) -> Result<Vec<StageOutput>> + Send + 'static,
    ) -> Result<Vec<RecordBatch>> {
        let mut stage = self
            .stage
            .take()
            .ok_or_else(|| ConnectorError::internal("re-embedding after a failed call"))?;
        let (stage, outputs) = tokio::task::spawn_blocking(move || {
            let out = f(stage.as_mut());
            (stage, out)
        })
        .await
        .map_err(|e| ConnectorError::internal(format!("re-embedding task: {e}")))?;
        self.stage = Some(stage);
        let mut batches = Vec::new();
        for out in outputs? {
            self.letters
                .lock()
                .map_err(|_| ConnectorError::internal("dead-letter buffer poisoned"))?
                .extend(out.dead_letters);
            if out.batch.num_rows() > 0 {
                batches.push(out.batch);
            }
        }
        Ok(batches)
    }
}
