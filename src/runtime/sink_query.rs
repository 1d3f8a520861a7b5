//! What the engine does to a sink's batches before the sink sees them: its
//! `query` (a DataFusion query over the last stage's output, planned once like
//! the sql stage), then, for a sink that keeps lineage, the lineage columns
//! stamped on every row.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use sluice_connector_sdk::lineage::Lineage;
use sluice_connector_sdk::{ConnectorError, Epoch, Sink};

use crate::plan::{Plan, PlannedSink};
use crate::stages::{StageConfig, StageContext, StageRunner, Transform};
use crate::{Error, Result};

pub struct ShapedSink {
    inner: Box<dyn Sink>,
    query: Option<Arc<dyn Transform>>,
    /// The lineage, the sink's input schema, and how many of its last columns
    /// are lineage.
    stamp: Option<(Lineage, SchemaRef, usize)>,
}

impl ShapedSink {
    /// `inner` as is when the sink has neither a query nor lineage.
    pub fn wrap(inner: Box<dyn Sink>, plan: &Plan, sink: &PlannedSink) -> Result<Box<dyn Sink>> {
        let stamp = (sink.stamped > 0).then(|| (plan.lineage.clone(), sink.input.clone(), sink.stamped));
        let query = match &sink.query {
            None => None,
            Some(query) => {
                let ctx = StageContext::new(
                    format!("sink `{}` query", sink.name),
                    plan.last_schema(),
                    sink.unstamped(),
                    &plan.state_dir,
                );
                match query.build(&ctx).map_err(|e| Error::stage(&ctx.name, e))? {
                    StageRunner::PerBatch(query) => Some(query),
                    StageRunner::Buffered(_) => {
                        return Err(Error::Internal("a sink query must run per batch".into()))
                    }
                }
            }
        };
        if query.is_none() && stamp.is_none() {
            return Ok(inner);
        }
        Ok(Box::new(ShapedSink { inner, query, stamp }))
    }
}

#[async_trait::async_trait]
impl Sink for ShapedSink {
    async fn open(&mut self, committed: Epoch) -> sluice_connector_sdk::Result<()> {
        self.inner.open(committed).await
    }

    async fn write(&mut self, epoch: Epoch, batch: RecordBatch) -> sluice_connector_sdk::Result<()> {
        let batch = match &self.query {
            None => batch,
            Some(query) => {
                let query = query.clone();
                tokio::task::spawn_blocking(move || query.apply(batch))
                    .await
                    .map_err(|e| ConnectorError::internal(format!("sink query task: {e}")))?
                    .map_err(|e| ConnectorError::internal(format!("sink query: {e}")))?
                    .batch
            }
        };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = match &self.stamp {
            None => batch,
            Some((lineage, schema, added)) => lineage.stamp(batch, schema, *added)?,
        };
        self.inner.write(epoch, batch).await
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
