//! Counters of a running pipeline. Tasks update them with relaxed atomics; the CLI's
//! progress bar, the run summary and tests read them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monotonically increasing counter, or a gauge when set.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Raise to `n` if higher (a high-water mark).
    pub fn max(&self, n: u64) {
        self.0.fetch_max(n, Ordering::Relaxed);
    }
}

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
pub struct StageMetrics {
    pub name: String,
    pub rows_in: Counter,
    pub rows_out: Counter,
    /// Arrow memory of the batches the stage emitted.
    pub bytes_out: Counter,
    pub batches: Counter,
    /// Time spent in the stage's own code, in microseconds.
    pub busy_us: Counter,
    pub dead_letters: Counter,
    /// The reason of the stage's latest dead letter.
    pub last_error: Mutex<Option<String>>,
    /// Only the embed stage counts these.
    pub embed: EmbedMetrics,
}

/// What the embed stage did.
#[derive(Debug, Default)]
pub struct EmbedMetrics {
    /// Rows run through the model.
    pub computed: Counter,
    /// Rows answered from the cache (or by an identical text in the same epoch).
    pub cache_hits: Counter,
    /// Rows cut to `max_tokens`.
    pub truncated: Counter,
    /// Real tokens fed to the model, and tokens including padding.
    pub tokens: Counter,
    pub padded_tokens: Counter,
    /// Forward passes.
    pub inferences: Counter,
    /// Time inside the model, in microseconds.
    pub busy_us: Counter,
    pub drift: super::drift::Drift,
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

impl StageMetrics {
    pub fn set_last_error(&self, error: &str) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(super::secrets::scrub(error).into_owned());
    }
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
