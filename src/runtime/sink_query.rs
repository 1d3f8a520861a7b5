//! What the engine does to a sink's batches before the sink sees them: its
//! `query` (a DataFusion query over the last stage's output, planned once like
//! the sql stage), then, for a model migration's shadow, the vectors made
//! again with its model, then, for a sink that keeps lineage, the lineage
//! columns stamped on every row.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use sluice_connector_sdk::lineage::Lineage;
use sluice_connector_sdk::{ConnectorError, Epoch, Sink};

use super::tasks::Letters;

use crate::migrate::remake::Remake;
use crate::plan::{Plan, PlannedSink};
use crate::stages::{StageConfig, StageContext, StageRunner, Transform};
use crate::{Error, Result};

pub struct ShapedSink {
    inner: Box<dyn Sink>,
    query: Option<Arc<dyn Transform>>,
    /// A migration's shadow makes the vectors again with its own model.
    reembed: Option<Remake>,
    /// The lineage, the sink's input schema, and how many of its last columns
    /// are lineage.
    stamp: Option<(Lineage, SchemaRef, usize)>,
}

impl ShapedSink {
    /// `inner` as is when the sink has no query, no lineage and is no shadow.
    pub fn wrap(
        inner: Box<dyn Sink>,
        plan: &Plan,
        sink: &PlannedSink,
        letters: Letters,
    ) -> Result<Box<dyn Sink>> {
        let query = build_query(plan, sink)?;
        Self::assemble(inner, plan, sink, query, &plan.state_dir, letters)
    }

    /// For rows read back from the live table (a migration's copy): they have
    /// been through the sink's query already. The re-embedding keeps its
    /// cache under `cache_dir`.
    pub fn without_query(
        inner: Box<dyn Sink>,
        plan: &Plan,
        sink: &PlannedSink,
        cache_dir: &std::path::Path,
        letters: Letters,
    ) -> Result<Box<dyn Sink>> {
        Self::assemble(inner, plan, sink, None, cache_dir, letters)
    }

    fn assemble(
        inner: Box<dyn Sink>,
        plan: &Plan,
        sink: &PlannedSink,
        query: Option<Arc<dyn Transform>>,
        cache_dir: &std::path::Path,
        letters: Letters,
    ) -> Result<Box<dyn Sink>> {
        let lineage = sink.shadow.as_ref().map_or(&plan.lineage, |s| &s.lineage);
        let stamp = (sink.stamped > 0).then(|| (lineage.clone(), sink.input.clone(), sink.stamped));
        let reembed = match &sink.shadow {
            None => None,
            Some(shadow) => Some(
                Remake::build(&sink.name, shadow, sink.unstamped(), cache_dir, letters)
                    .map_err(|e| Error::stage(format!("sink `{}`", sink.name), e))?,
            ),
        };
        if query.is_none() && stamp.is_none() && reembed.is_none() {
            return Ok(inner);
        }
        Ok(Box::new(ShapedSink {
            inner,
            query,
            reembed,
            stamp,
        }))
    }

    /// Stamp `batch` and hand it to the sink.
    async fn deliver(&mut self, epoch: Epoch, batch: RecordBatch) -> sluice_connector_sdk::Result<()> {
        let batch = match &self.stamp {
            None => batch,
            Some((lineage, schema, added)) => lineage.stamp(batch, schema, *added)?,
        };
        self.inner.write(epoch, batch).await
    }
}

/// The sink's query, built to produce what the sink (or, for a shadow, the
/// live sink it copies) receives.
fn build_query(plan: &Plan, sink: &PlannedSink) -> Result<Option<Arc<dyn Transform>>> {
    let Some(query) = &sink.query else {
        return Ok(None);
    };
    let output = match &sink.shadow {
        None => sink.unstamped(),
        Some(sh) => crate::migrate::plan::planned(plan, &sh.of, crate::migrate::Served::Live)
            .map(|live| live.unstamped())
            .ok_or_else(|| Error::Internal(format!("the shadow of `{}` has no live sink", sh.of)))?,
    };
    let ctx = StageContext::new(
        format!("sink `{}` query", sink.name),
        plan.last_schema(),
        output,
        &plan.state_dir,
    );
    match query.build(&ctx).map_err(|e| Error::stage(&ctx.name, e))? {
        StageRunner::PerBatch(query) => Ok(Some(query)),
        StageRunner::Buffered(_) => Err(Error::Internal("a sink query must run per batch".into())),
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
        let batches = match &mut self.reembed {
            None => vec![batch],
            Some(reembed) => reembed.push(batch).await?,
        };
        for batch in batches {
            self.deliver(epoch, batch).await?;
        }
        Ok(())
    }

    async fn commit(&mut self, epoch: Epoch) -> sluice_connector_sdk::Result<()> {
        if let Some(reembed) = &mut self.reembed {
            for batch in reembed.flush().await? {
                self.deliver(epoch, batch).await?;
            }
        }
        self.inner.commit(epoch).await
    }

    async fn checkpointed(&mut self, epoch: Epoch) -> sluice_connector_sdk::Result<()> {
        self.inner.checkpointed(epoch).await
    }

    async fn close(&mut self) -> sluice_connector_sdk::Result<()> {
        self.inner.close().await
    }
}
