//! Stage taps: a stage with `tap: true` also writes its output, one Parquet file
//! per epoch, to `state_dir/taps/<pipeline>/<stage>/`. A tap is a checkpoint
//! participant like a sink, so what it holds matches the checkpoint.

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use sluice_connector_sdk::epoch_log::{EpochLog, EpochLogWriter};
use sluice_connector_sdk::{Epoch, Result as ConnectorResult, Sink};

use crate::{Error, Result};

/// The epoch log of a tap folder (created if missing).
pub fn tap_log(dir: &Path) -> Result<EpochLog> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| Error::connector("tap", e.into()))?;
    Ok(EpochLog::new(Arc::new(store), StorePath::default()).with_local_dir(dir))
}

/// Writes a stage's output batches; keeps the last `retain_epochs` epochs.
pub struct TapSink {
    writer: EpochLogWriter,
    retain_epochs: u64,
}

impl TapSink {
    pub fn new(log: EpochLog, schema: SchemaRef, retain_epochs: u64) -> Self {
        TapSink {
            writer: EpochLogWriter::new(log, schema),
            retain_epochs: retain_epochs.max(1),
        }
    }
}

#[async_trait::async_trait]
impl Sink for TapSink {
    async fn open(&mut self, committed: Epoch) -> ConnectorResult<()> {
        self.writer.log().rollback(committed).await.map(|_| ())
    }

    async fn write(&mut self, epoch: Epoch, batch: RecordBatch) -> ConnectorResult<()> {
        self.writer.write(epoch, &batch).await
    }

    async fn commit(&mut self, epoch: Epoch) -> ConnectorResult<()> {
        self.writer.commit(epoch).await?;
        if epoch > self.retain_epochs {
            self.writer
                .log()
                .prune_before(epoch - self.retain_epochs + 1)
                .await?;
        }
        Ok(())
    }
}
