//! `sluice migrate`: move a vector sink to another embedding model without
//! downtime and without a silent drop in quality.
//!
//! A migration is a [`Record`] in `state_dir/migrate/<sink>.json`, written
//! atomically (temp file, fsync, rename), so every step survives `kill -9`:
//!
//! 1. **start** writes the record. From then on every plan of the pipeline
//!    ([`plan::apply`]) carries a *shadow* sink: the same store, a table of
//!    its own (`<table>_<fingerprint prefix>`), fed the live sink's rows with
//!    the vector column made again by the new model ([`remake`]) and the
//!    new model in their lineage. A running `sluice run` or daemon restarts
//!    its run to pick it up (it watches [`stamp`]), so the stream writes new
//!    and changed documents to both tables. Then [`sync`] copies what the
//!    live table holds and the shadow lacks, document by document, comparing
//!    versions and chunk ids; killed, it starts again where the shadow stands
//!    (the embed cache keeps the vectors already made).
//! 2. **status** shows how far the copy is and whether the shadow holds
//!    exactly the live documents.
//! 3. **promote** syncs once more, checks the evaluation gate ([`gate`]) on
//!    both tables, then flips [`Record::served`]: search, `vector_search`,
//!    `sluice sql` and the daemon read the record on every query, so the
//!    switch is one rename of the record file. A store with views (pgvector)
//!    also points a view, `<table>_served`, at the served table in one
//!    transaction, for readers outside sluice. Both tables stay written.
//! 4. **rollback** flips it back; **abort** (while the live table is served)
//!    removes the record, so the next plans write the live table only, and
//!    drops the shadow table.

pub mod gate;
pub mod plan;
pub mod remake;
pub mod sync;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which table search and SQL read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Served {
    Live,
    Shadow,
}

/// How far the copy into the shadow has come.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Chunks in the live table when the last sync pass began.
    pub chunks_total: u64,
    /// Of those, chunks the shadow holds at the same document version.
    pub chunks_done: u64,
    /// Documents that differed when the last pass began, and how many of
    /// them it has written so far.
    pub docs_to_copy: u64,
    pub docs_copied: u64,
    /// Documents the shadow held that the live table no longer has.
    pub docs_removed: u64,
    /// Chunks copied per second in the last pass.
    pub chunks_per_second: f64,
    pub updated_at: Option<String>,
    /// When a pass last found nothing to copy.
    pub caught_up_at: Option<String>,
}

/// One migration of one sink.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub pipeline: String,
    pub sink: String,
    /// The new model's folder, absolute.
    pub model: PathBuf,
    pub model_id: String,
    /// The new model's fingerprint.
    pub fingerprint: String,
    /// The fingerprint the live table was written with.
    pub from_fingerprint: String,
    pub live_table: String,
    pub shadow_table: String,
    pub served: Served,
    pub started_at: String,
    #[serde(default)]
    pub progress: Progress,
    /// What happened, in order: (time, what).
    #[serde(default)]
    pub events: Vec<(String, String)>,
    /// `abort` has begun: plans no longer write the shadow, whose table is
    /// dropped next.
    #[serde(default)]
    pub aborting: bool,
}

impl Record {
    /// Note an event now.
    pub fn event(&mut self, what: impl Into<String>) {
        self.events.push((now(), what.into()));
    }

    /// The name of the shadow's sink in the plan and in `sluice sql`.
    pub fn shadow_sink(&self) -> String {
        shadow_name(&self.sink)
    }
}

/// The shadow sink of `sink`.
pub fn shadow_name(sink: &str) -> String {
    format!("{sink}_shadow")
}

/// The shadow table of `table` for a model with `fingerprint`.
pub fn shadow_table(table: &str, fingerprint: &str) -> String {
    let short: String = fingerprint
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    format!("{table}_{short}")
}

/// The view readers outside sluice query, where the store has views.
pub fn view_name(table: &str) -> String {
    format!("{table}_served")
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The folder of a pipeline's migrations.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("migrate")
}

fn path(state_dir: &Path, sink: &str) -> PathBuf {
    dir(state_dir).join(format!("{sink}.json"))
}

/// The migration of `sink`, if one is under way.
pub fn load(state_dir: &Path, sink: &str) -> Result<Option<Record>> {
    let p = path(state_dir, sink);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Internal(format!("{} is not a migration record: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", p.display()), e)),
    }
}

/// Every migration under way, by sink name.
pub fn load_all(state_dir: &Path) -> Result<Vec<Record>> {
    let d = dir(state_dir);
    let entries = match std::fs::read_dir(&d) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("listing {}", d.display()), e)),
    };
    let mut sinks: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
        .collect();
    sinks.sort();
    let mut out = Vec::new();
    for sink in sinks {
        out.extend(load(state_dir, &sink)?);
    }
    Ok(out)
}

/// Write `record` atomically: a reader sees the old one or the new one.
pub fn save(state_dir: &Path, record: &Record) -> Result<()> {
    let d = dir(state_dir);
    let io = |e| Error::io(format!("writing the migration record in {}", d.display()), e);
    std::fs::create_dir_all(&d).map_err(io)?;
    let target = path(state_dir, &record.sink);
    let tmp = target.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| Error::Internal(e.to_string()))?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, &target).map_err(io)?;
    std::fs::File::open(&d).and_then(|f| f.sync_all()).map_err(io)
}

/// Remove the record of `sink`'s migration.
pub fn remove(state_dir: &Path, sink: &str) -> Result<()> {
    let p = path(state_dir, sink);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", p.display()), e)),
    }
}

/// What decides the shape of a run: which sinks have a shadow, with which
/// model. A run restarts when it changes (`promote` and `rollback` do not
/// change it: readers follow the record).
pub fn stamp(state_dir: &Path) -> String {
    match load_all(state_dir) {
        Ok(records) => records
            .iter()
            .filter(|r| !r.aborting)
            .map(|r| format!("{}={}@{};", r.sink, r.shadow_table, r.fingerprint))
            .collect(),
        // An unreadable record fails the next plan, which says why.
        Err(e) => format!("error: {e}"),
    }
}
