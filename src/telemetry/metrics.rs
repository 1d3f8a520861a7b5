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
    /// What this kind of stage counts of its own, registered by the stage
    /// when it is built (see [`OwnMetrics`]).
    pub own: std::sync::OnceLock<Arc<dyn OwnMetrics>>,
}

/// How a stage's own series is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    Counter,
    Gauge,
}

/// One value of a stage's own series; the engine labels it with the
/// pipeline and the stage.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The Prometheus name, `sluice_<kind>_<what>`.
    pub name: &'static str,
    pub help: &'static str,
    pub kind: SeriesKind,
    pub value: f64,
}

/// A pipeline-wide rate the daemon computes over a window from a count.
#[derive(Debug, Clone)]
pub struct RateSeries {
    /// The Prometheus gauge's name and help.
    pub name: &'static str,
    pub help: &'static str,
    /// The count so far.
    pub count: u64,
}

/// What a kind of stage counts beyond every stage's counters. The stage
/// registers it on its [`StageMetrics::own`] when built and updates it as it
/// runs; `/metrics`, the API's detail, the run summary and the dry run show
/// it without knowing which stage it is.
///
/// ```
/// use sluice::telemetry::metrics::{OwnMetrics, Sample, SeriesKind, Counter};
///
/// #[derive(Debug, Default)]
/// struct Upper { changed: Counter }
///
/// impl OwnMetrics for Upper {
///     fn samples(&self) -> Vec<Sample> {
///         vec![Sample { name: "sluice_upper_changed_total", help: "Rows changed.",
///                       kind: SeriesKind::Counter, value: self.changed.get() as f64 }]
///     }
///     fn detail(&self) -> Option<(&'static str, serde_json::Value)> {
///         Some(("upper", serde_json::json!({"changed": self.changed.get()})))
///     }
///     fn summary(&self, stage: &str) -> Option<String> {
///         Some(format!("{stage}: {} rows changed", self.changed.get()))
///     }
/// }
/// ```
pub trait OwnMetrics: Send + Sync + std::fmt::Debug {
    /// The series to export now, in a fixed order; none while there is
    /// nothing to show.
    fn samples(&self) -> Vec<Sample>;
    /// The API's detail of the stage: a key and its JSON.
    fn detail(&self) -> Option<(&'static str, serde_json::Value)>;
    /// One line for `sluice run`'s summary.
    fn summary(&self, stage: &str) -> Option<String>;
    /// Called when the stage has finished an epoch.
    fn end_epoch(&self) {}
    /// A count whose rate the daemon exports per pipeline.
    fn rate(&self) -> Option<RateSeries> {
        None
    }
    /// Tokens fed to a model so far, for the dry run's estimate.
    fn model_tokens(&self) -> Option<u64> {
        None
    }
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
    /// The stage's own metrics, once it registered them.
    pub fn own(&self) -> Option<&Arc<dyn OwnMetrics>> {
        self.own.get()
    }

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
