//! A `/metrics` scrape, parsed by Prometheus's own parser (prometheus_client),
//! from a daemon streaming Kafka messages through the real model: every named
//! series is there, and the counters move between scrapes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness;
use crate::util::{kafka_tool, produce, repo_root, services, unique, Workspace};

/// Samples by name (labels dropped where one pipeline and stage leave one sample).
fn scrape(d: &harness::Daemon) -> BTreeMap<String, f64> {
    let (code, text) = d.get("/metrics");
    assert_eq!(code, 200);
    let script = repo_root().join("tests/python/prom_parse.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "Prometheus's parser rejected the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut samples = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let s: Value = serde_json::from_str(line).unwrap();
        let mut key = s["name"].as_str().unwrap().to_string();
        if let Some(stage) = s["labels"]["stage"].as_str() {
            key = format!("{key}/{stage}");
        }
        if let Some(sink) = s["labels"]["sink"].as_str() {
            key = format!("{key}/{sink}");
        }
        if let Some(state) = s["labels"]["state"].as_str() {
            key = format!("{key}/{state}");
        }
        samples.insert(key, s["value"].as_f64().unwrap());
    }
    samples
}

#[test]
fn metrics_scrape_parses_and_the_named_series_move() {
    let svc = services();
    let model = repo_root().join("models/all-minilm-l6-v2");
    assert!(
        model.join("model.onnx").exists(),
        "run `bash scripts/setup.sh` first"
    );
    let topic = unique("daemon-metrics");
    kafka_tool(&svc.kafka, &["create", &topic, "2"], "");
    let ws = Workspace::new();
    ws.write(
        "pipelines/events.yaml",
        format!(
            r#"name: events
checkpoint: {{interval: 200ms}}
source:
  type: kafka
  brokers: "{brokers}"
  topics: [{topic}]
  group_id: {group}
  batch_size: 16
stages:
  - {{name: parse, type: parse}}
  - {{name: chunks, type: chunk, max_tokens: 32, overlap_tokens: 0}}
  - name: embed
    type: embed
    model: {model}
    max_tokens: 16
sinks:
  - {{name: out, type: parquet, path: ../out}}
"#,
            brokers = svc.kafka,
            group = unique("g"),
            model = model.display(),
        ),
    );
    let wave = |from: usize, n: usize| -> Vec<Value> {
        (from..from + n)
            .map(|i| json!({"key": format!("doc-{i}"), "partition": i % 2, "value": format!("Message {i} says something about topic {} in words that run past sixteen tokens for sure", i % 7)}))
            .collect()
    };
    produce(&svc.kafka, &topic, &wave(0, 40));
    let d = harness::start(ws.dir.path(), &[], &[]);
    d.wait("events", 60, "embedded the first wave", |p| {
        p["stages"][2]["embed"]["embedded"].as_u64().unwrap_or(0) > 0
            && p["epoch"]["committed"].as_u64() > Some(1)
    });
    // Wait for librdkafka's statistics (every 5 s) and a 5 s rate window.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let s = scrape(&d);
        if s.contains_key("sluice_kafka_consumer_lag") && s.contains_key("sluice_embed_embeddings_per_second")
        {
            break s;
        }
        assert!(Instant::now() < deadline, "no lag or rate after 30 s: {s:#?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    for name in [
        "sluice_daemon_uptime_seconds",
        "sluice_pipeline_state/running",
        "sluice_pipeline_running",
        "sluice_pipeline_restarts_total",
        "sluice_epoch_committed",
        "sluice_checkpoint_age_seconds",
        "sluice_checkpoint_duration_seconds",
        "sluice_source_rows_total",
        "sluice_source_bytes_total",
        "sluice_kafka_consumer_lag",
        "sluice_dead_letters_total",
        "sluice_stage_rows_in_total/parse",
        "sluice_stage_rows_out_total/chunks",
        "sluice_stage_bytes_out_total/chunks",
        "sluice_stage_batches_total/embed",
        "sluice_stage_busy_seconds_total/embed",
        "sluice_stage_dead_letters_total/parse",
        "sluice_stage_queue_fill/embed",
        "sluice_embed_tokens_total/embed",
        "sluice_embed_embeddings_total/embed",
        "sluice_embed_embeddings_per_second",
        "sluice_embed_cache_hits_total/embed",
        "sluice_embed_cache_hit_ratio/embed",
        "sluice_embed_truncations_total/embed",
        "sluice_embed_norm_mean/embed",
        "sluice_embed_centroid_distance/embed",
        "sluice_sink_rows_total/out",
    ] {
        assert!(
            first.contains_key(name),
            "{name} missing from the scrape: {first:#?}"
        );
    }
    // Chunks of up to 32 tokens into a model cut at 16: truncations are counted.
    assert!(first["sluice_embed_truncations_total/embed"] > 0.0);
    let norm = first["sluice_embed_norm_mean/embed"];
    assert!(
        (0.9..1.1).contains(&norm),
        "MiniLM's vectors are normalized: {norm}"
    );

    // More messages: the counters move.
    produce(&svc.kafka, &topic, &wave(40, 40));
    let deadline = Instant::now() + Duration::from_secs(60);
    let second = loop {
        let s = scrape(&d);
        if s["sluice_source_rows_total"] >= first["sluice_source_rows_total"] + 40.0
            && s["sluice_epoch_committed"] > first["sluice_epoch_committed"]
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the counters never moved: {s:#?}\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    for name in [
        "sluice_embed_tokens_total/embed",
        "sluice_embed_embeddings_total/embed",
        "sluice_stage_rows_in_total/parse",
        "sluice_sink_rows_total/out",
        "sluice_source_bytes_total",
        "sluice_stage_busy_seconds_total/embed",
    ] {
        assert!(
            second[name] > first[name],
            "{name} did not move: {} -> {}",
            first[name],
            second[name]
        );
    }
    // The drift signal follows the data: a later epoch of other texts has a
    // centroid apart from the first epoch's (a cosine distance, in (0, 2]).
    let drift = second["sluice_embed_centroid_distance/embed"];
    assert!(
        drift > 0.0 && drift <= 2.0,
        "centroid distance {drift} after new texts"
    );
    let (status, _) = d.terminate();
    assert!(status.success());
}
