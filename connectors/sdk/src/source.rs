//! The source side of the connector contract.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;

use crate::{Epoch, Result};

/// A record a connector or stage could not process. It goes to the dead-letter
/// store with its reason; the pipeline goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub doc_id: String,
    pub version: String,
    /// The stage (or `source`) that gave up on it.
    pub stage: String,
    pub error: String,
}

/// What the engine hands a source when it builds it.
#[derive(Debug, Clone)]
pub struct SourceContext {
    pub pipeline: String,
    /// Folder of the pipeline file; relative paths in the config resolve against it.
    pub base_dir: PathBuf,
    /// Records the source refuses (for example, over a size limit). The engine drains
    /// this after every `next_batch`, so each letter lands in the epoch it was found in.
    pub dead_letters: Arc<Mutex<Vec<DeadLetter>>>,
}

impl SourceContext {
    pub fn new(pipeline: impl Into<String>, base_dir: impl Into<PathBuf>) -> Self {
        Self {
            pipeline: pipeline.into(),
            base_dir: base_dir.into(),
            dead_letters: Arc::default(),
        }
    }

    /// Send a record to the dead-letter store.
    pub fn dead_letter(&self, letter: DeadLetter) {
        self.dead_letters
            .lock()
            .expect("dead-letter buffer poisoned")
            .push(letter);
    }
}

/// How far a bounded source has come, for progress bars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceProgress {
    pub items_done: u64,
    pub items_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Produces batches and remembers its position per epoch.
///
/// Invariants the engine relies on:
/// - `next_batch` is cancel-safe: if its future is dropped, nothing is lost, and the
///   next call returns the same data again.
/// - `snapshot` describes everything returned so far. Restoring it with `open` after
///   a crash makes the source emit exactly what came after.
#[async_trait::async_trait]
pub trait Source: Send {
    /// Restore the position of the last checkpoint (`None` on a first run).
    async fn open(&mut self, state: Option<serde_json::Value>) -> Result<()>;

    /// The next batch; `Ok(None)` when a bounded source is finished. An unbounded
    /// source waits (cancel-safely) until it has data.
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>>;

    /// The position covering every batch returned so far; stored as `epoch`'s
    /// checkpoint. Called once per epoch, in epoch order.
    fn snapshot(&mut self, epoch: Epoch) -> Result<serde_json::Value>;

    /// The checkpoint of `epoch` (and of every epoch before it) is durable: Kafka
    /// commits the offsets of `epoch`'s snapshot here. Called after the last
    /// epoch too, once the pipeline has ended.
    async fn committed(&mut self, epoch: Epoch) -> Result<()> {
        let _ = epoch;
        Ok(())
    }

    /// Progress of a bounded source, when it knows its total.
    fn progress(&self) -> Option<SourceProgress> {
        None
    }

    /// Records between the source's position and the newest data it could read
    /// (a Kafka consumer's lag), when the source knows. Must not block.
    fn lag(&self) -> Option<u64> {
        None
    }
}
