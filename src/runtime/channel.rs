//! Bounded channels, limited in rows and in bytes as well as in messages.
//!
//! A sender waits while the channel holds `max_rows` rows or `max_bytes` bytes, so
//! a slow consumer stops its producer, and that one stops its own, back to the
//! source. A batch larger than a bound takes the whole bound and passes alone.

use std::sync::Arc;

use sluice_connector_sdk::Message;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::plan::ChannelBounds;
use crate::telemetry::ChannelStats;

/// Control messages are tiny; this only bounds their count.
const MAX_MESSAGES: usize = 1024;

struct Envelope {
    msg: Message,
    rows: u64,
    bytes: u64,
    _permits: (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>),
}

#[derive(Clone)]
pub struct Sender {
    tx: mpsc::Sender<Envelope>,
    rows: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    bounds: (u32, u32),
    stats: Arc<ChannelStats>,
}

pub struct Receiver {
    rx: mpsc::Receiver<Envelope>,
    stats: Arc<ChannelStats>,
}

/// The receiving task is gone (it failed or was aborted).
#[derive(Debug)]
pub struct Closed;

pub fn bounded(bounds: ChannelBounds, stats: Arc<ChannelStats>) -> (Sender, Receiver) {
    let max_rows = bounds.max_rows.clamp(1, u32::MAX as usize) as u32;
    let max_bytes = bounds.max_bytes.clamp(1, u32::MAX as usize) as u32;
    let (tx, rx) = mpsc::channel(MAX_MESSAGES);
    let sender = Sender {
        tx,
        rows: Arc::new(Semaphore::new(max_rows as usize)),
        bytes: Arc::new(Semaphore::new(max_bytes as usize)),
        bounds: (max_rows, max_bytes),
        stats: stats.clone(),
    };
    (sender, Receiver { rx, stats })
}

impl Sender {
    /// Send, waiting while the channel is full.
    pub async fn send(&self, msg: Message) -> Result<(), Closed> {
        let rows = msg.rows() as u64;
        let bytes = msg.bytes() as u64;
        let take = |n: u64, bound: u32| (n.min(bound as u64)) as u32;
        let row_permit = match take(rows, self.bounds.0) {
            0 => None,
            n => Some(
                self.rows
                    .clone()
                    .acquire_many_owned(n)
                    .await
                    .map_err(|_| Closed)?,
            ),
        };
        let byte_permit = match take(bytes, self.bounds.1) {
            0 => None,
            n => Some(
                self.bytes
                    .clone()
                    .acquire_many_owned(n)
                    .await
                    .map_err(|_| Closed)?,
            ),
        };
        let s = &self.stats;
        s.rows.add(rows);
        s.bytes.add(bytes);
        s.peak_rows.max(s.rows.get());
        s.peak_bytes.max(s.bytes.get());
        let envelope = Envelope {
            msg,
            rows,
            bytes,
            _permits: (row_permit, byte_permit),
        };
        self.tx.send(envelope).await.map_err(|_| Closed)
    }
}

impl Receiver {
    /// The next message; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Message> {
        let env = self.rx.recv().await?;
        let s = &self.stats;
        s.rows.sub(env.rows);
        s.bytes.sub(env.bytes);
        Some(env.msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int32Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use std::time::Duration;

    fn batch(n: usize) -> Message {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int32, false)]));
        Message::Batch(RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![0; n]))]).unwrap())
    }

    #[tokio::test]
    async fn a_full_channel_blocks_the_sender_until_rows_are_taken() {
        let stats = Arc::new(ChannelStats::default());
        let (tx, mut rx) = bounded(
            ChannelBounds {
                max_rows: 10,
                max_bytes: 1 << 30,
            },
            stats.clone(),
        );
        tx.send(batch(6)).await.unwrap();
        // 6 + 6 > 10: the second send must wait.
        let blocked = tokio::time::timeout(Duration::from_millis(100), tx.send(batch(6))).await;
        assert!(blocked.is_err(), "send should block while the channel is full");
        assert_eq!(stats.rows.get(), 6);
        assert_eq!(rx.recv().await.unwrap().rows(), 6);
        tx.send(batch(6)).await.unwrap();
        // An oversized batch takes the whole bound and passes alone.
        rx.recv().await.unwrap();
        tx.send(batch(25)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().rows(), 25);
        assert!(stats.peak_rows.get() <= 25);
    }

    #[tokio::test]
    async fn a_channel_full_of_bytes_blocks_the_sender_whatever_its_rows() {
        let stats = Arc::new(ChannelStats::default());
        let one = batch(1000).bytes();
        let (tx, mut rx) = bounded(
            ChannelBounds {
                max_rows: 1 << 20,
                max_bytes: one + one / 2,
            },
            stats.clone(),
        );
        tx.send(batch(1000)).await.unwrap();
        // Rows are far from their bound; bytes are not: the second send waits.
        let blocked = tokio::time::timeout(Duration::from_millis(100), tx.send(batch(1000))).await;
        assert!(
            blocked.is_err(),
            "send should block while the channel is full of bytes"
        );
        assert_eq!(stats.bytes.get(), one as u64);
        rx.recv().await.unwrap();
        tx.send(batch(1000)).await.unwrap();
        assert_eq!(stats.peak_bytes.get(), one as u64);
    }
}
