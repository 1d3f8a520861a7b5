//! The sink side of the connector contract.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;

use crate::{DeadLetter, Epoch, Result};

/// What the engine hands a sink when it builds it.
#[derive(Debug, Clone)]
pub struct SinkContext {
    pub pipeline: String,
    /// The sink's name in the pipeline (unique per pipeline).
    pub name: String,
    /// Folder of the pipeline file; relative paths in the config resolve against it.
    pub base_dir: PathBuf,
    /// The pipeline's state folder.
    pub state_dir: PathBuf,
    /// Who else writes what this sink writes, which decides its rollback.
    pub role: SinkRole,
    /// Documents this sink's store refused for their content (see
    /// [`crate::refuse`]). The engine drains it after each `commit` and files
    /// the letters under that epoch; the other documents' rows are committed.
    pub dead_letters: Arc<Mutex<Vec<DeadLetter>>>,
}

/// The part a sink's writer plays, which decides how it rolls back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SinkRole {
    /// The pipeline's own run: on open, it rolls back its epochs after the
    /// checkpoint.
    #[default]
    Stream,
    /// `sluice backfill`, maybe while a streaming run of the same pipeline
    /// writes too, each with its own epoch numbers. Folder sinks name their
    /// epoch files apart ([`SinkContext::epoch_stem`]) and roll back only
    /// their own; database sinks skip their rollback by epoch number and stamp
    /// the rows with epoch 0, which no rollback removes.
    Backfill,
    /// One of several processes of a consumer group writing the same sinks.
    /// Database sinks skip their rollback by epoch number, which would delete
    /// the others' rows: the source replays each partition in order from its
    /// committed offset, so the replay alone brings every document to the
    /// same state. Folder sinks stay per process.
    SharedGroup,
}

impl SinkRole {
    /// Whether a sink on a shared server rolls back by epoch number on open
    /// (and keeps undo state for it).
    pub fn rolls_back(self) -> bool {
        self == SinkRole::Stream
    }

    /// The epoch to stamp on rows of `epoch`: 0 for a backfill.
    pub fn row_epoch(self, epoch: crate::Epoch) -> i64 {
        match self {
            SinkRole::Backfill => 0,
            _ => epoch as i64,
        }
    }
}

impl SinkContext {
    /// Who writes: the pipeline and its state folder (`docs@3f2a9c1e`). A sink
    /// on a server stamps its rows with it, so a rollback after a crash removes
    /// only this writer's rows, never another pipeline's (or another state
    /// folder's) that share the table.
    pub fn writer(&self) -> String {
        format!("{}@{}", self.pipeline, self.state_hash())
    }

    /// Eight hex digits naming the state folder, stable across builds.
    fn state_hash(&self) -> String {
        let dir = std::fs::canonicalize(&self.state_dir)
            .or_else(|_| std::path::absolute(&self.state_dir))
            .unwrap_or_else(|_| self.state_dir.clone());
        // FNV-1a: stable across builds and Rust versions (the value is stored).
        let hash = dir
            .to_string_lossy()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
            });
        format!("{:08x}", hash as u32)
    }

    /// Send a document this sink could not write to the dead-letter store.
    pub fn dead_letter(
        &self,
        doc_id: impl Into<String>,
        version: impl Into<String>,
        error: impl Into<String>,
    ) {
        self.dead_letters
            .lock()
            .expect("dead-letter buffer poisoned")
            .push(DeadLetter {
                doc_id: doc_id.into(),
                version: version.into(),
                stage: format!("sink:{}", self.name),
                error: error.into(),
            });
    }

    /// The file-name stem of this writer's epoch files in a folder other
    /// writers may share: `epoch-<pipeline>-<state hash>`, or
    /// `backfill-epoch-...` for a backfill. Two pipelines writing one folder
    /// neither overwrite nor roll back each other's files.
    pub fn epoch_stem(&self) -> String {
        let kind = if self.role == SinkRole::Backfill {
            "backfill-epoch"
        } else {
            "epoch"
        };
        format!("{kind}-{}-{}", self.pipeline, self.state_hash())
    }
}

/// Writes batches and makes each epoch durable.
///
/// Invariants:
/// - `commit(e)` returns only once every row written for `e` is durable; then the
///   engine may record epoch `e` in the checkpoint.
/// - Replaying an epoch (the same rows, written again after a crash) changes nothing.
/// - `open(committed)` discards whatever was committed for epochs after `committed`:
///   a crash can fall between a sink's commit and the checkpoint that records it.
///   A sink commits epoch `e + 1` before `e` need be checkpointed (the others may
///   still be committing `e`), so more than one epoch can need discarding.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// Prepare to write; roll back epochs newer than `committed`.
    async fn open(&mut self, committed: Epoch) -> Result<()>;

    /// Write rows of `epoch`. They need not be durable until `commit`.
    async fn write(&mut self, epoch: Epoch, batch: RecordBatch) -> Result<()>;

    /// Make everything written for `epoch` durable.
    async fn commit(&mut self, epoch: Epoch) -> Result<()>;

    /// The checkpoint now records `epoch`: no `open` will roll back epochs up to
    /// it, so undo state kept for them may go. Called before a later `commit`,
    /// not necessarily for every epoch; a sink that rolls back by its own epoch
    /// stamps needs nothing here.
    async fn checkpointed(&mut self, _epoch: Epoch) -> Result<()> {
        Ok(())
    }

    /// Release resources after the last commit.
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}
