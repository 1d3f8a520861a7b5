//! The coordinator: collects acks and writes a checkpoint once an epoch is
//! durable everywhere.

use std::collections::{BTreeMap, HashSet};

use sluice_connector_sdk::Epoch;
use tokio::sync::{mpsc, watch};

use super::{Checkpoint, CheckpointStore};
use crate::Result;

/// How often a failed checkpoint write is tried before the run stops.
const SAVE_TRIES: u32 = 5;

/// Write `checkpoint`, retrying a failure (a full disk may be freed, an NFS
/// hiccup may pass) with a growing pause: 0.2, 0.4, 0.8, 1.6 s.
async fn save_with_retries(store: &CheckpointStore, checkpoint: &Checkpoint) -> Result<()> {
    let mut pause = std::time::Duration::from_millis(200);
    for attempt in 1.. {
        match store.save(checkpoint) {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= SAVE_TRIES => {
                return Err(crate::Error::Checkpoint {
                    epoch: checkpoint.epoch,
                    tries: attempt,
                    source: Box::new(e),
                })
            }
            Err(e) => {
                tracing::warn!(
                    epoch = checkpoint.epoch,
                    attempt,
                    "writing the checkpoint failed, retrying: {e}"
                );
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
    unreachable!("the loop returns")
}

pub enum CoordinatorMsg {
    /// The source cut `epoch` with this position.
    Cut { epoch: Epoch, state: serde_json::Value },
    /// Participant `id` made `epoch` durable.
    Ack { epoch: Epoch, id: usize },
}

#[derive(Default)]
struct Pending {
    state: Option<serde_json::Value>,
    acks: HashSet<usize>,
}

/// Run until every sender is gone. Publishes each committed epoch on `committed`
/// and returns the last one.
pub async fn coordinate(
    pipeline: String,
    store: CheckpointStore,
    participants: usize,
    mut rx: mpsc::Receiver<CoordinatorMsg>,
    committed: watch::Sender<Epoch>,
    metrics: std::sync::Arc<crate::telemetry::PipelineMetrics>,
) -> Result<Epoch> {
    let mut pending: BTreeMap<Epoch, Pending> = BTreeMap::new();
    let mut last = *committed.borrow();
    while let Some(msg) = rx.recv().await {
        let epoch = match msg {
            CoordinatorMsg::Cut { epoch, state } => {
                pending.entry(epoch).or_default().state = Some(state);
                epoch
            }
            CoordinatorMsg::Ack { epoch, id } => {
                pending.entry(epoch).or_default().acks.insert(id);
                epoch
            }
        };
        let ready = pending
            .get(&epoch)
            .is_some_and(|p| p.state.is_some() && p.acks.len() == participants);
        // Epochs complete in order: every participant handles barriers in order.
        if ready && pending.keys().next() == Some(&epoch) {
            let p = pending.remove(&epoch).expect("checked above");
            let started = std::time::Instant::now();
            let checkpoint = Checkpoint {
                pipeline: pipeline.clone(),
                epoch,
                source: p.state.expect("checked above"),
                written_at: chrono::Utc::now().to_rfc3339(),
            };
            save_with_retries(&store, &checkpoint).await?;
            drop(checkpoint);
            crate::telemetry::release_free_memory();
            metrics.last_committed_epoch.set(epoch);
            metrics
                .checkpoint_duration_us
                .set(started.elapsed().as_micros() as u64);
            metrics
                .last_checkpoint_ms
                .set(chrono::Utc::now().timestamp_millis().max(0) as u64);
            tracing::debug!(
                epoch,
                ms = started.elapsed().as_millis() as u64,
                "checkpoint written"
            );
            last = epoch;
            let _ = committed.send(epoch);
        }
    }
    Ok(last)
}
