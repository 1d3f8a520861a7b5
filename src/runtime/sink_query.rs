//! A sink's `query`: a DataFusion query over the last stage's output, applied to
//! every batch before the sink sees it (planned once, like the sql stage).

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use sluice_connector_sdk::{ConnectorError, Epoch, Sink};

use crate::plan::{Plan, PlannedSink};
use crate::stages::{SqlConfig, StageConfig, StageContext, StageRunner, Transform};
use crate::{Error, Result};

pub struct QueriedSink {
    inner: Box<dyn Sink>,
    query: Arc<dyn Transform>,
}

impl QueriedSink {
    pub fn wrap(
        inner: Box<dyn Sink>,
        query: &SqlConfig,
        plan: &Plan,
        sink: &PlannedSink,
    ) -> Result<Box<dyn Sink>> {
        let ctx = StageContext::new(
            format!("sink `{}` query", sink.name),
            plan.last_schema(),
            sink.input.clone(),
            &plan.state_dir,
        );
        match query.build(&ctx).map_err(|e| Error::stage(&ctx.name, e))? {
            StageRunner::PerBatch(query) => Ok(Box::new(QueriedSink { inner, query })),
            StageRunner::Buffered(_) => Err(Error::Internal("a sink query must run per batch".into())),
        }
    }
}

#[async_trait::async_trait]
impl Sink for QueriedSink {
    async fn open(&mut self, committed: Epoch) -> sluice_connector_sdk::Result<()> {
        self.inner.open(committed).await
    }

    async fn write(&mut self, epoch: Epoch, batch: RecordBatch) -> sluice_connector_sdk::Result<()> {
        let query = self.query.clone();
        let out = tokio::task::spawn_blocking(move || query.apply(batch))
            .await
            .map_err(|e| ConnectorError::internal(format!("sink query task: {e}")))?
            .map_err(|e| ConnectorError::internal(format!("sink query: {e}")))?;
        if out.batch.num_rows() > 0 {
            self.inner.write(epoch, out.batch).await?;
        }
        Ok(())
    }

    async fn commit(&mut self, epoch: Epoch) -> sluice_connector_sdk::Result<()> {
        self.inner.commit(epoch).await
    }

    async fn checkpointed(&mut self, epoch: Epoch) -> sluice_connector_sdk::Result<()> {
        self.inner.checkpointed(epoch).await
    }

    async fn close(&mut self) -> sluice_connector_sdk::Result<()> {
        self.inner.close().await
    }
}
