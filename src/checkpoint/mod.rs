//! Epochs, the checkpoint file and the coordinator that writes it.
//!
//! The source cuts epoch `e` by snapshotting its position and sending
//! `Barrier(e)`. Each participant (every sink, every tap and the dead-letter store)
//! makes `e` durable when the barrier reaches it, then acks. Once all have acked,
//! the coordinator writes `checkpoint.json` atomically (temp file, fsync, rename).
//! On restart the source resumes from that position and every participant rolls
//! back epochs after it, so a crash loses nothing and writes nothing twice.

mod coordinator;
mod lock;
mod store;

pub use coordinator::{coordinate, CoordinatorMsg};
pub use lock::{StateLock, LOCK_FILE};
pub use store::{Checkpoint, CheckpointStore};
