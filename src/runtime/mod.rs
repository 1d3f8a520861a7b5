//! Runs a [`Plan`]: one tokio task per source, stage and sink, joined by bounded
//! channels, plus the dead-letter store and the checkpoint coordinator.
//!
//! ```text
//! source ─▶ stage ─▶ stage ─┬─▶ sink          (every hop: rows + bytes bound)
//!    │         │  └─▶ tap   └─▶ sink
//!    └─────────┴──▶ dead-letter store          (letters tagged with their epoch)
//! sinks, taps, dead-letter store ──ack──▶ coordinator ──▶ checkpoint.json
//! ```
//!
//! A task that fails stops the pipeline: the others are aborted and the epoch in
//! flight is never checkpointed, so the next run replays it.

pub mod channel;
mod open;
mod sample;
pub mod sink_query;
mod tasks;
mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_connector_sdk::Epoch;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::checkpoint::StateLock;
use crate::plan::Plan;
use crate::telemetry::metrics::StageMetrics;
use crate::telemetry::PipelineMetrics;
use crate::{Error, Result};

pub use sample::{sample, Sample};

/// How a run is controlled from outside.
pub struct RunOptions {
    /// Set to `true` to stop: the source stops reading, a final checkpoint is
    /// written, and `run` returns normally.
    pub shutdown: watch::Receiver<bool>,
    /// Counters; pass your own to watch a run while it goes.
    pub metrics: Arc<PipelineMetrics>,
}

impl RunOptions {
    /// Options with fresh metrics sized for `plan`, and a shutdown that never fires
    /// (keep the sender alive to use it).
    pub fn new(plan: &Plan) -> (Self, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        (
            RunOptions {
                shutdown: rx,
                metrics: Arc::new(metrics_for(plan)),
            },
            tx,
        )
    }
}

/// Metrics with a slot for every stage, sink, tap and channel of `plan`.
pub fn metrics_for(plan: &Plan) -> PipelineMetrics {
    let stages = plan
        .stages
        .iter()
        .map(|s| {
            Arc::new(StageMetrics {
                name: s.name.clone(),
                ..Default::default()
            })
        })
        .collect();
    let mut sinks: Vec<_> = plan
        .sinks
        .iter()
        .map(|s| (s.name.clone(), Default::default()))
        .collect();
    sinks.extend(
        plan.stages
            .iter()
            .filter(|s| s.tap)
            .map(|s| (format!("tap:{}", s.name), Default::default())),
    );
    sinks.extend(
        plan.stages
            .iter()
            .filter(|s| s.audit.is_some())
            .map(|s| (format!("audit:{}", s.name), Default::default())),
    );
    let points = plan.stages.iter().map(|s| s.name.as_str());
    let tails = crate::telemetry::tail::Tails::new(points.chain(plan.sinks.iter().map(|s| s.name.as_str())));
    PipelineMetrics {
        stages,
        sinks,
        tails,
        ..Default::default()
    }
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub documents: u64,
    /// Rows written to the first sink.
    pub rows_out: u64,
    pub dead_letters: u64,
    /// Last checkpointed epoch (0: none yet).
    pub epoch: Epoch,
    pub elapsed: Duration,
}

/// Run `plan` to the end (bounded source) or until shutdown: open every
/// participant, wire them into tasks, and supervise the tasks.
pub async fn run(plan: &Plan, options: RunOptions) -> Result<RunSummary> {
    let started = Instant::now();
    let metrics = options.metrics.clone();
    // Held until the run returns: no other process writes this state meanwhile.
    let _lock = StateLock::acquire(&plan.state_dir)?;
    let _tail = crate::inspect::tail_socket::listen(plan, &metrics);
    let participants = open::open(plan, &metrics).await?;
    let running = wire::wire(plan, participants, options);
    supervise(running.tasks).await?;
    let epoch = running.last_epoch.load(std::sync::atomic::Ordering::Relaxed);
    metrics.last_committed_epoch.set(epoch);
    Ok(RunSummary {
        documents: metrics.source_rows.get(),
        rows_out: metrics.sinks.first().map(|(_, c)| c.get()).unwrap_or(0),
        dead_letters: metrics.dead_letters.get(),
        epoch,
        elapsed: started.elapsed(),
    })
}

/// Wait for every task. The first that fails (or panics) stops the others:
/// the epoch in flight is never checkpointed, so the next run replays it.
async fn supervise(mut tasks: JoinSet<Result<()>>) -> Result<()> {
    while let Some(joined) = tasks.join_next().await {
        let failed = match joined {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(e) if e.is_panic() => Some(Error::Internal(format!("a pipeline task panicked: {e}"))),
            Err(_) => None,
        };
        if let Some(e) = failed {
            tasks.abort_all();
            return Err(e);
        }
    }
    Ok(())
}
