//! Opening a run's participants before any task starts, so that a set-up error
//! (a sink that cannot connect, a model that cannot load, a foreign checkpoint)
//! stops the run cleanly with nothing written.

use std::sync::Arc;

use sluice_connector_sdk::epoch_log::EpochLog;
use sluice_connector_sdk::{Epoch, Sink, Source, SourceContext};

use super::sink_query;
use super::tasks::Letters;
use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::inspect::taps::{tap_log, TapSink};
use crate::plan::Plan;
use crate::stages::{StageContext, StageRunner};
use crate::telemetry::PipelineMetrics;
use crate::{Error, Result};

/// Everything a run drives, opened and rolled back to the last checkpoint.
pub(super) struct Participants {
    pub store: CheckpointStore,
    /// The last checkpointed epoch (0: none).
    pub committed: Epoch,
    pub source: Box<dyn Source>,
    pub source_ctx: SourceContext,
    /// Each sink with its name and the dead letters its store refuses.
    pub sinks: Vec<(String, Box<dyn Sink>, Letters)>,
    /// Each tap with the index of the stage it records.
    pub taps: Vec<(usize, Box<dyn Sink>)>,
    /// Each stage's audit table, with the stage's index.
    pub audits: Vec<(usize, Box<dyn Sink>)>,
    pub stages: Vec<StageRunner>,
    pub dlq_log: EpochLog,
    pub open_letters: std::collections::HashSet<String>,
}

/// Load the checkpoint, build and open the source, sinks and taps, roll the
/// dead-letter store back, and build the stages.
pub(super) async fn open(plan: &Plan, metrics: &Arc<PipelineMetrics>) -> Result<Participants> {
    let store = CheckpointStore::new(plan.checkpoint_file());
    let checkpoint = store.load_for(&plan.name)?;
    let committed = checkpoint.as_ref().map(|c| c.epoch).unwrap_or(0);
    if let Some(c) = &checkpoint {
        record_checkpoint(c, metrics);
    }
    if committed > 0 {
        tracing::info!(epoch = committed, "resuming from checkpoint");
    }
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
    let (sinks, taps, audits) = open_sinks(plan, committed).await?;
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
    Ok(Participants {
        store,
        committed,
        source,
        source_ctx,
        sinks,
        taps,
        audits,
        stages: build_stages(plan, metrics)?,
        dlq_log,
        open_letters,
    })
}

fn record_checkpoint(c: &Checkpoint, metrics: &PipelineMetrics) {
    metrics.last_committed_epoch.set(c.epoch);
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&c.written_at) {
        metrics
            .last_checkpoint_ms
            .set(at.timestamp_millis().max(0) as u64);
    }
}

type Sinks = Vec<(String, Box<dyn Sink>, Letters)>;
type Taps = Vec<(usize, Box<dyn Sink>)>;

/// Build every sink (with its query), tap and audit table, then open each,
/// rolling it back to `committed`.
async fn open_sinks(plan: &Plan, committed: Epoch) -> Result<(Sinks, Taps, Taps)> {
    let mut sinks: Sinks = Vec::new();
    for s in &plan.sinks {
        let what = format!("sink `{}`", s.name);
        let ctx = plan.sink_context(s);
        let sink = s
            .config
            .build(&ctx, s.input.clone())
            .map_err(|e| Error::connector(&what, e))?;
        let sink = sink_query::ShapedSink::wrap(sink, plan, s, ctx.dead_letters.clone())?;
        sinks.push((s.name.clone(), sink, ctx.dead_letters));
    }
    let mut taps: Taps = Vec::new();
    for (i, stage) in plan.stages.iter().enumerate().filter(|(_, s)| s.tap) {
        let log = tap_log(&plan.tap_dir(&stage.name))?;
        taps.push((
            i,
            Box::new(TapSink::new(log, stage.output.clone(), plan.tap_retain_epochs)),
        ));
    }
    let mut audits: Taps = Vec::new();
    for (i, stage) in plan.stages.iter().enumerate() {
        if let Some(audit) = &stage.audit {
            let log = tap_log(&plan.audit_dir(&stage.name))?;
            let schema = crate::inspect::audit::stamped_schema(&audit.schema);
            audits.push((i, Box::new(TapSink::new(log, schema, u64::MAX))));
        }
    }
    for (name, sink, _) in sinks.iter_mut() {
        sink.open(committed)
            .await
            .map_err(|e| Error::connector(format!("sink `{name}`"), e))?;
    }
    for (_, tap) in taps.iter_mut().chain(audits.iter_mut()) {
        tap.open(committed)
            .await
            .map_err(|e| Error::connector("tap", e))?;
    }
    Ok((sinks, taps, audits))
}

fn build_stages(plan: &Plan, metrics: &PipelineMetrics) -> Result<Vec<StageRunner>> {
    plan.stages
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
        .collect()
}
