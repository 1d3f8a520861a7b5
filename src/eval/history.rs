//! Each eval run, one JSON line in `state_dir/eval/<pipeline>.jsonl`, without
//! its per-question detail. A line cut short by a crash is skipped on reading.

use std::io::Write;
use std::path::PathBuf;

use super::{mode_name, Report};
use crate::plan::Plan;
use crate::{Error, Result};

/// Where `plan`'s eval runs are kept.
pub fn path(plan: &Plan) -> PathBuf {
    plan.state_dir.join("eval").join(format!("{}.jsonl", plan.name))
}

/// Append `report` (less its per-question detail).
pub fn append(plan: &Plan, report: &Report) -> Result<()> {
    let path = path(plan);
    let mut stored = report.clone();
    for m in &mut stored.modes {
        m.questions.clear();
    }
    let mut line = serde_json::to_string(&stored)
        .map_err(|e| Error::Internal(format!("an eval report as JSON: {e}")))?;
    line.push('\n');
    let io = |e| Error::io(format!("appending to {}", path.display()), e);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    // One write of the whole line, then to disk.
    file.write_all(line.as_bytes()).map_err(io)?;
    file.sync_data().map_err(io)
}

/// Every run recorded for `plan`, oldest first.
pub fn read(plan: &Plan) -> Result<Vec<Report>> {
    let path = path(plan);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str::<Report>(l).ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// The most recent run, if any, read from the end of the file (the daemon
/// asks on every scrape; the history only grows).
pub fn last(plan: &Plan) -> Option<Report> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 256 << 10;
    let mut file = std::fs::File::open(path(plan)).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut tail = Vec::new();
    file.take(TAIL).read_to_end(&mut tail).ok()?;
    String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Report>(l).ok())
}

/// The history as a table: one row per run and mode, at the run's largest `k`.
pub fn render(runs: &[Report]) -> String {
    if runs.is_empty() {
        return "no eval runs recorded yet; run `sluice eval --questions FILE`\n".into();
    }
    let mut out = format!(
        "{:<20} {:<16} {:<12} {:<10} {:<7} {:>4} {:>7} {:>7} {:>7} {:>9}\n",
        "at", "version", "model", "sink", "mode", "k", "recall", "mrr", "ndcg", "p50 ms"
    );
    for r in runs {
        let model: String = r
            .model_fingerprint
            .as_deref()
            .unwrap_or("none")
            .chars()
            .take(12)
            .collect();
        for m in &r.modes {
            let Some(a) = m.at_k.last() else { continue };
            out.push_str(&format!(
                "{:<20} {:<16} {:<12} {:<10} {:<7} {:>4} {:>7.3} {:>7.3} {:>7.3} {:>9.1}\n",
                r.at,
                r.pipeline_version,
                model,
                r.sink,
                mode_name(m.mode),
                a.k,
                a.scores.recall,
                a.scores.mrr,
                a.scores.ndcg,
                m.latency_ms.p50
            ));
        }
    }
    out
}
