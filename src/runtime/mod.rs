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
mod sample;
mod sink_query;
mod tasks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_connector_sdk::{Epoch, Sink};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::checkpoint::{coordinate, CheckpointStore, StateLock};
use crate::inspect::taps::{tap_log, TapSink};
use crate::plan::Plan;
use crate::stages::StageContext;
use crate::telemetry::metrics::StageMetrics;
use crate::telemetry::{ChannelStats, PipelineMetrics};
use crate::{Error, Result};
use channel::{bounded, Sender};
use tasks::{Letters, SinkLetters, SinkTask, SourceTask, StageTask};

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
    PipelineMetrics {
        stages,
        sinks,
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

/// Run `plan` to the end (bounded source) or until shutdown.
pub async fn run(plan: &Plan, options: RunOptions) -> Result<RunSummary> {
    let started = Instant::now();
    let metrics = options.metrics.clone();
    // Held until the run returns: no other process writes this state meanwhile.
    let _lock = StateLock::acquire(&plan.state_dir)?;
    let store = CheckpointStore::new(plan.checkpoint_file());
    let checkpoint = store.load_for(&plan.name)?;
    let committed = checkpoint.as_ref().map(|c| c.epoch).unwrap_or(0);
    if let Some(c) = &checkpoint {
        metrics.last_committed_epoch.set(c.epoch);
        if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&c.written_at) {
            metrics
                .last_checkpoint_ms
                .set(at.timestamp_millis().max(0) as u64);
        }
    }
    if committed > 0 {
        tracing::info!(epoch = committed, "resuming from checkpoint");
    }
    let first_epoch = committed + 1;

    // Build and open everything before any task starts, so set-up errors are clean.
    let source_ctx = plan.source_context();
    let mut source = plan
        .source
        .config
        .build(&source_ctx)
        .map_err(|e| Error::connector("source", e))?;
    source
        .open(checkpoint.map(|c| c.source))
        .await
        .map_err(|e| Error::connector("source", e))?;

    let mut sinks: Vec<(String, Box<dyn Sink>, Letters)> = Vec::new();
    for s in &plan.sinks {
        let what = format!("sink `{}`", s.name);
        let ctx = plan.sink_context(s);
        let sink = s
            .config
            .build(&ctx, s.input.clone())
            .map_err(|e| Error::connector(&what, e))?;
        let sink = match &s.query {
            Some(query) => sink_query::QueriedSink::wrap(sink, query, plan, s)?,
            None => sink,
        };
        sinks.push((s.name.clone(), sink, ctx.dead_letters));
    }
    let mut taps: Vec<(usize, Box<dyn Sink>)> = Vec::new();
    for (i, stage) in plan.stages.iter().enumerate().filter(|(_, s)| s.tap) {
        let log = tap_log(&plan.tap_dir(&stage.name))?;
        taps.push((
            i,
            Box::new(TapSink::new(log, stage.output.clone(), plan.tap_retain_epochs)),
        ));
    }
    for (name, sink, _) in sinks.iter_mut() {
        sink.open(committed)
            .await
            .map_err(|e| Error::connector(format!("sink `{name}`"), e))?;
    }
    for (_, tap) in taps.iter_mut() {
        tap.open(committed)
            .await
            .map_err(|e| Error::connector("tap", e))?;
    }
    let dlq_log = crate::dlq::log(&plan.dlq_dir())?;
    dlq_log
        .rollback(committed)
        .await
        .map_err(|e| Error::connector("dead-letter store", e))?;
    let pruned = crate::dlq::prune(&plan.dlq_dir(), plan.dlq_retention)?;
    if pruned > 0 {
        tracing::info!(files = pruned, "dead letters older than the retention pruned");
    }
    let open_letters = crate::dlq::open_letters(&plan.dlq_dir(), &dlq_log).await?;
    let transforms = plan
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let ctx = StageContext {
                name: s.name.clone(),
                input: s.input.clone(),
                output: s.output.clone(),
                state_dir: plan.state_dir.clone(),
                metrics: metrics.stages[i].clone(),
            };
            s.config.build(&ctx).map_err(|e| Error::stage(&s.name, e))
        })
        .collect::<Result<Vec<_>>>()?;

    let participants = sinks.len() + taps.len() + 1;
    let (coord_tx, coord_rx) = mpsc::channel(1024);
    let (committed_tx, committed_rx) = watch::channel(committed);
    // Bounded like every hop: a flood of dead letters slows the producers.
    let (dlq_tx, dlq_rx) = mpsc::channel(1024);
    let mut set: JoinSet<Result<()>> = JoinSet::new();

    let channel = |name: String| {
        let stats = Arc::new(ChannelStats {
            name,
            ..Default::default()
        });
        metrics.channels.lock().expect("channel list").push(stats.clone());
        bounded(plan.channels, stats)
    };

    // Sinks (and taps) first, so their senders exist when stages are wired.
    // The dead-letter store hears from the source, every stage and every sink
    // (a sink's store may refuse a document): producers 0, 1..=stages, then sinks.
    let sink_count = sinks.len();
    let mut sink_senders = Vec::new();
    for (id, (name, sink, letters)) in sinks.into_iter().enumerate() {
        let (tx, rx) = channel(format!("sink:{name}"));
        sink_senders.push(tx);
        let task = SinkTask {
            name,
            id,
            sink,
            input: rx,
            coordinator: coord_tx.clone(),
            first_epoch,
            metrics: metrics.clone(),
            checkpointed: committed_rx.clone(),
            dlq: Some(SinkLetters {
                letters,
                tx: dlq_tx.clone(),
                producer: plan.stages.len() + 1 + id,
            }),
        };
        set.spawn(task.run());
    }
    let mut tap_senders: Vec<(usize, Sender)> = Vec::new();
    let tap_base = sink_senders.len();
    for (k, (stage_index, tap)) in taps.into_iter().enumerate() {
        let name = format!("tap:{}", plan.stages[stage_index].name);
        let (tx, rx) = channel(name.clone());
        tap_senders.push((stage_index, tx));
        let task = SinkTask {
            name,
            id: tap_base + k,
            sink: tap,
            input: rx,
            coordinator: coord_tx.clone(),
            first_epoch,
            metrics: metrics.clone(),
            checkpointed: committed_rx.clone(),
            dlq: None,
        };
        set.spawn(task.run());
    }

    // Stages, last to first: each one's outputs are the next stage (or the sinks),
    // plus its tap.
    let mut downstream = sink_senders;
    for (i, (stage, transform)) in plan.stages.iter().zip(transforms).enumerate().rev() {
        let mut outputs = downstream;
        outputs.extend(
            tap_senders
                .iter()
                .filter(|(s, _)| *s == i)
                .map(|(_, tx)| tx.clone()),
        );
        let (tx, rx) = channel(format!("stage:{}", stage.name));
        let task = StageTask {
            name: stage.name.clone(),
            producer: i + 1,
            runner: Some(transform),
            parallelism: stage.parallelism,
            outputs,
            dlq: dlq_tx.clone(),
            first_epoch,
            metrics: metrics.clone(),
            index: i,
        };
        set.spawn(task.run(rx));
        downstream = vec![tx];
    }
    drop(tap_senders);

    set.spawn(crate::dlq::run_store(
        dlq_log,
        open_letters,
        plan.stages.len() + 1 + sink_count,
        participants - 1,
        dlq_rx,
        coord_tx.clone(),
        metrics.clone(),
        first_epoch,
    ));
    let source_task = SourceTask {
        source,
        ctx: source_ctx,
        outputs: downstream,
        dlq: dlq_tx,
        coordinator: coord_tx,
        committed: committed_rx,
        shutdown: options.shutdown,
        interval: plan.checkpoint_interval,
        max_bytes: plan.epoch_max_bytes,
        first_epoch,
        metrics: metrics.clone(),
    };
    set.spawn(source_task.run());
    // Supervised like every task: a checkpoint that cannot be written stops the
    // run (after retries) instead of leaving it going with none.
    let last_epoch = Arc::new(std::sync::atomic::AtomicU64::new(committed));
    let coordinator = coordinate(
        plan.name.clone(),
        store,
        participants,
        coord_rx,
        committed_tx,
        metrics.clone(),
    );
    let last = last_epoch.clone();
    set.spawn(async move {
        let epoch = coordinator.await?;
        last.store(epoch, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    });

    while let Some(joined) = set.join_next().await {
        let failed = match joined {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(e) if e.is_panic() => Some(Error::Internal(format!("a pipeline task panicked: {e}"))),
            Err(_) => None,
        };
        if let Some(e) = failed {
            set.abort_all();
            return Err(e);
        }
    }
    let epoch = last_epoch.load(std::sync::atomic::Ordering::Relaxed);
    metrics.last_committed_epoch.set(epoch);
    Ok(RunSummary {
        documents: metrics.source_rows.get(),
        rows_out: metrics.sinks.first().map(|(_, c)| c.get()).unwrap_or(0),
        dead_letters: metrics.dead_letters.get(),
        epoch,
        elapsed: started.elapsed(),
    })
}
