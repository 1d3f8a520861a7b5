//! One supervisor per pipeline: it runs the plan, restarts it with exponential
//! backoff when it fails, swaps in a new version on reload, pauses and resumes,
//! and stops with a final checkpoint.
//!
//! Every change of version goes through a graceful stop of the running one (the
//! source stops reading, the open epoch is checkpointed), so a reload or a pause
//! loses nothing and replays nothing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::plan::Plan;
use crate::runtime::{self, RunOptions};
use crate::telemetry::PipelineMetrics;

/// What a supervisor is told to do.
pub enum Command {
    /// Checkpoint, then run this version instead.
    Reload(Arc<Plan>),
    /// Checkpoint and stop reading until `Resume`.
    Pause,
    Resume,
    /// Checkpoint and end the supervisor.
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Starting,
    Running,
    Paused,
    /// Failed; restarts at `retry_at`.
    Backoff,
    /// A bounded source reached its end.
    Finished,
    Stopped,
    /// The file never held a valid pipeline; see `config_errors`.
    Invalid,
}

/// What the API shows of a pipeline besides its metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub state: State,
    pub file: PathBuf,
    /// Runs started after a failure.
    pub restarts: u64,
    /// New versions of the file taken up.
    pub reloads: u64,
    pub last_error: Option<String>,
    /// Errors of the newest version of the file, when it was refused (an older,
    /// valid version keeps running).
    pub config_errors: Option<String>,
    /// When a pipeline in backoff is started again (RFC 3339).
    pub retry_at: Option<String>,
}

/// Restart delays: `initial`, doubled after each failure in a row, up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay after `failures` failures in a row (1 or more).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// The shared face of one pipeline: its status, the metrics of its current run
/// and the plan it runs. The supervisor writes; the API and the daemon read.
pub struct PipelineHandle {
    pub name: String,
    status: Mutex<Status>,
    metrics: Mutex<Arc<PipelineMetrics>>,
    plan: Mutex<Option<Arc<Plan>>>,
    commands: Option<mpsc::UnboundedSender<Command>>,
    /// The rate a stage asks for (`OwnMetrics::rate`) over the last sampling
    /// window, per second, as f64 bits.
    rate: std::sync::atomic::AtomicU64,
}

impl PipelineHandle {
    /// A pipeline whose file has never been valid: listed, with its errors, never run.
    pub fn invalid(name: String, file: PathBuf, errors: String) -> Arc<Self> {
        Arc::new(PipelineHandle {
            name,
            status: Mutex::new(Status {
                state: State::Invalid,
                file,
                restarts: 0,
                reloads: 0,
                last_error: None,
                config_errors: Some(errors),
                retry_at: None,
            }),
            metrics: Mutex::new(Arc::new(PipelineMetrics::default())),
            plan: Mutex::new(None),
            commands: None,
            rate: Default::default(),
        })
    }

    /// Start supervising `plan`.
    pub fn start(plan: Plan, file: PathBuf, backoff: Backoff) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let plan = Arc::new(plan);
        let handle = Arc::new(PipelineHandle {
            name: plan.name.clone(),
            status: Mutex::new(Status {
                state: State::Starting,
                file,
                restarts: 0,
                reloads: 0,
                last_error: None,
                config_errors: None,
                retry_at: None,
            }),
            metrics: Mutex::new(Arc::new(runtime::metrics_for(&plan))),
            plan: Mutex::new(Some(plan.clone())),
            commands: Some(tx),
            rate: Default::default(),
        });
        let task = tokio::spawn(supervise(handle.clone(), plan, rx, backoff));
        (handle, task)
    }

    /// A supervisor is running this pipeline (it is not invalid, and not ended).
    pub fn is_supervised(&self) -> bool {
        self.commands.as_ref().is_some_and(|tx| !tx.is_closed())
    }

    /// Send a command; false when the pipeline has no supervisor (invalid or ended).
    pub fn send(&self, command: Command) -> bool {
        self.commands.as_ref().is_some_and(|tx| tx.send(command).is_ok())
    }

    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    pub fn metrics(&self) -> Arc<PipelineMetrics> {
        lock(&self.metrics).clone()
    }

    /// The version running (or last run); None while the file was never valid.
    pub fn plan(&self) -> Option<Arc<Plan>> {
        lock(&self.plan).clone()
    }

    pub fn set_config_errors(&self, errors: Option<String>) {
        lock(&self.status).config_errors = errors.map(|e| crate::telemetry::secrets::scrub(&e).into_owned());
    }

    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn set_rate(&self, per_second: f64) {
        self.rate
            .store(per_second.to_bits(), std::sync::atomic::Ordering::Relaxed);
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut lock(&self.status));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Commands that arrived while a run was stopping; the strongest wins.
#[derive(Default)]
struct Pending {
    stop: bool,
    pause: Option<bool>,
    plan: Option<Arc<Plan>>,
}

impl Pending {
    fn take(&mut self, command: Command) {
        match command {
            Command::Stop => self.stop = true,
            Command::Pause => self.pause = Some(true),
            Command::Resume => self.pause = Some(false),
            Command::Reload(plan) => self.plan = Some(plan),
        }
    }
}

async fn supervise(
    handle: Arc<PipelineHandle>,
    mut plan: Arc<Plan>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    backoff: Backoff,
) {
    let mut paused = false;
    let mut failures = 0u32;
    loop {
        if paused {
            handle.update(|s| s.state = State::Paused);
            let pending = next_command(&mut commands).await;
            if apply(&handle, &mut plan, &mut paused, &mut failures, pending) {
                return;
            }
            continue;
        }

        let (options, shutdown) = RunOptions::new(&plan);
        *lock(&handle.metrics) = options.metrics.clone();
        *lock(&handle.plan) = Some(plan.clone());
        handle.update(|s| {
            s.state = State::Running;
            s.retry_at = None;
        });
        let running = plan.clone();
        let mut task = tokio::spawn(async move { runtime::run(&running, options).await });
        let mut pending = Pending::default();
        let mut asked = false;
        let outcome = loop {
            tokio::select! {
                done = &mut task => break done,
                command = commands.recv(), if !pending.stop => {
                    match command {
                        Some(Command::Resume) => continue,
                        Some(c) => pending.take(c),
                        None => pending.stop = true,
                    }
                    if !asked {
                        asked = true;
                        let _ = shutdown.send(true);
                    }
                }
            }
        };
        let failed = match outcome {
            Ok(Ok(summary)) => {
                tracing::info!(pipeline = %plan.name, epoch = summary.epoch, "run ended");
                failures = 0;
                None
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("the run panicked: {e}")),
        };
        let failed = failed.map(|e| crate::telemetry::secrets::scrub(&e).into_owned());
        if let Some(error) = &failed {
            tracing::error!(pipeline = %plan.name, "pipeline failed: {error}");
            handle.update(|s| s.last_error = Some(error.clone()));
        }
        if asked {
            if apply(&handle, &mut plan, &mut paused, &mut failures, pending) {
                return;
            }
            continue;
        }
        if failed.is_none() {
            // A bounded source ran to its end: wait for a new version or a stop.
            handle.update(|s| s.state = State::Finished);
            let pending = next_command(&mut commands).await;
            if apply(&handle, &mut plan, &mut paused, &mut failures, pending) {
                return;
            }
            continue;
        }
        failures += 1;
        let delay = backoff.delay(failures);
        let at = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        handle.update(|s| {
            s.state = State::Backoff;
            s.retry_at = Some(at.to_rfc3339());
        });
        tracing::warn!(pipeline = %plan.name, seconds = delay.as_secs_f64(), "restarting after a delay");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {
                handle.update(|s| s.restarts += 1);
            }
            command = commands.recv() => {
                let mut pending = Pending::default();
                match command {
                    Some(c) => pending.take(c),
                    None => pending.stop = true,
                }
                if apply(&handle, &mut plan, &mut paused, &mut failures, pending) {
                    return;
                }
                handle.update(|s| s.restarts += 1);
            }
        }
    }
}

/// Wait for the next command (a closed channel means stop).
async fn next_command(commands: &mut mpsc::UnboundedReceiver<Command>) -> Pending {
    let mut pending = Pending::default();
    match commands.recv().await {
        Some(c) => pending.take(c),
        None => pending.stop = true,
    }
    pending
}

/// Take up what arrived; true when the supervisor should end.
fn apply(
    handle: &PipelineHandle,
    plan: &mut Arc<Plan>,
    paused: &mut bool,
    failures: &mut u32,
    pending: Pending,
) -> bool {
    if pending.stop {
        handle.update(|s| s.state = State::Stopped);
        tracing::info!(pipeline = %plan.name, "stopped");
        return true;
    }
    if let Some(p) = pending.pause {
        *paused = p;
    }
    if let Some(new) = pending.plan {
        *plan = new;
        *lock(&handle.plan) = Some(plan.clone());
        *failures = 0;
        handle.update(|s| {
            s.reloads += 1;
            s.config_errors = None;
            s.last_error = None;
        });
        tracing::info!(pipeline = %plan.name, "reloaded");
    }
    false
}

#[cfg(test)]
mod tests {
    use super::Backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(5),
        };
        let delays: Vec<u64> = (1..=6).map(|n| b.delay(n).as_millis() as u64).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(b.delay(1_000), Duration::from_secs(5));
    }
}
