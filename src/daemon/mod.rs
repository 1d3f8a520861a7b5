//! `sluice daemon`: serves a folder of pipeline files.
//!
//! The daemon scans the folder every `poll` (default 1 s) and compares each
//! `*.yaml` / `*.yml` file's content hash with the last one it saw:
//!
//! - a new file that validates gets a [`supervisor`]; one that does not is listed
//!   as `invalid`, with its errors;
//! - a changed file that validates is reloaded: that pipeline alone checkpoints
//!   and restarts on the new version. One that does not validate leaves the old
//!   version running and shows its errors (`config_errors`) in the API and logs;
//! - a deleted file stops its pipeline after a final checkpoint.
//!
//! Each pipeline keeps its state in `<state>/<name>` (see
//! [`Plan::with_state_root`](crate::plan::Plan::with_state_root)), so pipelines in
//! one folder never share a checkpoint. Pipelines are keyed by their `name`; a
//! second file with a name already in use is refused.

pub mod api;
mod console;
mod history;
pub mod http;
mod live;
mod prometheus;
pub mod supervisor;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use supervisor::{Backoff, Command, PipelineHandle, State};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub pipelines: PathBuf,
    pub state: PathBuf,
    /// How often the folder is scanned for changes.
    pub poll: Duration,
    pub backoff: Backoff,
}

/// What the daemon knows of one file.
struct FileEntry {
    hash: blake3::Hash,
    /// The pipeline this file is listed under.
    name: String,
}

/// The count of a stage's rate series (see `OwnMetrics::rate`) at the start
/// of the current rate window.
struct RateWindow {
    at: Instant,
    count: u64,
}

/// What the daemon knows, under one lock. Every use takes it for one
/// statement; nothing that waits (a scan, a plan's compilation, a
/// supervisor) runs while it is held.
#[derive(Default)]
struct Registry {
    pipelines: BTreeMap<String, Arc<PipelineHandle>>,
    supervisors: Vec<tokio::task::JoinHandle<()>>,
    files: BTreeMap<PathBuf, FileEntry>,
    rates: BTreeMap<String, RateWindow>,
}

pub struct Daemon {
    options: DaemonOptions,
    registry: Mutex<Registry>,
    scanned: AtomicBool,
    pub started: Instant,
}

/// Why the daemon is not ready yet (`/readyz`). A count only: `/readyz` is
/// open, and pipeline names are not.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("the pipeline folder has not been scanned yet")]
    NotScanned,
    #[error("{0} pipeline(s) still starting")]
    Starting(usize),
}

impl Daemon {
    pub fn new(options: DaemonOptions) -> Arc<Self> {
        Arc::new(Daemon {
            options,
            registry: Mutex::new(Registry::default()),
            scanned: AtomicBool::new(false),
            started: Instant::now(),
        })
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every pipeline, by name.
    pub fn pipelines(&self) -> Vec<Arc<PipelineHandle>> {
        self.registry().pipelines.values().cloned().collect()
    }

    pub fn pipeline(&self, name: &str) -> Option<Arc<PipelineHandle>> {
        self.registry().pipelines.get(name).cloned()
    }

    /// The folder has been scanned once and no pipeline is still starting.
    pub fn ready(&self) -> Result<(), NotReady> {
        if !self.scanned.load(Ordering::Relaxed) {
            return Err(NotReady::NotScanned);
        }
        let starting: Vec<String> = self
            .pipelines()
            .iter()
            .filter(|p| p.status().state == State::Starting)
            .map(|p| p.name.clone())
            .collect();
        // A count only: `/readyz` is open, and pipeline names are not.
        if starting.is_empty() {
            Ok(())
        } else {
            Err(NotReady::Starting(starting.len()))
        }
    }

    /// Scan until `shutdown` fires, then stop every pipeline (each writes a
    /// final checkpoint) and return.
    pub async fn serve(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.options.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    // Reading files and compiling plans (a model loads at plan
                    // time) blocks: off the async threads.
                    let daemon = self.clone();
                    if let Err(e) = tokio::task::spawn_blocking(move || daemon.scan()).await {
                        tracing::error!("the folder scan failed: {e}");
                    }
                    self.sample_rates();
                }
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
        }
        self.stop_all().await;
    }

    /// Stop every pipeline and wait for their final checkpoints.
    pub async fn stop_all(&self) {
        for p in self.pipelines() {
            p.send(Command::Stop);
        }
        let tasks = std::mem::take(&mut self.registry().supervisors);
        for t in tasks {
            let _ = t.await;
        }
    }

    /// One pass over the folder.
    pub fn scan(&self) {
        let found = match pipeline_files(&self.options.pipelines) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("cannot list {}: {e}", self.options.pipelines.display());
                return;
            }
        };
        let gone: Vec<PathBuf> = self
            .registry()
            .files
            .keys()
            .filter(|f| !found.contains(f))
            .cloned()
            .collect();
        for file in gone {
            self.removed(&file);
        }
        for file in found {
            let Ok(bytes) = std::fs::read(&file) else {
                continue; // being replaced; the next scan sees it
            };
            // A model migration started or ended changes what the run writes.
            let known = self.registry().files.get(&file).map(|e| e.name.clone());
            let mut hasher = blake3::Hasher::new();
            hasher.update(&bytes);
            if let Some(name) = known {
                hasher.update(crate::migrate::stamp(&self.options.state.join(name)).as_bytes());
            }
            let hash = hasher.finalize();
            if self.registry().files.get(&file).is_some_and(|e| e.hash == hash) {
                continue;
            }
            self.changed(&file, hash);
        }
        self.scanned.store(true, Ordering::Relaxed);
    }

    fn removed(&self, file: &Path) {
        let Some(entry) = self.registry().files.remove(file) else {
            return;
        };
        let handle = self.registry().pipelines.get(&entry.name).cloned();
        if let Some(h) = handle {
            tracing::info!(pipeline = %entry.name, "{} was deleted: stopping", file.display());
            if !h.send(Command::Stop) {
                // Never ran: just forget it.
                self.registry().pipelines.remove(&entry.name);
            }
        }
    }

    fn changed(&self, file: &Path, hash: blake3::Hash) {
        let previous = self.registry().files.get(file).map(|e| e.name.clone());
        let loaded = crate::spec::load_file(file)
            .map_err(|e| e.to_string())
            .and_then(|plan| {
                let mut plan = plan.with_state_root(&self.options.state);
                crate::migrate::plan::apply(&mut plan).map_err(|e| e.to_string())?;
                Ok(plan)
            });
        match loaded {
            Ok(plan) => {
                let name = plan.name.clone();
                let owner = self
                    .registry()
                    .files
                    .iter()
                    .find(|(f, e)| e.name == name && f.as_path() != file)
                    .map(|(f, _)| f.clone());
                if let Some(other) = owner {
                    let error = format!(
                        "{}: pipeline name `{name}` is already used by {}; names must be unique in the folder",
                        file.display(),
                        other.display()
                    );
                    self.refuse(file, hash, previous, error);
                    return;
                }
                if let Some(old) = previous.filter(|old| *old != name) {
                    // Renamed: the old pipeline stops, the new one starts.
                    self.removed(file);
                    tracing::info!(pipeline = %old, "renamed to `{name}`");
                }
                self.registry().files.insert(
                    file.to_path_buf(),
                    FileEntry {
                        hash,
                        name: name.clone(),
                    },
                );
                let current = self
                    .registry()
                    .pipelines
                    .get(&name)
                    .filter(|h| h.is_supervised())
                    .cloned();
                match current {
                    Some(h) => {
                        tracing::info!(pipeline = %name, "{} changed: reloading", file.display());
                        h.send(Command::Reload(Arc::new(plan)));
                    }
                    // New, or its earlier supervisor has ended.
                    None => self.start(file, plan),
                }
            }
            Err(errors) => self.refuse(file, hash, previous, errors),
        }
    }

    fn start(&self, file: &Path, plan: crate::plan::Plan) {
        let name = plan.name.clone();
        tracing::info!(pipeline = %name, "starting {}", file.display());
        let (handle, task) = PipelineHandle::start(plan, file.to_path_buf(), self.options.backoff);
        self.registry().pipelines.insert(name, handle);
        self.registry().supervisors.push(task);
    }

    /// The file does not hold a valid pipeline: a running version keeps
    /// running and shows the errors; otherwise the file is listed as invalid.
    fn refuse(&self, file: &Path, hash: blake3::Hash, previous: Option<String>, errors: String) {
        tracing::error!("{} is not a valid pipeline; {}", file.display(), errors);
        let running = previous
            .as_ref()
            .and_then(|n| self.registry().pipelines.get(n).cloned())
            .filter(|h| h.plan().is_some() && h.status().state != State::Stopped);
        let name = match running {
            Some(h) => {
                h.set_config_errors(Some(errors));
                h.name.clone()
            }
            None => {
                let name = previous.unwrap_or_else(|| file_stem(file));
                let handle = PipelineHandle::invalid(name.clone(), file.to_path_buf(), errors);
                self.registry().pipelines.insert(name.clone(), handle);
                name
            }
        };
        self.registry()
            .files
            .insert(file.to_path_buf(), FileEntry { hash, name });
    }

    /// Each pipeline's throughput history (for the console), and the rate a
    /// stage asks for (`OwnMetrics::rate`, embeddings for the embed stage)
    /// over windows of at least 5 s.
    fn sample_rates(&self) {
        let now = Instant::now();
        let pipelines = self.pipelines();
        for p in &pipelines {
            p.record_history();
        }
        let mut registry = self.registry();
        let rates = &mut registry.rates;
        for p in pipelines {
            let count: u64 = p
                .metrics()
                .stages
                .iter()
                .filter_map(|s| s.own().and_then(|o| o.rate()))
                .map(|r| r.count)
                .sum();
            let window = rates
                .entry(p.name.clone())
                .or_insert(RateWindow { at: now, count });
            let secs = now.duration_since(window.at).as_secs_f64();
            if count < window.count {
                // A new run started with fresh counters.
                *window = RateWindow { at: now, count };
            } else if secs >= 5.0 {
                p.set_rate((count - window.count) as f64 / secs);
                *window = RateWindow { at: now, count };
            }
        }
    }
}

fn file_stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string())
}

/// The pipeline files of `dir` (not hidden, `.yaml` or `.yml`), sorted.
fn pipeline_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if yaml && !name.starts_with('.') && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}
