//! `sluice backfill FILE`: the pipeline's history, bounded and resumable.
//!
//! The source is narrowed by the options and made bounded; the run keeps its
//! own checkpoint in `<state>/backfill/`, so a killed backfill resumes where it
//! stopped and never touches the streaming run's checkpoint. Sinks know they
//! are written by a backfill ([`SinkRole::Backfill`]): folder sinks name their
//! epoch files apart, and database sinks neither roll back by epoch number nor
//! mark rows with an epoch the stream could roll back.
//!
//! [`SinkRole::Backfill`]: sluice_connector_sdk::SinkRole::Backfill

use std::path::Path;
use std::time::Instant;

use indicatif::HumanBytes;
use sluice_connector_sdk::events::EmitOptions;
use sluice_connector_sdk::{BackfillOptions, ListedObject};

use super::EXIT_OK;

use crate::plan::Plan;
use crate::{Error, Result};

/// What `backfill` was asked to do.
pub struct Args {
    pub options: BackfillOptions,
    pub dry_run: bool,
    pub emit_to: Option<String>,
    pub brokers: Option<String>,
    /// librdkafka producer properties for `--emit-to`.
    pub kafka_options: Vec<(String, String)>,
    pub show_progress: bool,
}

pub async fn backfill(pipeline: &Path, state: Option<&Path>, args: Args) -> anyhow::Result<u8> {
    let plan = super::load(pipeline, state)?.for_backfill(&args.options)?;
    if args.dry_run {
        return dry_run(&plan).await;
    }
    if let Some(target) = &args.emit_to {
        return emit(&plan, target, &args).await;
    }
    super::run::run_plan(plan, args.show_progress).await
}

/// The objects the backfill would read.
async fn listing(plan: &Plan) -> Result<Vec<ListedObject>> {
    let ctx = plan.source_context();
    let Some(listing) = plan.source.config.list(&ctx) else {
        return Err(Error::Usage(format!(
            "a `{}` source has no object listing: --dry-run and --emit-to need a files source",
            plan.source.kind
        )));
    };
    listing.await.map_err(|e| Error::connector("source", e))
}

/// Count what would be read; estimate tokens and time from a sample run
/// through the pipeline's own stages, here.
async fn dry_run(plan: &Plan) -> anyhow::Result<u8> {
    let started = Instant::now();
    let objects = listing(plan).await?;
    let bytes: u64 = objects.iter().map(|o| o.size).sum();
    println!(
        "{}: {} documents, {} bytes ({}), listed in {:.1}s",
        plan.name,
        objects.len(),
        bytes,
        HumanBytes(bytes),
        started.elapsed().as_secs_f64()
    );
    if objects.is_empty() {
        return Ok(EXIT_OK);
    }
    let sample = crate::runtime::sample(plan, 32).await?;
    if sample.bytes == 0 {
        println!("estimate: the sample held no readable content; no estimate");
        return Ok(EXIT_OK);
    }
    let scale = bytes as f64 / sample.bytes as f64;
    let tokens = match sample.tokens {
        Some(t) => (t as f64 * scale) as u64,
        // No embed stage to count them: about 4 bytes a token in English text.
        None => bytes / 4,
    };
    let seconds = sample.elapsed.as_secs_f64() * scale;
    println!(
        "estimate: about {tokens} tokens, about {} through the stages on this machine \
         (from {} sample documents, {} bytes, in {:.2}s{})",
        human_duration(seconds),
        sample.documents,
        sample.bytes,
        sample.elapsed.as_secs_f64(),
        if sample.tokens.is_some() {
            " with the embed stage's model"
        } else {
            ""
        }
    );
    Ok(EXIT_OK)
}

fn human_duration(seconds: f64) -> String {
    match seconds {
        s if s < 90.0 => format!("{s:.0}s"),
        s if s < 5400.0 => format!("{:.0}min", s / 60.0),
        s => format!("{:.1}h", s / 3600.0),
    }
}

/// `--emit-to SCHEME://...` (`kafka://[BROKERS/]TOPIC`): list the objects
/// into a queue as object events (`{"url": ...}`), for a fleet of daemons on
/// `mode: object_events`. The registry says which connector carries a scheme.
async fn emit(plan: &Plan, target: &str, args: &Args) -> anyhow::Result<u8> {
    use crate::spec::registry::{self, Lookup};
    let (scheme, rest) = target.split_once("://").ok_or_else(|| {
        Error::Usage(format!(
            "--emit-to {target}: expected a URL such as kafka://TOPIC"
        ))
    })?;
    let factory = match registry::event_target(scheme) {
        Lookup::Found(Some(f)) => f,
        Lookup::NotBuilt(feature) => {
            return Err(Error::Usage(format!(
                "--emit-to {scheme}:// needs sluice built with the `{}` feature",
                feature.0
            ))
            .into())
        }
        _ => return Err(Error::Usage(format!("--emit-to: no connector sends events to {scheme}://")).into()),
    };
    let options = EmitOptions {
        servers: args.brokers.clone(),
        properties: args.kafka_options.iter().cloned().collect(),
    };
    let target = factory(rest, &options).map_err(|e| Error::connector(format!("--emit-to {target}"), e))?;
    let objects = listing(plan).await?;
    let urls: Vec<String> = objects.into_iter().map(|o| o.url).collect();
    let sent = target
        .emit(&urls)
        .await
        .map_err(|e| Error::connector(target.describe(), e))?;
    println!("{}: {sent} object events to {}", plan.name, target.describe());
    Ok(EXIT_OK)
}
