//! `sluice migrate start|status|promote|rollback|abort`: move a vector sink to
//! another embedding model behind an evaluation gate (see [`crate::migrate`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Subcommand;
use sluice_connector_sdk::lineage::{MODEL_FINGERPRINT, MODEL_ID};

use super::{EXIT_OK, EXIT_REFUSED};
use crate::checkpoint::StateLock;
use crate::eval::{self, Report};
use crate::inspect::OutputFormat;
use crate::migrate::sync::{self, Sides};
use crate::migrate::{self, gate, plan as mplan, Progress, Record, Served};
use crate::plan::{Plan, PlannedSink};
use crate::search::Mode;
use crate::{Error, Result};

#[derive(Debug, Clone, clap::Args)]
pub struct At {
    #[arg(long, short)]
    pub pipeline: PathBuf,
    /// The vector sink (by default the only one).
    #[arg(long)]
    pub sink: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Questions {
    /// A question set (as for `sluice eval`): measure the live and the shadow
    /// table side by side.
    #[arg(long)]
    pub questions: Option<PathBuf>,
    /// Cutoffs.
    #[arg(short = 'k', long = "k", value_delimiter = ',', default_value = "1,5,10")]
    pub k: Vec<usize>,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Start (or resume) moving a vector sink to another model: a shadow
    /// table filled from the live one, while the stream writes both.
    Start {
        #[command(flatten)]
        at: At,
        /// The new model's folder (model.onnx and tokenizer.json).
        #[arg(long)]
        model: PathBuf,
        /// Documents written per epoch of the copy.
        #[arg(long, default_value_t = 64)]
        docs_per_epoch: usize,
    },
    /// How far the shadow is, and with --questions both tables' figures.
    Status {
        #[command(flatten)]
        at: At,
        #[command(flatten)]
        questions: Questions,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Serve the shadow table: sync it once more, check the gate, switch.
    Promote {
        #[command(flatten)]
        at: At,
        #[command(flatten)]
        questions: Questions,
        /// Conditions on the shadow's figures, e.g. "recall@10 >= live" or
        /// "ndcg@5 >= live - 0.02, mrr@10 > 0.5"; needs --questions.
        #[arg(long)]
        require: Option<String>,
    },
    /// Serve the live table again.
    Rollback {
        #[command(flatten)]
        at: At,
    },
    /// End the migration: stop writing the shadow and drop its table.
    Abort {
        #[command(flatten)]
        at: At,
    },
}

pub async fn migrate(command: MigrateCommand, state: Option<&Path>) -> anyhow::Result<u8> {
    match command {
        MigrateCommand::Start {
            at,
            model,
            docs_per_epoch,
        } => start(&at, state, &model, docs_per_epoch).await,
        MigrateCommand::Status {
            at,
            questions,
            format,
        } => status(&at, state, &questions, format).await,
        MigrateCommand::Promote {
            at,
            questions,
            require,
        } => promote(&at, state, &questions, require.as_deref()).await,
        MigrateCommand::Rollback { at } => rollback(&at, state).await,
        MigrateCommand::Abort { at } => abort(&at, state).await,
    }
}

/// The sink to migrate: `wanted`, or the only one whose store keeps tables.
fn pick_sink(plan: &Plan, wanted: Option<&str>) -> Result<String> {
    let names: Vec<&str> = plan
        .sinks
        .iter()
        .filter(|s| s.shadow.is_none() && s.config.keeps_lineage() && s.config.table().is_some())
        .map(|s| s.name.as_str())
        .collect();
    match (wanted, names.as_slice()) {
        (Some(w), _) if names.contains(&w) => Ok(w.to_string()),
        (None, [one]) => Ok(one.to_string()),
        (_, []) => Err(Error::Usage(format!(
            "pipeline `{}` has no vector sink a model migration can move (LanceDB and pgvector can)",
            plan.name
        ))),
        (Some(w), _) => Err(Error::Usage(format!(
            "`{w}` is not a vector sink of `{}`; these are: {}",
            plan.name,
            names.join(", ")
        ))),
        (None, _) => Err(Error::Usage(format!(
            "pipeline `{}` has several vector sinks; name one with --sink: {}",
            plan.name,
            names.join(", ")
        ))),
    }
}

/// The migration under way (of `wanted`, or the only one).
fn record_of(plan: &Plan, wanted: Option<&str>) -> Result<Record> {
    let none = || {
        Error::Usage(format!(
            "no model migration of pipeline `{}` is under way",
            plan.name
        ))
    };
    match wanted {
        Some(w) => migrate::load(&plan.state_dir, w)?.ok_or_else(none),
        None => {
            let mut all = migrate::load_all(&plan.state_dir)?;
            match all.len() {
                0 => Err(none()),
                1 => Ok(all.remove(0)),
                _ => Err(Error::Usage(
                    "several migrations are under way; name the sink with --sink".into(),
                )),
            }
        }
    }
}

/// A new record for moving `sink` to `model`, checked and saved.
async fn begin(plan: &Plan, sink: &str, model: &Path) -> Result<Record> {
    if plan.sinks.iter().any(|s| s.name == migrate::shadow_name(sink)) {
        return Err(Error::Usage(format!(
            "the pipeline already has a sink named `{}`, the name a migration gives its shadow",
            migrate::shadow_name(sink)
        )));
    }
    let live = mplan::planned(plan, sink, Served::Live)
        .ok_or_else(|| Error::Internal(format!("no sink `{sink}`")))?;
    let live_table = live
        .config
        .table()
        .ok_or_else(|| Error::Internal(format!("sink `{sink}` names no table")))?;
    // Planning the shadow loads and checks the model; its fingerprint names
    // the shadow's table.
    let planned = mplan::shadow_sink(plan, sink, model, &live_table)?;
    let lineage = &planned.shadow.as_ref().expect("a shadow").lineage;
    let fingerprint = lineage
        .get(MODEL_FINGERPRINT)
        .ok_or_else(|| Error::Usage(format!("{} gives no model fingerprint", model.display())))?;
    let from = plan.lineage.get(MODEL_FINGERPRINT).unwrap_or_default();
    if fingerprint == from {
        return Err(Error::Usage(format!(
            "sink `{sink}` is already written with this model ({fingerprint})"
        )));
    }
    let mut record = Record {
        pipeline: plan.name.clone(),
        sink: sink.to_string(),
        model: model.to_path_buf(),
        model_id: lineage.get(MODEL_ID).unwrap_or_default().to_string(),
        fingerprint: fingerprint.to_string(),
        from_fingerprint: from.to_string(),
        shadow_table: migrate::shadow_table(&live_table, fingerprint),
        live_table,
        served: Served::Live,
        started_at: migrate::now(),
        progress: Progress::default(),
        events: Vec::new(),
        aborting: false,
    };
    // The shadow table exists before any stream is told to write it.
    let shadow = PlannedSink {
        config: live
            .config
            .with_table(&record.shadow_table)
            .ok_or_else(|| Error::Internal(format!("sink `{sink}` keeps no tables")))?,
        ..planned
    };
    let (mut created, _) = sync::open_shadow(plan, &shadow).await?;
    created
        .close()
        .await
        .map_err(|e| Error::connector(format!("sink `{}`", shadow.name), e))?;
    // Readers outside sluice get a view of the served table from the start.
    if let Some(job) = live
        .config
        .serve_as(&plan.sink_context(live), &migrate::view_name(&record.live_table))
    {
        job.await
            .map_err(|e| Error::connector(format!("sink `{sink}`"), e))?;
    }
    record.event("started");
    migrate::save(&plan.state_dir, &record)?;
    Ok(record)
}

/// A progress line on stderr, at most once a second.
fn reporter(table: String) -> impl FnMut(&Progress) {
    let mut last: Option<Instant> = None;
    move |p: &Progress| {
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) && p.docs_copied < p.docs_to_copy {
            return;
        }
        last = Some(Instant::now());
        eprintln!("{}", progress_line(&table, p));
    }
}

fn progress_line(table: &str, p: &Progress) -> String {
    let pct = if p.chunks_total == 0 {
        100.0
    } else {
        100.0 * p.chunks_done as f64 / p.chunks_total as f64
    };
    let left = p.chunks_total.saturating_sub(p.chunks_done);
    let eta = if left == 0 {
        "caught up".to_string()
    } else if p.chunks_per_second > 0.0 {
        format!("ETA {:.0} s", left as f64 / p.chunks_per_second)
    } else {
        "ETA unknown".to_string()
    };
    format!(
        "shadow `{table}`: {} of {} live chunks ({pct:.1}%), {} of {} documents copied this pass, {:.0} chunks/s, {eta}",
        p.chunks_done, p.chunks_total, p.docs_copied, p.docs_to_copy, p.chunks_per_second
    )
}

async fn start(at: &At, state: Option<&Path>, model: &Path, docs_per_epoch: usize) -> anyhow::Result<u8> {
    let plan = super::load(&at.pipeline, state)?;
    let sink = pick_sink(&plan, at.sink.as_deref())?;
    let model = std::path::absolute(model).map_err(|e| Error::io(format!("{}", model.display()), e))?;
    let _lock = StateLock::acquire(&migrate::dir(&plan.state_dir))?;
    let mut record = match migrate::load(&plan.state_dir, &sink)? {
        Some(r) if r.aborting => {
            return Err(Error::Usage(
                "an abort of this migration is unfinished; run `sluice migrate abort` again".into(),
            )
            .into())
        }
        Some(r) if r.model == model => {
            eprintln!("resuming the migration of `{sink}` to {}", model.display());
            r
        }
        Some(r) => {
            return Err(Error::Usage(format!(
                "a migration of `{sink}` to {} is under way; promote, roll back or abort it first",
                r.model.display()
            ))
            .into())
        }
        None => begin(&plan, &sink, &model).await?,
    };
    eprintln!(
        "shadow table `{}` for model {} ({}); a running `sluice run` or daemon of this pipeline now writes it too",
        record.shadow_table, record.model_id, record.fingerprint
    );
    // The plan again, now with the shadow sink.
    let plan = super::load(&at.pipeline, state)?;
    let options = sync::Options { docs_per_epoch };
    let mut report = reporter(record.shadow_table.clone());
    let diff = sync::catch_up(&plan, &mut record, options, &mut report).await?;
    if diff.is_empty() {
        println!(
            "`{}` holds all {} chunks of `{}` with model {}: `sluice migrate promote` serves it",
            record.shadow_table, diff.chunks_total, record.live_table, record.model_id
        );
    } else {
        println!(
            "{} documents still differ (a stream is changing them); `sluice migrate status` shows them and `promote` syncs again",
            diff.copy.len() + diff.remove.len()
        );
    }
    Ok(EXIT_OK)
}

/// Both tables measured with the same questions.
async fn compare(plan: &Plan, record: &Record, q: &Path, ks: &[usize]) -> Result<(Report, Report)> {
    let req = eval::Request {
        sink: Some(record.sink.clone()),
        ks: ks.to_vec(),
        modes: None,
        filter: None,
    };
    let side = |g| {
        mplan::target(plan, &record.sink, g)
            .ok_or_else(|| Error::Internal(format!("the {g:?} table of `{}` cannot be read", record.sink)))
    };
    let live = eval::run_on(plan, q, &req, &side(Served::Live)?).await?;
    let shadow = eval::run_on(plan, q, &req, &side(Served::Shadow)?).await?;
    Ok((live, shadow))
}

/// The two reports as one table: each figure live, shadow.
fn side_by_side(live: &Report, shadow: &Report) -> String {
    let mut out = format!(
        "{} questions; live {} (model {}) vs shadow (model {})\n{:<7} {:>4} {:>15} {:>15} {:>15} {:>17}\n",
        live.questions,
        live.sink,
        live.model_fingerprint.as_deref().unwrap_or("none"),
        shadow.model_fingerprint.as_deref().unwrap_or("none"),
        "mode",
        "k",
        "recall",
        "mrr",
        "ndcg",
        "p50 ms"
    );
    for (l, s) in live.modes.iter().zip(&shadow.modes) {
        for (i, (a, b)) in l.at_k.iter().zip(&s.at_k).enumerate() {
            let pair = |x: f64, y: f64| format!("{x:.3} → {y:.3}");
            let p50 = if i == 0 {
                format!("{:.1} → {:.1}", l.latency_ms.p50, s.latency_ms.p50)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "{:<7} {:>4} {:>15} {:>15} {:>15} {p50:>17}\n",
                eval::mode_name(l.mode),
                a.k,
                pair(a.scores.recall, b.scores.recall),
                pair(a.scores.mrr, b.scores.mrr),
                pair(a.scores.ndcg, b.scores.ndcg),
            ));
        }
    }
    out
}

async fn status(at: &At, state: Option<&Path>, q: &Questions, format: OutputFormat) -> anyhow::Result<u8> {
    let plan = super::load(&at.pipeline, state)?;
    let record = record_of(&plan, at.sink.as_deref())?;
    let diff = Sides::of(&plan, &record)?.diff().await?;
    let figures = match (&q.questions, diff.is_empty()) {
        (Some(path), true) => Some(compare(&plan, &record, path, &eval::check_ks(&q.k)?).await?),
        (Some(_), false) => {
            eprintln!("the shadow has not caught up, so its figures would not compare; measure once it has");
            None
        }
        (None, _) => None,
    };
    if matches!(format, OutputFormat::Json) {
        let json = serde_json::json!({
            "record": record,
            "caught_up": diff.is_empty(),
            "chunks_total": diff.chunks_total,
            "chunks_done": diff.chunks_done,
            "documents_to_copy": diff.copy.len(),
            "documents_to_remove": diff.remove.len(),
            "eval": figures.as_ref().map(|(l, s)| serde_json::json!({"live": l, "shadow": s})),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(EXIT_OK);
    }
    let served = |g| if record.served == g { " (served)" } else { "" };
    println!(
        "migration of `{}` (pipeline `{}`): model {} → {} ({})",
        record.sink, record.pipeline, record.from_fingerprint, record.model_id, record.fingerprint
    );
    println!("live table   `{}`{}", record.live_table, served(Served::Live));
    println!("shadow table `{}`{}", record.shadow_table, served(Served::Shadow));
    let mut p = record.progress.clone();
    (p.chunks_total, p.chunks_done) = (diff.chunks_total, diff.chunks_done);
    println!("{}", progress_line(&record.shadow_table, &p));
    println!(
        "{} documents to copy, {} to remove{}",
        diff.copy.len(),
        diff.remove.len(),
        if diff.is_empty() { ": caught up" } else { "" }
    );
    for (when, what) in &record.events {
        println!("  {when}  {what}");
    }
    if let Some((live, shadow)) = figures {
        print!("{}", side_by_side(&live, &shadow));
    }
    Ok(EXIT_OK)
}

/// Point the view (where the store has views) and the record at `to`.
async fn switch(plan: &Plan, record: &mut Record, to: Served, what: &str) -> Result<()> {
    let sink = mplan::planned(plan, &record.sink, to)
        .ok_or_else(|| Error::Internal(format!("the plan has no {to:?} side of `{}`", record.sink)))?;
    if let Some(job) = sink
        .config
        .serve_as(&plan.sink_context(sink), &migrate::view_name(&record.live_table))
    {
        job.await
            .map_err(|e| Error::connector(format!("sink `{}`", record.sink), e))?;
    }
    record.served = to;
    record.event(what);
    migrate::save(&plan.state_dir, record)
}

async fn promote(at: &At, state: Option<&Path>, q: &Questions, require: Option<&str>) -> anyhow::Result<u8> {
    let plan = super::load(&at.pipeline, state)?;
    let mut record = record_of(&plan, at.sink.as_deref())?;
    if record.served == Served::Shadow {
        return Err(Error::Usage(format!(
            "`{}` is served already; `rollback` switches back",
            record.shadow_table
        ))
        .into());
    }
    let conditions = require.map(gate::parse).transpose()?;
    if conditions.is_some() && q.questions.is_none() {
        return Err(
            Error::Usage("--require needs --questions, the set to measure both tables with".into()).into(),
        );
    }
    let _lock = StateLock::acquire(&migrate::dir(&plan.state_dir))?;
    let options = sync::Options { docs_per_epoch: 64 };
    let mut report = reporter(record.shadow_table.clone());
    let diff = sync::catch_up(&plan, &mut record, options, &mut report).await?;
    if !diff.is_empty() {
        eprintln!(
            "promote refused: {} documents still differ (a stream is changing them); try again",
            diff.copy.len() + diff.remove.len()
        );
        return Ok(EXIT_REFUSED);
    }
    if let Some(path) = &q.questions {
        let mut ks = q.k.clone();
        ks.extend(conditions.iter().flatten().map(|c| c.k));
        let (live, shadow) = compare(&plan, &record, path, &eval::check_ks(&ks)?).await?;
        print!("{}", side_by_side(&live, &shadow));
        if let Some(conditions) = &conditions {
            let shadow_target = mplan::target(&plan, &record.sink, Served::Shadow);
            let default_mode = match shadow_target {
                Some(t) if t.table.can_match_text() => Mode::Hybrid,
                _ => Mode::Vector,
            };
            let checked = gate::check(conditions, default_mode, &live, &shadow)?;
            for (line, holds) in &checked {
                println!("{} {line}", if *holds { "holds:" } else { "FAILS:" });
            }
            if checked.iter().any(|(_, holds)| !holds) {
                eprintln!(
                    "promote refused: the gate does not hold; `{}` stays served",
                    record.live_table
                );
                return Ok(EXIT_REFUSED);
            }
        }
    }
    switch(&plan, &mut record, Served::Shadow, "promoted").await?;
    println!(
        "`{}` now serves `{}` (model {}); `sluice migrate rollback` switches back",
        record.sink, record.shadow_table, record.model_id
    );
    Ok(EXIT_OK)
}

async fn rollback(at: &At, state: Option<&Path>) -> anyhow::Result<u8> {
    let plan = super::load(&at.pipeline, state)?;
    let mut record = record_of(&plan, at.sink.as_deref())?;
    if record.served == Served::Live {
        return Err(Error::Usage(format!("`{}` is served already", record.live_table)).into());
    }
    switch(&plan, &mut record, Served::Live, "rolled back").await?;
    println!("`{}` serves `{}` again", record.sink, record.live_table);
    Ok(EXIT_OK)
}

async fn abort(at: &At, state: Option<&Path>) -> anyhow::Result<u8> {
    // Without the shadow: abort works even when the shadow no longer plans
    // (its sink was renamed, its model folder removed).
    let plan = super::load_without_migrations(&at.pipeline, state)?;
    let mut record = record_of(&plan, at.sink.as_deref())?;
    if record.served == Served::Shadow {
        return Err(Error::Usage(format!(
            "`{}` is served; `sluice migrate rollback` first, then abort",
            record.shadow_table
        ))
        .into());
    }
    let _lock = StateLock::acquire(&migrate::dir(&plan.state_dir))?;
    if !record.aborting {
        record.aborting = true;
        record.event("aborting");
        migrate::save(&plan.state_dir, &record)?;
    }
    // A run of the pipeline restarts without the shadow once it sees the
    // record change; wait for that before the table goes.
    let _idle = match StateLock::acquire(&plan.state_dir) {
        Ok(lock) => Some(lock),
        Err(Error::StateInUse { .. }) => {
            let grace = plan.checkpoint_interval * 2 + Duration::from_secs(2);
            eprintln!("a run of this pipeline is writing; giving it {grace:?} to stop writing the shadow");
            tokio::time::sleep(grace).await;
            None
        }
        Err(e) => return Err(e.into()),
    };
    let Some(live) = mplan::planned(&plan, &record.sink, Served::Live) else {
        migrate::remove(&plan.state_dir, &record.sink)?;
        println!(
            "migration of `{}` aborted; the pipeline no longer has that sink, so the table `{}` is left in its store: drop it there",
            record.sink, record.shadow_table
        );
        return Ok(EXIT_OK);
    };
    let shadow = live
        .config
        .with_table(&record.shadow_table)
        .ok_or_else(|| Error::Internal("the sink keeps no tables".into()))?;
    if let Some(job) = shadow.drop_table(&plan.sink_context(live)) {
        job.await
            .map_err(|e| Error::connector(format!("dropping `{}`", record.shadow_table), e))?;
    }
    migrate::remove(&plan.state_dir, &record.sink)?;
    println!(
        "migration of `{}` aborted: `{}` dropped; `{}` is written and served alone",
        record.sink, record.shadow_table, record.live_table
    );
    Ok(EXIT_OK)
}
