//! `sluice run FILE`

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use tokio::sync::watch;

use super::EXIT_OK;
use crate::runtime::{self, RunOptions};
use crate::telemetry::PipelineMetrics;

/// Flip `shutdown` on SIGINT or SIGTERM.
pub(super) fn on_signal(shutdown: watch::Sender<bool>) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    let _ = ctrl_c.await;
                    let _ = shutdown.send(true);
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        eprintln!("stopping: finishing the current epoch and writing a checkpoint…");
        let _ = shutdown.send(true);
    });
}

/// A progress bar fed from the metrics, for bounded sources on a terminal.
fn progress(metrics: Arc<PipelineMetrics>, show: bool) -> Option<(ProgressBar, tokio::task::JoinHandle<()>)> {
    if !show || !std::io::stdout().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} documents, ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    crate::telemetry::set_progress(bar.clone());
    let b = bar.clone();
    let task = tokio::spawn(async move {
        loop {
            b.set_length(metrics.items_total.get());
            b.set_position(metrics.items_done.get());
            let rows: u64 = metrics.sinks.first().map(|(_, c)| c.get()).unwrap_or(0);
            b.set_message(format!(
                "{} / {}, {rows} rows out, {} dead letters",
                HumanBytes(metrics.bytes_done.get()),
                HumanBytes(metrics.bytes_total.get()),
                metrics.dead_letters.get()
            ));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Some((bar, task))
}

/// Run the pipeline; when a model migration starts or ends (`sluice migrate`)
/// the run stops at a checkpoint and starts again with the new plan, so the
/// stream writes the migration's shadow too.
pub async fn run(pipeline: &Path, state: Option<&Path>, show_progress: bool) -> anyhow::Result<u8> {
    loop {
        let plan = super::load(pipeline, state)?;
        let watched = crate::migrate::stamp(&plan.state_dir);
        let restart = Arc::new(AtomicBool::new(false));
        let code = run_plan_watching(plan, show_progress, Some((watched, restart.clone()))).await?;
        if !restart.load(Ordering::Relaxed) {
            return Ok(code);
        }
        eprintln!("a model migration changed what this pipeline writes: starting again from the checkpoint");
    }
}

/// Run `plan` with Ctrl-C handling and a progress bar; print the summary.
pub(super) async fn run_plan(plan: crate::plan::Plan, show_progress: bool) -> anyhow::Result<u8> {
    run_plan_watching(plan, show_progress, None).await
}

/// Stop the run (and set the flag) when the migration stamp moves off `watched`.
fn watch_migrations(
    state_dir: std::path::PathBuf,
    watched: String,
    restart: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if stop.is_closed() {
                return;
            }
            if crate::migrate::stamp(&state_dir) != watched {
                restart.store(true, Ordering::Relaxed);
                let _ = stop.send(true);
                return;
            }
        }
    });
}

async fn run_plan_watching(
    plan: crate::plan::Plan,
    show_progress: bool,
    watching: Option<(String, Arc<AtomicBool>)>,
) -> anyhow::Result<u8> {
    let (options, shutdown) = RunOptions::new(&plan);
    if let Some((watched, restart)) = watching {
        watch_migrations(plan.state_dir.clone(), watched, restart, shutdown.clone());
    }
    on_signal(shutdown);
    let metrics = options.metrics.clone();
    let bar = progress(options.metrics.clone(), show_progress);
    let result = runtime::run(&plan, options).await;
    if let Some((bar, task)) = bar {
        task.abort();
        crate::telemetry::clear_progress();
        bar.finish_and_clear();
    }
    let summary = result?;
    let sinks: Vec<&str> = plan.sinks.iter().map(|s| s.name.as_str()).collect();
    println!(
        "{}: {} documents, {} rows to {}, {} dead letters, checkpoint epoch {}, {:.1}s, peak RSS {}",
        plan.name,
        summary.documents,
        summary.rows_out,
        sinks.join(", "),
        summary.dead_letters,
        summary.epoch,
        summary.elapsed.as_secs_f64(),
        crate::telemetry::peak_rss()
            .map(|b| HumanBytes(b).to_string())
            .unwrap_or_else(|| "unknown".into())
    );
    for stage in &metrics.stages {
        if let Some(line) = stage.own().and_then(|o| o.summary(&stage.name)) {
            println!("  {line}");
        }
    }
    Ok(EXIT_OK)
}
