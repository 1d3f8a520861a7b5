//! Wiring the opened participants into tasks: bounded channels from the
//! source through the stages to the sinks and taps, the dead-letter store
//! hearing from every producer, and the checkpoint coordinator hearing from
//! every sink, tap and the dead-letter store.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::channel::{bounded, Receiver, Sender};
use super::open::Participants;
use super::tasks::{SinkLetters, SinkTask, SourceTask, StageTask};
use super::RunOptions;
use crate::checkpoint::{coordinate, CoordinatorMsg};
use crate::dlq::DlqMsg;
use crate::plan::Plan;
use crate::stages::StageRunner;
use crate::telemetry::{ChannelStats, PipelineMetrics};
use crate::Result;

/// The running tasks, and the last epoch the coordinator checkpointed once
/// they are done.
pub(super) struct Running {
    pub tasks: JoinSet<Result<()>>,
    pub last_epoch: Arc<AtomicU64>,
}

/// What every task is wired with.
struct Wiring<'a> {
    plan: &'a Plan,
    metrics: Arc<PipelineMetrics>,
    coordinator: mpsc::Sender<CoordinatorMsg>,
    checkpointed: watch::Receiver<u64>,
    dlq: mpsc::Sender<DlqMsg>,
    first_epoch: u64,
    tasks: JoinSet<Result<()>>,
}

impl Wiring<'_> {
    /// A bounded channel, registered in the metrics under `name`.
    fn channel(&self, name: String) -> (Sender, Receiver) {
        let stats = Arc::new(ChannelStats {
            name,
            ..Default::default()
        });
        self.metrics
            .channels
            .lock()
            .expect("channel list")
            .push(stats.clone());
        bounded(self.plan.channels, stats)
    }
}

/// Spawn every task of the run.
pub(super) fn wire(plan: &Plan, p: Participants, options: RunOptions) -> Running {
    let participants = p.sinks.len() + p.taps.len() + p.audits.len() + 1;
    let (coord_tx, coord_rx) = mpsc::channel(1024);
    let (committed_tx, committed_rx) = watch::channel(p.committed);
    // Bounded like every hop: a flood of dead letters slows the producers.
    let (dlq_tx, dlq_rx) = mpsc::channel(1024);
    let mut w = Wiring {
        plan,
        metrics: options.metrics.clone(),
        coordinator: coord_tx,
        checkpointed: committed_rx,
        dlq: dlq_tx,
        first_epoch: p.committed + 1,
        tasks: JoinSet::new(),
    };
    // Sinks (and taps) first, so their senders exist when stages are wired.
    // The dead-letter store hears from the source, every stage and every sink
    // (a sink's store may refuse a document): producers 0, 1..=stages, then sinks.
    let sink_count = p.sinks.len();
    let (sink_senders, tap_senders, audit_senders) = spawn_sinks(&mut w, p.sinks, p.taps, p.audits);
    let source_outputs = spawn_stages(&mut w, p.stages, sink_senders, tap_senders, audit_senders);
    w.tasks.spawn(crate::dlq::run_store(
        p.dlq_log,
        p.open_letters,
        plan.stages.len() + 1 + sink_count,
        participants - 1,
        dlq_rx,
        w.coordinator.clone(),
        w.metrics.clone(),
        w.first_epoch,
    ));
    let source_task = SourceTask {
        source: p.source,
        ctx: p.source_ctx,
        outputs: source_outputs,
        dlq: w.dlq.clone(),
        coordinator: w.coordinator.clone(),
        committed: w.checkpointed.clone(),
        shutdown: options.shutdown,
        interval: plan.checkpoint_interval,
        max_bytes: plan.epoch_max_bytes,
        first_epoch: w.first_epoch,
        metrics: w.metrics.clone(),
    };
    w.tasks.spawn(source_task.run());
    // Supervised like every task: a checkpoint that cannot be written stops the
    // run (after retries) instead of leaving it going with none.
    let last_epoch = Arc::new(AtomicU64::new(p.committed));
    let coordinator = coordinate(
        plan.name.clone(),
        p.store,
        participants,
        coord_rx,
        committed_tx,
        w.metrics.clone(),
    );
    let last = last_epoch.clone();
    w.tasks.spawn(async move {
        let epoch = coordinator.await?;
        last.store(epoch, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    });
    Running {
        tasks: w.tasks,
        last_epoch,
    }
}

type Senders = Vec<Sender>;
type TapSenders = Vec<(usize, Sender)>;

/// One task per sink, tap and audit table; their input senders, the taps'
/// and audit tables' with the index of the stage each records.
fn spawn_sinks(
    w: &mut Wiring<'_>,
    sinks: Vec<(String, Box<dyn sluice_connector_sdk::Sink>, super::tasks::Letters)>,
    taps: Vec<(usize, Box<dyn sluice_connector_sdk::Sink>)>,
    audits: Vec<(usize, Box<dyn sluice_connector_sdk::Sink>)>,
) -> (Senders, TapSenders, TapSenders) {
    let mut sink_senders = Vec::new();
    for (id, (name, sink, letters)) in sinks.into_iter().enumerate() {
        let (tx, rx) = w.channel(format!("sink:{name}"));
        sink_senders.push(tx);
        let dlq = SinkLetters {
            letters,
            tx: w.dlq.clone(),
            producer: w.plan.stages.len() + 1 + id,
        };
        let mut task = sink_task(w, name, id, sink, rx, Some(dlq));
        task.tail = w.metrics.tails.point(&task.name).cloned();
        w.tasks.spawn(task.run());
    }
    let mut id = sink_senders.len();
    let mut side =
        |w: &mut Wiring<'_>, what: &str, list: Vec<(usize, Box<dyn sluice_connector_sdk::Sink>)>| {
            let mut senders = Vec::new();
            for (stage_index, tap) in list {
                let name = format!("{what}:{}", w.plan.stages[stage_index].name);
                let (tx, rx) = w.channel(name.clone());
                senders.push((stage_index, tx));
                let task = sink_task(w, name, id, tap, rx, None);
                w.tasks.spawn(task.run());
                id += 1;
            }
            senders
        };
    let tap_senders = side(w, "tap", taps);
    let audit_senders = side(w, "audit", audits);
    (sink_senders, tap_senders, audit_senders)
}

fn sink_task(
    w: &Wiring<'_>,
    name: String,
    id: usize,
    sink: Box<dyn sluice_connector_sdk::Sink>,
    input: Receiver,
    dlq: Option<SinkLetters>,
) -> SinkTask {
    SinkTask {
        name,
        id,
        sink,
        input,
        coordinator: w.coordinator.clone(),
        first_epoch: w.first_epoch,
        metrics: w.metrics.clone(),
        checkpointed: w.checkpointed.clone(),
        dlq,
        tail: None,
    }
}

/// One task per stage, last to first: each one's outputs are the next stage
/// (or the sinks), plus its tap. Returns the first stage's input senders (the
/// source's outputs).
fn spawn_stages(
    w: &mut Wiring<'_>,
    runners: Vec<StageRunner>,
    sink_senders: Senders,
    tap_senders: TapSenders,
    audit_senders: TapSenders,
) -> Senders {
    let mut downstream = sink_senders;
    let stages = w.plan.stages.iter().zip(runners).enumerate().rev();
    for (i, (stage, runner)) in stages {
        let mut outputs = downstream;
        let for_stage = |senders: &TapSenders| {
            senders
                .iter()
                .filter(|(s, _)| *s == i)
                .map(|(_, tx)| tx.clone())
                .collect::<Vec<_>>()
        };
        outputs.extend(for_stage(&tap_senders));
        // The audit table hears barriers like every output, and only the
        // stage's audit rows in between.
        let data_outputs = outputs.len();
        outputs.extend(for_stage(&audit_senders));
        let (tx, rx) = w.channel(format!("stage:{}", stage.name));
        let task = StageTask {
            name: stage.name.clone(),
            producer: i + 1,
            runner: Some(runner),
            parallelism: stage.parallelism,
            outputs,
            data_outputs,
            dlq: w.dlq.clone(),
            first_epoch: w.first_epoch,
            metrics: w.metrics.clone(),
            index: i,
        };
        w.tasks.spawn(task.run(rx));
        downstream = vec![tx];
    }
    downstream
}
