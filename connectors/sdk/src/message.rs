//! The messages that flow on every hop of a pipeline.

use arrow::record_batch::RecordBatch;

/// A checkpoint epoch. Epoch `n` covers everything the source emitted after
/// `Barrier(n - 1)` and before `Barrier(n)`. Epochs start at 1; 0 means "nothing
/// committed yet".
pub type Epoch = u64;

/// What one task sends the next. Order is the contract: a barrier is never
/// overtaken by a batch sent after it, and `End` is last.
#[derive(Debug, Clone)]
pub enum Message {
    /// Data.
    Batch(RecordBatch),
    /// Everything before this belongs to the epoch; flush it, then forward the barrier.
    Barrier(Epoch),
    /// The source is finished (bounded input, or shutdown). Always preceded by a barrier.
    End,
}

impl Message {
    /// Rows this message carries (0 for control messages).
    pub fn rows(&self) -> usize {
        match self {
            Message::Batch(b) => b.num_rows(),
            _ => 0,
        }
    }

    /// Bytes of Arrow buffers this message holds (0 for control messages).
    pub fn bytes(&self) -> usize {
        match self {
            Message::Batch(b) => b.get_array_memory_size(),
            _ => 0,
        }
    }
}
