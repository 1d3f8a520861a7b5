//! Tail points: where a live view (`sluice tail`, the daemon's
//! `/v1/pipelines/{name}/tail/{point}`) sees the batches passing a point of a
//! running pipeline: what the source emits (`source`), what each stage emits
//! (named after the stage) and what each sink receives (named after the sink).
//!
//! A point never slows the pipeline. With nobody watching, offering a batch is
//! one atomic load. A watcher gets a queue of [`QUEUE`] batches, filled with
//! `try_send` (a batch is a few reference counts, its buffers are shared);
//! when the queue is full the batch is not queued and its rows are counted as
//! dropped for that watcher, who is told how many. A watcher that goes away is
//! forgotten at the next offer.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;

/// Batches a watcher may be behind before rows are dropped for it.
pub const QUEUE: usize = 8;

/// The name of the source's point.
pub const SOURCE: &str = "source";

/// One point of the data path that can be watched.
#[derive(Debug, Default)]
pub struct TailPoint {
    watchers: Mutex<Vec<Watcher>>,
    /// `watchers.len()`, readable without the lock.
    watching: AtomicUsize,
}

#[derive(Debug)]
struct Watcher {
    tx: mpsc::Sender<RecordBatch>,
    dropped: Arc<AtomicU64>,
}

/// A watcher's end: the batches, and the rows dropped since it last asked.
#[derive(Debug)]
pub struct Subscription {
    pub batches: mpsc::Receiver<RecordBatch>,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    /// Rows dropped for this watcher since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }
}

impl TailPoint {
    /// Show `batch` to whoever watches; never waits.
    pub fn offer(&self, batch: &RecordBatch) {
        if self.watching.load(Ordering::Relaxed) == 0 || batch.num_rows() == 0 {
            return;
        }
        let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        watchers.retain(|w| match w.tx.try_send(batch.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(b)) => {
                w.dropped.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        self.watching.store(watchers.len(), Ordering::Relaxed);
    }

    /// Start watching.
    pub fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        watchers.retain(|w| !w.tx.is_closed());
        watchers.push(Watcher {
            tx,
            dropped: dropped.clone(),
        });
        self.watching.store(watchers.len(), Ordering::Relaxed);
        Subscription { batches: rx, dropped }
    }

    /// Watchers still connected.
    pub fn watchers(&self) -> usize {
        let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        watchers.retain(|w| !w.tx.is_closed());
        self.watching.store(watchers.len(), Ordering::Relaxed);
        watchers.len()
    }
}

/// Every point of one run, by name: the source, the stages, the sinks.
#[derive(Debug, Default)]
pub struct Tails {
    points: Vec<(String, Arc<TailPoint>)>,
}

impl Tails {
    /// Points named `source`, then each stage, then each sink. A stage or sink
    /// called `source` shadows the source's point, and a stage a sink of its name.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut points: Vec<(String, Arc<TailPoint>)> = Vec::new();
        for name in names {
            if !points.iter().any(|(n, _)| n == name) {
                points.push((name.to_string(), Arc::default()));
            }
        }
        if !points.iter().any(|(n, _)| n == SOURCE) {
            points.insert(0, (SOURCE.to_string(), Arc::default()));
        }
        Tails { points }
    }

    pub fn point(&self, name: &str) -> Option<&Arc<TailPoint>> {
        self.points.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    /// The names, in data-path order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.points.iter().map(|(n, _)| n.as_str())
    }

    /// Watchers connected at every point together.
    pub fn watchers(&self) -> usize {
        self.points.iter().map(|(_, p)| p.watchers()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int32Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(n: i32) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from_iter_values(0..n))]).unwrap()
    }

    #[test]
    fn a_slow_watcher_loses_rows_and_is_told_how_many() {
        let point = TailPoint::default();
        let mut sub = point.subscribe();
        for _ in 0..QUEUE + 3 {
            point.offer(&batch(10));
        }
        assert_eq!(sub.take_dropped(), 30);
        assert_eq!(sub.take_dropped(), 0);
        let mut queued = 0;
        while sub.batches.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, QUEUE);
    }

    #[test]
    fn a_watcher_that_left_is_forgotten() {
        let point = TailPoint::default();
        let sub = point.subscribe();
        assert_eq!(point.watchers(), 1);
        drop(sub);
        point.offer(&batch(1));
        assert_eq!(point.watchers(), 0);
    }

    #[test]
    fn points_follow_the_data_path_and_a_stage_may_be_called_source() {
        let t = Tails::new(["parse", "chunk", "lake"]);
        assert_eq!(
            t.names().collect::<Vec<_>>(),
            ["source", "parse", "chunk", "lake"]
        );
        let t = Tails::new(["source", "lake"]);
        assert_eq!(t.names().collect::<Vec<_>>(), ["source", "lake"]);
    }
}
