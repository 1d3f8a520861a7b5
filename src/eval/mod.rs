//! `sluice eval`: how well a pipeline's vector sink answers a set of questions
//! with known answers (recall@k, MRR@k, nDCG@k and search latency, per search
//! mode), and the history of those figures across pipeline versions and models.
//!
//! - [`questions`]: the question file (JSON lines) and what makes a hit relevant.
//! - [`metrics`]: the figures, with binary relevance, and latency percentiles.
//! - [`history`]: each run, appended to `state_dir/eval/<pipeline>.jsonl` with
//!   the pipeline version and model fingerprint it measured; the daemon
//!   exports the last one as metrics.
//!
//! Each question is searched once per mode with the largest `k` through
//! [`crate::search`], the same path as `sluice search`; the cutoffs are taken
//! from that one ranking.

pub mod history;
pub mod metrics;
pub mod questions;

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sluice_connector_sdk::lineage::{MODEL_FINGERPRINT, PIPELINE_VERSION};

use crate::migrate::{self, plan::Target};
use crate::plan::Plan;
use crate::search::{self, Mode};
use crate::{Error, Result};
use metrics::{Latency, Scores};
use questions::Question;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Request {
    pub sink: Option<String>,
    /// Cutoffs, e.g. 1, 5, 10.
    pub ks: Vec<usize>,
    /// By default every mode the sink can search by.
    pub modes: Option<Vec<Mode>>,
    pub filter: Option<String>,
}

/// The figures at one cutoff, averaged over the questions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AtK {
    pub k: usize,
    #[serde(flatten)]
    pub scores: Scores,
}

/// One question's outcome in one mode, for `--format json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub question: String,
    /// The rank of the first relevant hit, if any was found.
    pub first_relevant: Option<usize>,
    pub latency_ms: f64,
}

/// One mode's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModeReport {
    pub mode: Mode,
    pub at_k: Vec<AtK>,
    pub latency_ms: Latency,
    /// Each question (left out of the stored history).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub questions: Vec<Outcome>,
}

/// One eval run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// When it ran (RFC 3339, UTC).
    pub at: String,
    pub pipeline: String,
    pub pipeline_version: String,
    pub model_fingerprint: Option<String>,
    /// Which table of a sink in a model migration was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<migrate::Served>,
    pub sink: String,
    /// The question file's name and a hash of its content (16 hex).
    pub questions_file: String,
    pub questions_hash: String,
    pub questions: usize,
    #[serde(rename = "where")]
    pub filter: Option<String>,
    pub modes: Vec<ModeReport>,
}

/// The cutoffs, checked: 1 to [`search::MAX_K`], sorted, no repeats.
pub fn check_ks(ks: &[usize]) -> Result<Vec<usize>> {
    let mut ks = ks.to_vec();
    ks.sort_unstable();
    ks.dedup();
    match (ks.first(), ks.last()) {
        (Some(&lo), Some(&hi)) if lo >= 1 && hi <= search::MAX_K => Ok(ks),
        _ => Err(Error::Usage(format!(
            "--k takes cutoffs from 1 to {}, e.g. 1,5,10",
            search::MAX_K
        ))),
    }
}

/// Measure `plan`'s sink, as it is served now, with the questions in `path`.
pub async fn run(plan: &Plan, path: &Path, req: &Request) -> Result<Report> {
    let target = search::pick(plan, req.sink.as_deref())?;
    run_on(plan, path, req, &target).await
}

/// Measure `target` (one table of a sink) with the questions in `path`.
pub async fn run_on(plan: &Plan, path: &Path, req: &Request, target: &Target) -> Result<Report> {
    let questions = questions::load(path)?;
    let ks = check_ks(&req.ks)?;
    let modes = match &req.modes {
        Some(m) if !m.is_empty() => m.clone(),
        _ if target.table.can_match_text() => vec![Mode::Vector, Mode::Text, Mode::Hybrid],
        _ => vec![Mode::Vector],
    };
    let mut reports = Vec::new();
    for mode in modes {
        reports.push(run_mode(plan, target, mode, &questions, &ks, req.filter.as_deref()).await?);
    }
    let content = std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let lineage = migrate::plan::lineage_of(plan, target);
    let migrating = migrate::load(&plan.state_dir, &target.sink)?.is_some();
    Ok(Report {
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        pipeline: plan.name.clone(),
        pipeline_version: lineage.get(PIPELINE_VERSION).unwrap_or_default().to_string(),
        model_fingerprint: lineage.get(MODEL_FINGERPRINT).map(str::to_string),
        generation: migrating.then_some(target.generation),
        sink: target.sink.clone(),
        questions_file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        questions_hash: blake3::hash(&content).to_hex()[..16].to_string(),
        questions: questions.len(),
        filter: req.filter.clone(),
        modes: reports,
    })
}

/// Every question in one mode.
async fn run_mode(
    plan: &Plan,
    target: &Target,
    mode: Mode,
    questions: &[Question],
    ks: &[usize],
    filter: Option<&str>,
) -> Result<ModeReport> {
    let max_k = *ks.last().expect("checked");
    let started = Instant::now();
    let mut per_k: Vec<Vec<Scores>> = vec![Vec::new(); ks.len()];
    let mut outcomes = Vec::new();
    for q in questions {
        let request = search::Request {
            query: q.question.clone(),
            sink: Some(target.sink.clone()),
            k: max_k,
            mode: Some(mode),
            filter: filter.map(str::to_string),
        };
        let asked = Instant::now();
        let found = search::search_in(plan, target, &request).await?;
        let latency_ms = asked.elapsed().as_secs_f64() * 1e3;
        let matches: metrics::Matches = found
            .hits
            .iter()
            .map(|h| {
                q.relevant
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.matches(&h.row))
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect();
        for (i, &k) in ks.iter().enumerate() {
            per_k[i].push(metrics::at_k(&matches, q.relevant.len(), k));
        }
        outcomes.push(Outcome {
            question: q.question.clone(),
            first_relevant: matches.iter().position(|m| !m.is_empty()).map(|i| i + 1),
            latency_ms,
        });
    }
    tracing::info!(
        "{}: {} questions in {:.1} s",
        mode_name(mode),
        questions.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(ModeReport {
        mode,
        at_k: ks
            .iter()
            .zip(&per_k)
            .map(|(&k, scores)| AtK {
                k,
                scores: metrics::mean(scores),
            })
            .collect(),
        latency_ms: metrics::latency(outcomes.iter().map(|o| o.latency_ms).collect()),
        questions: outcomes,
    })
}

/// A mode's name as the CLI spells it.
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Vector => "vector",
        Mode::Text => "text",
        Mode::Hybrid => "hybrid",
    }
}

impl Report {
    /// The table for a person: one row per mode and cutoff.
    pub fn render(&self) -> String {
        let mut out = format!(
            "eval of `{}`{} (pipeline `{}` version {}, model {}): {} questions from {}{}\n",
            self.sink,
            match self.generation {
                Some(migrate::Served::Live) => " live table",
                Some(migrate::Served::Shadow) => " shadow table",
                None => "",
            },
            self.pipeline,
            self.pipeline_version,
            self.model_fingerprint.as_deref().unwrap_or("none"),
            self.questions,
            self.questions_file,
            self.filter
                .as_deref()
                .map(|w| format!(", where {w}"))
                .unwrap_or_default(),
        );
        out.push_str(&format!(
            "{:<7} {:>4} {:>7} {:>7} {:>7} {:>9} {:>9}\n",
            "mode", "k", "recall", "mrr", "ndcg", "p50 ms", "p95 ms"
        ));
        for m in &self.modes {
            for (i, a) in m.at_k.iter().enumerate() {
                let (p50, p95) = if i == 0 {
                    (
                        format!("{:.1}", m.latency_ms.p50),
                        format!("{:.1}", m.latency_ms.p95),
                    )
                } else {
                    (String::new(), String::new())
                };
                out.push_str(&format!(
                    "{:<7} {:>4} {:>7.3} {:>7.3} {:>7.3} {p50:>9} {p95:>9}\n",
                    mode_name(m.mode),
                    a.k,
                    a.scores.recall,
                    a.scores.mrr,
                    a.scores.ndcg
                ));
            }
        }
        out
    }
}
