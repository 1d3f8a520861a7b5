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

/// Where a replay's outcome goes: how many documents will be read again.
pub type ReplayDone = tokio::sync::oneshot::Sender<Result<usize, String>>;

/// What a supervisor is told to do.
pub enum Command {
    /// Checkpoint, then run this version instead.
    Reload(Arc<Plan>),
    /// Checkpoint and stop reading until `Resume`.
    Pause,
    Resume,
    /// Checkpoint and end the supervisor.
    Stop,
    /// Checkpoint, forget these documents in the source's position so the
    /// next run reads them again (dead letters replayed), and go on. The
    /// answer is how many documents will be read again.
    Replay(Vec<String>, ReplayDone),
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
    /// Status, metrics and plan change together, under one lock.
    shared: Mutex<Shared>,
    commands: Option<mpsc::UnboundedSender<Command>>,
    /// The rate a stage asks for (`OwnMetrics::rate`) over the last sampling
    /// window, per second, as f64 bits.
    rate: std::sync::atomic::AtomicU64,
    /// The last minutes of throughput, for the console.
    history: Mutex<super::history::History>,
}

struct Shared {
    status: Status,
    /// The metrics of the current (or last) run.
    metrics: Arc<PipelineMetrics>,
    /// The version running (or last run); None while the file was never valid.
    plan: Option<Arc<Plan>>,
}

impl PipelineHandle {
    /// A pipeline whose file has never been valid: listed, with its errors, never run.
    pub fn invalid(name: String, file: PathBuf, errors: String) -> Arc<Self> {
        Arc::new(PipelineHandle {
            name,
            shared: Mutex::new(Shared {
                status: Status {
                    state: State::Invalid,
                    file,
                    restarts: 0,
                    reloads: 0,
                    last_error: None,
                    config_errors: Some(errors),
                    retry_at: None,
                },
                metrics: Arc::new(PipelineMetrics::default()),
                plan: None,
            }),
            commands: None,
            rate: Default::default(),
            history: Default::default(),
        })
    }

    /// Start supervising `plan`.
    pub fn start(plan: Plan, file: PathBuf, backoff: Backoff) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let plan = Arc::new(plan);
        let handle = Arc::new(PipelineHandle {
            name: plan.name.clone(),
            shared: Mutex::new(Shared {
                status: Status {
                    state: State::Starting,
                    file,
                    restarts: 0,
                    reloads: 0,
                    last_error: None,
                    config_errors: None,
                    retry_at: None,
                },
                metrics: Arc::new(runtime::metrics_for(&plan)),
                plan: Some(plan.clone()),
            }),
            commands: Some(tx),
            rate: Default::default(),
            history: Default::default(),
        });
        let supervisor = Supervisor {
            handle: handle.clone(),
            plan,
            commands: rx,
            backoff,
            paused: false,
            failures: 0,
        };
        let task = tokio::spawn(supervisor.run());
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

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn status(&self) -> Status {
        self.shared().status.clone()
    }

    pub fn metrics(&self) -> Arc<PipelineMetrics> {
        self.shared().metrics.clone()
    }

    /// The version running (or last run); None while the file was never valid.
    pub fn plan(&self) -> Option<Arc<Plan>> {
        self.shared().plan.clone()
    }

    pub fn set_config_errors(&self, errors: Option<String>) {
        self.shared().status.config_errors =
            errors.map(|e| crate::telemetry::secrets::scrub(&e).into_owned());
    }

    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn set_rate(&self, per_second: f64) {
        self.rate
            .store(per_second.to_bits(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Sample the current run into the history (at most every few seconds).
    pub fn record_history(&self) {
        let (metrics, plan) = {
            let shared = self.shared();
            (shared.metrics.clone(), shared.plan.clone())
        };
        if let Some(plan) = plan {
            self.history().record(&metrics, &plan);
        }
    }

    pub fn history(&self) -> std::sync::MutexGuard<'_, super::history::History> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.shared().status);
    }
}

/// Commands that arrived while a run was stopping; the strongest wins.
#[derive(Default)]
struct Pending {
    stop: bool,
    pause: Option<bool>,
    plan: Option<Arc<Plan>>,
    replays: Vec<(Vec<String>, ReplayDone)>,
}

impl Pending {
    fn take(&mut self, command: Command) {
        match command {
            Command::Stop => self.stop = true,
            Command::Pause => self.pause = Some(true),
            Command::Resume => self.pause = Some(false),
            Command::Reload(plan) => self.plan = Some(plan),
            Command::Replay(docs, done) => self.replays.push((docs, done)),
        }
    }
}

/// What a supervisor does next.
enum Step {
    /// Start a run of the current version.
    Run,
    /// Wait for a command: paused, or a bounded run reached its end.
    Wait(State),
    /// The run failed: wait this long (or for a command), then run again.
    Backoff(Duration),
    /// End the supervisor.
    Stop,
}

/// The task that runs one pipeline, driven by its [`Step`]s.
struct Supervisor {
    handle: Arc<PipelineHandle>,
    plan: Arc<Plan>,
    commands: mpsc::UnboundedReceiver<Command>,
    backoff: Backoff,
    paused: bool,
    /// Failures in a row, for the backoff.
    failures: u32,
}

impl Supervisor {
    async fn run(mut self) {
        let mut step = Step::Run;
        loop {
            step = match step {
                Step::Run => self.run_once().await,
                Step::Wait(state) => {
                    self.handle.update(|s| s.state = state);
                    let pending = next_command(&mut self.commands).await;
                    self.apply(pending)
                }
                Step::Backoff(delay) => self.back_off(delay).await,
                Step::Stop => return,
            };
        }
    }

    /// One run of the plan, until it ends, fails, or a command stops it.
    async fn run_once(&mut self) -> Step {
        let (options, shutdown) = RunOptions::new(&self.plan);
        {
            let mut shared = self.handle.shared();
            shared.metrics = options.metrics.clone();
            shared.plan = Some(self.plan.clone());
            shared.status.state = State::Running;
            shared.status.retry_at = None;
        }
        let running = self.plan.clone();
        let mut task = tokio::spawn(async move { runtime::run(&running, options).await });
        let mut pending = Pending::default();
        let mut asked = false;
        let outcome = loop {
            tokio::select! {
                done = &mut task => break done,
                command = self.commands.recv(), if !pending.stop => {
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
                tracing::info!(pipeline = %self.plan.name, epoch = summary.epoch, "run ended");
                self.failures = 0;
                None
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("the run panicked: {e}")),
        };
        let failed = failed.map(|e| crate::telemetry::secrets::scrub(&e).into_owned());
        if let Some(error) = &failed {
            tracing::error!(pipeline = %self.plan.name, "pipeline failed: {error}");
            self.handle.update(|s| s.last_error = Some(error.clone()));
        }
        if asked {
            return self.apply(pending);
        }
        if failed.is_none() {
            // A bounded source ran to its end: wait for a new version or a stop.
            return Step::Wait(State::Finished);
        }
        self.failures += 1;
        Step::Backoff(self.backoff.delay(self.failures))
    }

    /// Wait out `delay` before the next run; a command cuts it short.
    async fn back_off(&mut self, delay: Duration) -> Step {
        let at = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        self.handle.update(|s| {
            s.state = State::Backoff;
            s.retry_at = Some(at.to_rfc3339());
        });
        tracing::warn!(pipeline = %self.plan.name, seconds = delay.as_secs_f64(), "restarting after a delay");
        let step = tokio::select! {
            _ = tokio::time::sleep(delay) => Step::Run,
            command = self.commands.recv() => {
                let mut pending = Pending::default();
                match command {
                    Some(c) => pending.take(c),
                    None => pending.stop = true,
                }
                self.apply(pending)
            }
        };
        if !matches!(step, Step::Stop) {
            self.handle.update(|s| s.restarts += 1);
        }
        step
    }

    /// Take up what arrived, and say what comes next.
    fn apply(&mut self, pending: Pending) -> Step {
        for (docs, done) in pending.replays {
            let outcome = crate::dlq::forget(&self.plan, &docs)
                .map(|()| docs.len())
                .map_err(|e| crate::telemetry::secrets::scrub(&e.to_string()).into_owned());
            if let Err(e) = &outcome {
                tracing::error!(pipeline = %self.plan.name, "replaying dead letters: {e}");
            }
            let _ = done.send(outcome);
        }
        if pending.stop {
            self.handle.update(|s| s.state = State::Stopped);
            tracing::info!(pipeline = %self.plan.name, "stopped");
            return Step::Stop;
        }
        if let Some(p) = pending.pause {
            self.paused = p;
        }
        if let Some(new) = pending.plan {
            self.plan = new;
            self.failures = 0;
            let mut shared = self.handle.shared();
            shared.plan = Some(self.plan.clone());
            shared.status.reloads += 1;
            shared.status.config_errors = None;
            shared.status.last_error = None;
            tracing::info!(pipeline = %self.plan.name, "reloaded");
        }
        if self.paused {
            Step::Wait(State::Paused)
        } else {
            Step::Run
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
