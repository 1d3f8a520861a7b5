//! `sluice backfill`: killed and resumed, it lands everything exactly once in its
//! own checkpoint namespace, beside a streaming run of the same pipeline that it
//! never disturbs; `--dry-run` counts exactly; `--emit-to` lists into Kafka.

use crate::util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::{consume, kafka_tool, services, slow_pdf, unique, Workspace};

const PIPELINE: &str = r#"name: history
checkpoint: {interval: 100ms}
source: {type: files, path: ./data, batch_size: 2}
stages:
  - {name: parse, type: parse, parallelism: 1}
  - {name: chunks, type: chunk, max_tokens: 32, overlap_tokens: 0}
sinks:
  - {name: out, type: parquet, path: ./out}
"#;

fn backfill(ws: &Workspace, args: &[&str]) -> String {
    let mut all = vec!["backfill", "--no-progress", "p.yaml"];
    all.extend_from_slice(args);
    ws.ok(&all)
}

fn checkpoint_epoch(path: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["epoch"].as_u64()
}

#[test]
fn a_killed_backfill_resumes_exactly_once_beside_a_streaming_run_it_never_disturbs() {
    let ws = Workspace::new();
    ws.write("p.yaml", PIPELINE);
    // The streaming run has seen the first documents and checkpointed.
    for i in 0..5 {
        ws.write(
            &format!("data/recent/{i}.md"),
            format!("# Recent {i}\n\nFresh words {i}.\n"),
        );
    }
    ws.ok(&["run", "--no-progress", "p.yaml"]);
    let stream_checkpoint = std::fs::read(ws.path(".sluice/history/checkpoint.json")).unwrap();
    // History arrives: slow PDFs, so the backfill can be killed mid-way.
    for i in 0..40 {
        ws.write(&format!("data/history/{i:02}.pdf"), slow_pdf(30_000 + i));
    }
    let backfill_checkpoint = ws.path(".sluice/history/backfill/checkpoint.json");
    let mut child = ws.spawn(
        &["backfill", "--no-progress", "p.yaml", "--concurrency", "1"],
        Stdio::null(),
    );
    let started = Instant::now();
    while checkpoint_epoch(&backfill_checkpoint).unwrap_or(0) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the backfill never checkpointed"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backfill ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL: no final checkpoint
    child.wait().unwrap();
    let at_kill = checkpoint_epoch(&backfill_checkpoint).unwrap();
    assert_eq!(
        std::fs::read(ws.path(".sluice/history/checkpoint.json")).unwrap(),
        stream_checkpoint,
        "the backfill touched the stream's checkpoint"
    );
    let done_at_kill = ws.count("p.yaml", "SELECT count(DISTINCT doc_id) FROM out");
    assert!(
        done_at_kill < 45,
        "the kill should land mid-way: {done_at_kill} documents done"
    );

    // Resumed, it finishes from its checkpoint, not from the start.
    let out = backfill(&ws, &[]);
    assert!(out.contains("documents"), "{out}");
    let resumed: u64 = out
        .split(": ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        resumed < 45,
        "the resumed backfill read {resumed} documents: it started over"
    );
    assert!(checkpoint_epoch(&backfill_checkpoint).unwrap() > at_kill);
    // Every document once, every chunk once, across both writers' files.
    assert_eq!(ws.count("p.yaml", "SELECT count(DISTINCT doc_id) FROM out"), 45);
    let dupes = ws.count(
        "p.yaml",
        "SELECT count(*) FROM (SELECT chunk_id FROM out_log GROUP BY chunk_id HAVING count(*) > 1)",
    );
    // The five recent documents were read by both: the stream and the backfill,
    // once each. Nothing else twice.
    let recent_chunks = ws.count(
        "p.yaml",
        "SELECT count(DISTINCT chunk_id) FROM out_log WHERE doc_id LIKE '%/recent/%'",
    );
    assert_eq!(dupes, recent_chunks);
    let files: Vec<String> = std::fs::read_dir(ws.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.iter().any(|f| f.starts_with("backfill-epoch-")),
        "{files:?}"
    );
    assert!(files.iter().any(|f| f.starts_with("epoch-")), "{files:?}");

    // The stream runs again: it rolls back only its own epochs, and the
    // backfill's files stay.
    let before = files.iter().filter(|f| f.starts_with("backfill-epoch-")).count();
    ws.ok(&["run", "--no-progress", "p.yaml"]);
    let after = std::fs::read_dir(ws.path("out"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("backfill-epoch-")
        })
        .count();
    assert_eq!(after, before);
    assert_eq!(ws.count("p.yaml", "SELECT count(DISTINCT doc_id) FROM out"), 45);
}

#[test]
fn dry_run_counts_the_documents_and_bytes_the_filters_select() {
    let ws = Workspace::new();
    ws.write("p.yaml", PIPELINE);
    let mut bytes_a = 0;
    for i in 0..3 {
        let body = format!("# A{i}\n\n{}\n", "alpha words ".repeat(10 + i));
        bytes_a += body.len();
        ws.write(&format!("data/a/{i}.md"), body);
    }
    ws.write("data/b/0.md", "# B\n\nbeta\n");
    let old = ws.write("data/a/old.md", "# Old\n\nfrom 2019\n");
    assert!(Command::new("touch")
        .args(["-d", "2019-06-01T00:00:00Z"])
        .arg(&old)
        .status()
        .unwrap()
        .success());
    let out = backfill(&ws, &["--dry-run", "--prefix", "a/", "--since", "2020-01-01"]);
    assert!(
        out.contains(&format!("history: 3 documents, {bytes_a} bytes")),
        "{out}"
    );
    // No embed stage: about 4 bytes a token, scaled from a sample of all three.
    assert!(
        out.contains(&format!("estimate: about {} tokens", bytes_a / 4)),
        "{out}"
    );
    assert!(
        out.contains(&format!("from 3 sample documents, {bytes_a} bytes")),
        "{out}"
    );
    let out = backfill(&ws, &["--dry-run", "--until", "2020-01-01"]);
    assert!(out.contains("history: 1 documents, 17 bytes"), "{out}");
    let out = backfill(&ws, &["--dry-run"]);
    assert!(out.contains("history: 5 documents"), "{out}");
    // Nothing was written.
    assert!(!ws.path("out").exists());
    assert!(!ws.path(".sluice/history/backfill/checkpoint.json").exists());
    // A date sluice cannot read is refused as a usage error.
    let bad = ws.sluice(&["backfill", "--dry-run", "p.yaml", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));
}

#[test]
fn emit_to_lists_the_objects_into_a_topic_as_object_events() {
    let svc = services();
    let topic = unique("backfill-emit");
    kafka_tool(&svc.kafka, &["create", &topic, "1"], "");
    let ws = Workspace::new();
    ws.write("p.yaml", PIPELINE);
    for i in 0..4 {
        ws.write(&format!("data/{i}.md"), format!("# {i}\n"));
    }
    let target = format!("kafka://{}/{topic}", svc.kafka);
    // One record per producer batch: tansu mishandles multi-record batches.
    let out = backfill(
        &ws,
        &[
            "--emit-to",
            &target,
            "--kafka-option",
            "batch.num.messages=1",
            "--kafka-option",
            "linger.ms=0",
        ],
    );
    assert!(out.contains("4 object events"), "{out}");
    let mut urls: Vec<String> = consume(&svc.kafka, &topic)
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_str(m["value"].as_str().unwrap()).unwrap();
            v["url"].as_str().unwrap().to_string()
        })
        .collect();
    urls.sort();
    let data = std::fs::canonicalize(ws.path("data")).unwrap();
    let want: Vec<String> = (0..4)
        .map(|i| format!("file://{}/{i}.md", data.display()))
        .collect();
    assert_eq!(urls, want);
    assert!(!ws.path("out").exists(), "emitting reads and writes nothing");

    // A scheme no connector carries, and a topic without brokers: exit 2, said.
    for (target, says) in [
        ("nats://x", "no connector sends events to nats://"),
        ("kafka://lonely", "names no brokers"),
    ] {
        let out = ws.sluice(&["backfill", "--no-progress", "p.yaml", "--emit-to", target]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{target}: {err}");
        assert!(err.contains(says), "{target}: {err}");
    }
}

#[test]
fn a_kafka_backfill_reads_from_the_beginning_in_its_own_group_and_ends() {
    let svc = services();
    let topic = unique("backfill-kafka");
    let group = unique("g");
    kafka_tool(&svc.kafka, &["create", &topic, "2"], "");
    let messages: Vec<serde_json::Value> = (0..12)
        .map(|i| serde_json::json!({"key": format!("k{i}"), "partition": i % 2, "value": format!("Message {i}.")}))
        .collect();
    util::produce(&svc.kafka, &topic, &messages);
    let ws = Workspace::new();
    // A streaming pipeline: it starts at the latest offset and never ends.
    ws.write(
        "p.yaml",
        format!(
            "name: events\ncheckpoint: {{interval: 100ms}}\nsource: {{type: kafka, brokers: \"{}\", topics: [{topic}], group_id: {group}, start: latest}}\nsinks:\n  - {{name: out, type: parquet, path: ./out}}\n",
            svc.kafka
        ),
    );
    // Filters that only a files source has are refused, clearly.
    let bad = ws.sluice(&["backfill", "p.yaml", "--prefix", "x/"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--prefix, --since and --until apply to files sources")
    );
    let out = backfill(&ws, &["--from-beginning"]);
    assert!(out.starts_with("events: 12 documents"), "{out}");
    assert_eq!(ws.count("p.yaml", "SELECT count(DISTINCT doc_id) FROM out"), 12);
    // Its offsets are its own group's; the stream's group is untouched.
    assert_eq!(
        util::committed(&svc.kafka, &format!("{group}-backfill"), &topic),
        vec![6, 6]
    );
    assert!(util::committed(&svc.kafka, &group, &topic).iter().all(|o| *o < 0));
}
