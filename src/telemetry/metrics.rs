//! Counters of a running pipeline. Tasks update them with relaxed atomics; the CLI's
//! progress bar, the run summary and tests read them.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

pub use sluice_connector_sdk::metrics::{Counter, OwnMetrics, RateSeries, Sample, SeriesKind, StageMetrics};

/// What sits in one channel right now, and the most it ever held.
#[derive(Debug, Default)]
pub struct ChannelStats {
    pub name: String,
    pub rows: Counter,
    pub bytes: Counter,
    pub peak_rows: Counter,
    pub peak_bytes: Counter,
}

#[derive(Debug, Default)]
pub struct PipelineMetrics {
    /// Documents (rows) the source emitted, and their content bytes.
    pub source_rows: Counter,
    pub source_batches: Counter,
    /// Bounded-source progress: items and bytes listed vs done.
    pub items_total: Counter,
    pub items_done: Counter,
    pub bytes_total: Counter,
    pub bytes_done: Counter,
    pub stages: Vec<Arc<StageMetrics>>,
    /// Rows written, per sink (taps included, by name `tap:<stage>`).
    pub sinks: Vec<(String, Counter)>,
    /// Every channel of the running pipeline, registered as it is created.
    pub channels: Mutex<Vec<Arc<ChannelStats>>>,
    pub dead_letters: Counter,
    /// Arrow memory of the batches the source emitted.
    pub source_bytes: Counter,
    /// The epoch the source is filling now.
    pub open_epoch: Counter,
    pub last_committed_epoch: Counter,
    /// When the last checkpoint was written (Unix milliseconds; 0: never) and
    /// how long writing it took.
    pub last_checkpoint_ms: Counter,
    pub checkpoint_duration_us: Counter,
    /// Messages behind the end of the source's partitions (Kafka), when known.
    pub source_lag: Gauge,
    /// Where live views watch the batches pass.
    pub tails: super::tail::Tails,
}

/// A value that may be unknown.
#[derive(Debug)]
pub struct Gauge(std::sync::atomic::AtomicI64);

impl Default for Gauge {
    fn default() -> Self {
        Gauge(std::sync::atomic::AtomicI64::new(-1))
    }
}

impl Gauge {
    pub fn set(&self, v: Option<u64>) {
        let v = v.map(|v| v.min(i64::MAX as u64) as i64).unwrap_or(-1);
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> Option<u64> {
        let v = self.0.load(Ordering::Relaxed);
        (v >= 0).then_some(v as u64)
    }
}

impl PipelineMetrics {
    /// Rows written to the sink called `name`.
    pub fn sink_rows(&self, name: &str) -> u64 {
        self.sinks
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.get())
            .unwrap_or(0)
    }
}

impl ChannelStats {
    /// How full the channel is, 0 to 1: the larger of its row and byte shares
    /// of the bounds.
    pub fn fill(&self, max_rows: usize, max_bytes: usize) -> f64 {
        let rows = self.rows.get() as f64 / max_rows.max(1) as f64;
        let bytes = self.bytes.get() as f64 / max_bytes.max(1) as f64;
        rows.max(bytes)
    }
}

impl PipelineMetrics {
    /// The channel called `name` (`stage:<stage>`, `sink:<sink>`), once created.
    pub fn channel(&self, name: &str) -> Option<Arc<ChannelStats>> {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|c| c.name == name)
            .cloned()
    }

    /// The highest row count any single channel held.
    pub fn peak_channel_rows(&self) -> u64 {
        self.channels
            .lock()
            .expect("channel list")
            .iter()
            .map(|c| c.peak_rows.get())
            .max()
            .unwrap_or(0)
    }
}
