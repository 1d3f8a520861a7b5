//! The dead-letter store's task: letters in, one committed file per epoch out.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use sluice_connector_sdk::epoch_log::{EpochLog, EpochLogWriter};
use sluice_connector_sdk::{DeadLetter, Epoch};
use tokio::sync::mpsc;

use super::{schema, to_batch, OPEN, RESOLVED};
use crate::checkpoint::CoordinatorMsg;
use crate::telemetry::PipelineMetrics;
use crate::{Error, Result};

/// Messages from the producers (the source and each stage) to the store.
pub enum DlqMsg {
    Letters {
        epoch: Epoch,
        letters: Vec<DeadLetter>,
    },
    /// Documents (doc_id, version) the source emitted in `epoch`.
    Seen {
        epoch: Epoch,
        docs: Vec<(String, String)>,
    },
    Barrier {
        producer: usize,
        epoch: Epoch,
    },
    End {
        producer: usize,
    },
}

/// What one epoch brought: its letters, and the documents with open letters that
/// the source emitted again.
#[derive(Default)]
struct EpochState {
    letters: Vec<DeadLetter>,
    seen_open: BTreeMap<String, String>,
}

/// The store's task. Commits epoch `e` once every producer has passed `Barrier(e)`,
/// then acks it to the coordinator as participant `id`. `open` holds the
/// documents with open letters when the run started.
#[allow(clippy::too_many_arguments)]
pub async fn run_store(
    log: EpochLog,
    mut open: HashSet<String>,
    producers: usize,
    id: usize,
    mut rx: mpsc::Receiver<DlqMsg>,
    coordinator: mpsc::Sender<CoordinatorMsg>,
    metrics: Arc<PipelineMetrics>,
    first_epoch: Epoch,
) -> Result<()> {
    let mut writer = EpochLogWriter::new(log, schema());
    let mut next = first_epoch;
    let mut epochs: BTreeMap<Epoch, EpochState> = BTreeMap::new();
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
                epochs.entry(epoch).or_default().letters.extend(letters);
            }
            DlqMsg::Seen { epoch, docs } => {
                let state = epochs.entry(epoch).or_default();
                for (doc, version) in docs.into_iter().filter(|(d, _)| open.contains(d)) {
                    state.seen_open.insert(doc, version);
                }
            }
            DlqMsg::Barrier { epoch, .. } => {
                *barriers.entry(epoch).or_default() += 1;
                while barriers.get(&next) == Some(&producers) {
                    barriers.remove(&next);
                    let state = epochs.remove(&next).unwrap_or_default();
                    let failed: HashSet<&str> = state.letters.iter().map(|l| l.doc_id.as_str()).collect();
                    let resolved: Vec<DeadLetter> = state
                        .seen_open
                        .iter()
                        .filter(|(d, _)| !failed.contains(d.as_str()))
                        .map(|(d, v)| DeadLetter {
                            doc_id: d.clone(),
                            version: v.clone(),
                            stage: String::new(),
                            error: String::new(),
                        })
                        .collect();
                    if !state.letters.is_empty() {
                        let batch = to_batch(next, &state.letters, OPEN)?;
                        writer.write(next, &batch).await.map_err(wrap)?;
                    }
                    if !resolved.is_empty() {
                        tracing::info!(documents = resolved.len(), "dead letters resolved");
                        let batch = to_batch(next, &resolved, RESOLVED)?;
                        writer.write(next, &batch).await.map_err(wrap)?;
                    }
                    writer.commit(next).await.map_err(wrap)?;
                    for r in &resolved {
                        open.remove(&r.doc_id);
                    }
                    open.extend(state.letters.into_iter().map(|l| l.doc_id));
                    let _ = coordinator.send(CoordinatorMsg::Ack { epoch: next, id }).await;
                    next += 1;
                }
            }
            DlqMsg::End { .. } => ended += 1,
        }
    }
    Ok(())
}
