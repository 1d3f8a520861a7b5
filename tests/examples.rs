//! The example pipelines in `pipelines/` for S3 and Kafka: each validates, and
//! runs against the real servers (moto, tansu) with the embedding model.

use crate::util;

use std::path::Path;
use std::process::Command;

use serde_json::json;
use util::{consume, kafka_tool, produce, s3_objects, services, unique, Workspace};

/// Run `sluice ARGS` with `env`, in `dir`; stdout, or fail with everything.
fn sluice(dir: &Path, env: &[(&str, String)], args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .env("SLUICE_MODEL", util::repo_root().join("models/all-minilm-l6-v2"))
        .env_remove("ORT_DYLIB_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "sluice {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn pipeline(name: &str) -> String {
    util::repo_root()
        .join("pipelines")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn count(dir: &Path, env: &[(&str, String)], p: &str, sql: &str) -> u64 {
    let out = sluice(dir, env, &["sql", "--pipeline", p, "--format", "json", sql]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(out.trim()).unwrap();
    rows[0]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_u64()
        .unwrap()
}

fn s3_env(s3: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", s3.to_string()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

#[test]
fn s3_docs_example_ingests_a_bucket_prefix() {
    let s3 = services().s3;
    let bucket = unique("example").replace('_', "-");
    s3_objects(
        &s3,
        &bucket,
        json!({"create_bucket": true, "put": {
            "manuals/intro.md": "# Intro\n\nsluice moves documents into vector stores.",
            "manuals/setup.txt": "Install it, then run the quickstart.",
            "manuals/drafts/wip.md": "not yet",
        }}),
    );
    let ws = Workspace::new();
    let mut env = s3_env(&s3);
    env.push(("S3_DOCS", format!("s3://{bucket}/manuals")));
    env.push(("SLUICE_STATE", ws.path("state").to_string_lossy().into_owned()));
    let p = pipeline("s3-docs.yaml");
    sluice(ws.dir.path(), &env, &["validate", &p]);
    sluice(ws.dir.path(), &env, &["run", "--no-progress", &p]);
    assert_eq!(
        count(
            ws.dir.path(),
            &env,
            &p,
            "SELECT count(DISTINCT doc_id) FROM vectors"
        ),
        2
    );
    assert_eq!(
        count(
            ws.dir.path(),
            &env,
            &p,
            "SELECT count(DISTINCT doc_id) FROM chunk_log"
        ),
        2
    );
}

#[test]
fn kafka_docs_example_ingests_a_topic_and_feeds_another() {
    let brokers = services().kafka;
    let (topic, out) = (unique("docs"), unique("docs_chunks"));
    kafka_tool(&brokers, &["create", &topic, "2"], "");
    kafka_tool(&brokers, &["create", &out, "1"], "");
    produce(
        &brokers,
        &topic,
        &[
            json!({"key": "a", "value": "Backpressure keeps memory flat."}),
            json!({"key": "b", "value": "Checkpoints make restarts exact."}),
            json!({"key": "c", "value": "Gone soon."}),
            json!({"key": "c", "value": null}),
        ],
    );
    let ws = Workspace::new();
    let env = vec![
        ("KAFKA_BROKERS", brokers.clone()),
        ("KAFKA_TOPIC", topic),
        ("KAFKA_OUT_TOPIC", out.clone()),
        ("KAFKA_GROUP", unique("g")),
        ("KAFKA_STOP_AT_END", "true".into()),
        ("SLUICE_STATE", ws.path("state").to_string_lossy().into_owned()),
        // tansu mishandles multi-record producer batches.
        ("KAFKA_LINGER_MS", "0".into()),
        ("KAFKA_BATCH_MESSAGES", "1".into()),
    ];
    let p = pipeline("kafka-docs.yaml");
    sluice(ws.dir.path(), &env, &["validate", &p]);
    sluice(ws.dir.path(), &env, &["run", "--no-progress", &p]);
    assert_eq!(
        count(
            ws.dir.path(),
            &env,
            &p,
            "SELECT count(DISTINCT doc_id) FROM vectors"
        ),
        2
    );
    let messages = consume(&brokers, &out);
    // Three chunks, then c's delete.
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert!(messages
        .iter()
        .any(|m| m["value"].as_str().unwrap().contains("\"embedding\":[")));
}

#[test]
fn kafka_s3_events_example_fetches_the_objects_events_name() {
    let svc = services();
    let bucket = unique("ev").replace('_', "-");
    s3_objects(
        &svc.s3,
        &bucket,
        json!({"create_bucket": true, "put": {"in/one.md": "# One\n\nThe first object."}}),
    );
    let topic = unique("events");
    kafka_tool(&svc.kafka, &["create", &topic, "1"], "");
    let event = json!({"Records": [{"eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": "in/one.md"}}}]});
    produce(
        &svc.kafka,
        &topic,
        &[
            json!({"key": null, "value": event.to_string()}),
            json!({"key": null, "value": "oops"}),
        ],
    );
    let ws = Workspace::new();
    let mut env = s3_env(&svc.s3);
    env.extend([
        ("KAFKA_BROKERS", svc.kafka.clone()),
        ("KAFKA_TOPIC", topic),
        ("KAFKA_GROUP", unique("g")),
        ("KAFKA_STOP_AT_END", "true".into()),
        ("SLUICE_STATE", ws.path("state").to_string_lossy().into_owned()),
        ("EVENTS_ALLOW", format!("s3://{bucket}/in/")),
    ]);
    let p = pipeline("kafka-s3-events.yaml");
    sluice(ws.dir.path(), &env, &["validate", &p]);
    let summary = sluice(ws.dir.path(), &env, &["run", "--no-progress", &p]);
    assert!(summary.contains("1 dead letters"), "{summary}");
    assert_eq!(
        count(
            ws.dir.path(),
            &env,
            &p,
            "SELECT count(DISTINCT doc_id) FROM vectors"
        ),
        1
    );
    assert_eq!(
        count(ws.dir.path(), &env, &p, "SELECT count(*) FROM dead_letters"),
        1
    );
}
