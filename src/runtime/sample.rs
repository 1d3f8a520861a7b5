//! A measured sample: the first documents of a source run through the plan's
//! stages, in-process and without sinks, for `sluice backfill --dry-run`'s
//! estimates. Nothing is written and no checkpoint is touched.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::record_batch::RecordBatch;
use sluice_connector_sdk::documents::CONTENT;

use crate::plan::Plan;
use crate::stages::{StageContext, StageRunner};
use crate::telemetry::metrics::StageMetrics;
use crate::{Error, Result};

/// What the sample took.
#[derive(Debug, Clone)]
pub struct Sample {
    pub documents: u64,
    /// Content bytes of the sampled documents.
    pub bytes: u64,
    /// Tokens the embed stage fed its model (None without an embed stage).
    pub tokens: Option<u64>,
    /// Time in the stages (reading the sample is not counted).
    pub elapsed: Duration,
}

/// Read up to `documents` documents from a fresh source and run them through
/// every stage.
pub async fn sample(plan: &Plan, documents: usize) -> Result<Sample> {
    let ctx = plan.source_context();
    let mut source = plan
        .source
        .config
        .build(&ctx)
        .map_err(|e| Error::connector("source", e))?;
    source
        .open(None)
        .await
        .map_err(|e| Error::connector("source", e))?;
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut rows = 0;
    while rows < documents {
        match source
            .next_batch()
            .await
            .map_err(|e| Error::connector("source", e))?
        {
            Some(b) => {
                rows += b.num_rows();
                batches.push(b);
            }
            None => break,
        }
    }
    drop(source);
    let bytes = batches
        .iter()
        .filter_map(|b| b.column_by_name(CONTENT))
        .map(|c| match c.as_binary_opt::<i64>() {
            Some(bin) => bin.iter().flatten().map(|v| v.len() as u64).sum(),
            None => c.get_buffer_memory_size() as u64,
        })
        .sum();

    let metrics = super::metrics_for(plan).stages;
    // A state folder of its own: the embed cache must not answer the sample.
    let scratch = std::env::temp_dir().join(format!(
        "sluice-sample-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let result = run_stages(plan, &metrics, batches, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let elapsed = result?;
    Ok(Sample::new(&metrics, rows, bytes, elapsed))
}

/// Every stage over the whole sample, one after the other; the time they took.
async fn run_stages(
    plan: &Plan,
    metrics: &[Arc<StageMetrics>],
    mut batches: Vec<RecordBatch>,
    scratch: &std::path::Path,
) -> Result<Duration> {
    let started = Instant::now();
    for (stage, m) in plan.stages.iter().zip(metrics) {
        let runner = stage
            .config
            .build(&StageContext {
                name: stage.name.clone(),
                input: stage.input.clone(),
                output: stage.output.clone(),
                state_dir: scratch.to_path_buf(),
                metrics: m.clone(),
            })
            .map_err(|e| Error::stage(&stage.name, e))?;
        let input = std::mem::take(&mut batches);
        batches = tokio::task::spawn_blocking(move || run_stage(runner, input))
            .await
            .map_err(|e| Error::Internal(format!("sample stage: {e}")))?
            .map_err(|e| Error::stage(&stage.name, e))?;
    }
    Ok(started.elapsed())
}

impl Sample {
    fn new(metrics: &[Arc<StageMetrics>], documents: usize, bytes: u64, elapsed: Duration) -> Self {
        let embeds: Vec<u64> = metrics
            .iter()
            .filter_map(|m| m.own().and_then(|o| o.model_tokens()))
            .collect();
        Sample {
            documents: documents as u64,
            bytes,
            tokens: (!embeds.is_empty()).then(|| embeds.iter().sum()),
            elapsed,
        }
    }
}

fn run_stage(runner: StageRunner, input: Vec<RecordBatch>) -> sluice_connector_sdk::Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    match runner {
        StageRunner::PerBatch(t) => {
            for b in input {
                out.push(t.apply(b)?.batch);
            }
        }
        StageRunner::Buffered(mut t) => {
            for b in input {
                out.extend(t.push(b)?.into_iter().map(|o| o.batch));
            }
            out.extend(t.flush()?.into_iter().map(|o| o.batch));
        }
    }
    Ok(out)
}
