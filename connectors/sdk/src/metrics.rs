//! Counters a stage keeps: every stage's [`StageMetrics`], and the series a
//! kind of stage adds of its own through [`OwnMetrics`]. The engine exports
//! both (`/metrics`, the API, the run summary) without knowing the stage.

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
    /// Labels of this sample besides the pipeline and the stage, e.g.
    /// `("kind", "email")`; one series per distinct set.
    pub labels: Vec<(&'static str, String)>,
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
/// use sluice_connector_sdk::metrics::{OwnMetrics, Sample, SeriesKind, Counter};
///
/// #[derive(Debug, Default)]
/// struct Upper { changed: Counter }
///
/// impl OwnMetrics for Upper {
///     fn samples(&self) -> Vec<Sample> {
///         vec![Sample { name: "sluice_upper_changed_total", help: "Rows changed.",
///                       kind: SeriesKind::Counter, value: self.changed.get() as f64,
///                       labels: vec![] }]
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

impl StageMetrics {
    /// The stage's own metrics, once it registered them.
    pub fn own(&self) -> Option<&Arc<dyn OwnMetrics>> {
        self.own.get()
    }

    /// Record the latest dead letter's reason (the engine scrubs secrets
    /// from it first).
    pub fn set_last_error(&self, error: &str) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
    }
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
