//! The dead-letter store: every document a source or stage gave up on, with why.
//!
//! Letters are written as Parquet under `state_dir/dlq/`, one file per epoch, through
//! the same epoch log as sinks. Each letter is tagged with the epoch it was found
//! in and lands in that epoch's file, so a replay after a crash does not record a
//! failure twice. The store is a checkpoint participant like any sink.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use sluice_connector_sdk::epoch_log::{EpochLog, EpochLogWriter};
use sluice_connector_sdk::{DeadLetter, Epoch};
use tokio::sync::mpsc;

use crate::checkpoint::CoordinatorMsg;
use crate::telemetry::PipelineMetrics;
use crate::{Error, Result};

/// Messages from the producers (the source and each stage) to the store.
pub enum DlqMsg {
    Letters { epoch: Epoch, letters: Vec<DeadLetter> },
    Barrier { producer: usize, epoch: Epoch },
    End { producer: usize },
}

/// Schema of the dead-letter files.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("version", DataType::Utf8, false),
        Field::new("stage", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, false),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("epoch", DataType::UInt64, false),
    ]))
}

fn to_batch(epoch: Epoch, letters: &[DeadLetter]) -> Result<RecordBatch> {
    let now = chrono::Utc::now().timestamp_micros();
    let (mut id, mut ver, mut stage, mut err) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut time = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut ep = UInt64Builder::new();
    for l in letters {
        id.append_value(&l.doc_id);
        ver.append_value(&l.version);
        stage.append_value(&l.stage);
        err.append_value(&l.error);
        time.append_value(now);
        ep.append_value(epoch);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(ver.finish()),
        Arc::new(stage.finish()),
        Arc::new(err.finish()),
        Arc::new(time.finish()),
        Arc::new(ep.finish()),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// The epoch log of the dead-letter store in `dir`.
pub fn log(dir: &std::path::Path) -> Result<EpochLog> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let store =
        LocalFileSystem::new_with_prefix(dir).map_err(|e| Error::connector("dead-letter store", e.into()))?;
    Ok(EpochLog::new(Arc::new(store), StorePath::default()))
}

/// The store's task. Commits epoch `e` once every producer has passed `Barrier(e)`,
/// then acks it to the coordinator as participant `id`.
pub async fn run_store(
    log: EpochLog,
    producers: usize,
    id: usize,
    mut rx: mpsc::UnboundedReceiver<DlqMsg>,
    coordinator: mpsc::Sender<CoordinatorMsg>,
    metrics: Arc<PipelineMetrics>,
    first_epoch: Epoch,
) -> Result<()> {
    let mut writer = EpochLogWriter::new(log, schema());
    let mut open = first_epoch;
    // Letters of later epochs, from producers already past a barrier.
    let mut ahead: BTreeMap<Epoch, Vec<DeadLetter>> = BTreeMap::new();
    let mut barriers: BTreeMap<Epoch, usize> = BTreeMap::new();
    let mut ended = 0;
    let wrap = |e| Error::connector("dead-letter store", e);
    while ended < producers {
        let Some(msg) = rx.recv().await else { break };
        match msg {
            DlqMsg::Letters { epoch, letters } => {
                metrics.dead_letters.add(letters.len() as u64);
                for l in &letters {
                    tracing::warn!(doc_id = %l.doc_id, stage = %l.stage, error = %l.error, "dead letter");
                }
                if epoch == open {
                    writer
                        .write(epoch, &to_batch(epoch, &letters)?)
                        .await
                        .map_err(wrap)?;
                } else {
                    ahead.entry(epoch).or_default().extend(letters);
                }
            }
            DlqMsg::Barrier { epoch, .. } => {
                *barriers.entry(epoch).or_default() += 1;
                while barriers.get(&open) == Some(&producers) {
                    barriers.remove(&open);
                    writer.commit(open).await.map_err(wrap)?;
                    let _ = coordinator.send(CoordinatorMsg::Ack { epoch: open, id }).await;
                    open += 1;
                    if let Some(letters) = ahead.remove(&open) {
                        writer
                            .write(open, &to_batch(open, &letters)?)
                            .await
                            .map_err(wrap)?;
                    }
                }
            }
            DlqMsg::End { .. } => ended += 1,
        }
    }
    Ok(())
}
