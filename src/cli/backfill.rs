//! `sluice backfill FILE`: the pipeline's history, bounded and resumable.
//!
//! The source is narrowed by the options and made bounded; the run keeps its
//! own checkpoint in `<state>/backfill/`, so a killed backfill resumes where it
//! stopped and never touches the streaming run's checkpoint. Sinks know they
//! are written by a backfill ([`SinkContext::backfill`]): folder sinks name their
//! epoch files apart, and database sinks neither roll back by epoch number nor
//! mark rows with an epoch the stream could roll back.
//!
//! [`SinkContext::backfill`]: sluice_connector_sdk::SinkContext::backfill

use std::path::Path;
use std::time::Instant;

use indicatif::HumanBytes;
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

/// `--emit-to kafka://[BROKERS/]TOPIC`: list the objects into a topic as object
/// events (`{"url": ...}`), for a fleet of daemons on `mode: object_events`.
#[cfg(feature = "kafka")]
async fn emit(plan: &Plan, target: &str, args: &Args) -> anyhow::Result<u8> {
    let rest = target.strip_prefix("kafka://").ok_or_else(|| {
        Error::Usage(format!(
            "--emit-to {target}: expected kafka://TOPIC or kafka://BROKERS/TOPIC"
        ))
    })?;
    let (brokers, topic) = match rest.rsplit_once('/') {
        Some((b, t)) => (b.to_string(), t.to_string()),
        None => (
            args.brokers.clone().ok_or_else(|| {
                Error::Usage(format!(
                    "--emit-to {target} names no brokers: use kafka://BROKERS/TOPIC, --brokers or SLUICE_KAFKA_BROKERS"
                ))
            })?,
            rest.to_string(),
        ),
    };
    let objects = listing(plan).await?;
    let urls: Vec<String> = objects.into_iter().map(|o| o.url).collect();
    let options = args.kafka_options.iter().cloned().collect();
    let sent = sluice_kafka::emit_object_events(&brokers, &topic, &urls, &options)
        .await
        .map_err(|e| Error::connector(format!("Kafka topic `{topic}`"), e))?;
    println!("{}: {sent} object events to {topic} on {brokers}", plan.name);
    Ok(EXIT_OK)
}

#[cfg(not(feature = "kafka"))]
async fn emit(_plan: &Plan, _target: &str, _args: &Args) -> anyhow::Result<u8> {
    Err(Error::Usage("--emit-to needs sluice built with the `kafka` feature".into()).into())
}
