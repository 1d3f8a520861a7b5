//! `watch: true` follows new, changed and deleted files; SIGINT and SIGTERM write a
//! final checkpoint and exit 0.

use crate::util;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use util::Workspace;

const PIPELINE: &str = r#"name: watched
checkpoint: {interval: 200ms}
source: {type: files, path: ./data, watch: true, poll_interval: 100ms}
stages:
  - {type: parse}
  - {type: chunk, max_tokens: 64, overlap_tokens: 0}
sinks:
  - {name: out, type: parquet, path: ./out}
"#;

fn start(ws: &Workspace) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "p.yaml"])
        .current_dir(ws.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Poll the current state until it holds exactly `want` (file name, text) pairs.
fn wait_for(ws: &Workspace, want: &[(&str, &str)]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let rows = ws.query("p.yaml", "SELECT doc_id, text FROM out ORDER BY doc_id");
        seen = rows
            .iter()
            .map(|r| {
                let id = r["doc_id"].as_str().unwrap();
                (
                    id.rsplit('/').next().unwrap().to_string(),
                    r["text"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        if seen
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .eq(want.iter().copied())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("sink never reached {want:?}; last seen {seen:?}");
}

fn stop(child: Child, signal: &str) -> String {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    format!("{}{stderr}", String::from_utf8_lossy(&out.stdout))
}

#[test]
fn watch_follows_changes_and_signals_checkpoint_then_exit_0() {
    let ws = Workspace::new();
    ws.write("p.yaml", PIPELINE);
    ws.write("data/a.txt", "alpha one");
    ws.write("data/b.txt", "bravo");
    let child = start(&ws);
    wait_for(&ws, &[("a.txt", "alpha one"), ("b.txt", "bravo")]);

    ws.write("data/a.txt", "alpha two, changed");
    std::fs::remove_file(ws.path("data/b.txt")).unwrap();
    ws.write("data/c.txt", "charlie");
    wait_for(&ws, &[("a.txt", "alpha two, changed"), ("c.txt", "charlie")]);

    let output = stop(child, "-INT");
    assert!(output.contains("writing a checkpoint"), "{output}");
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.path(".sluice/watched/checkpoint.json")).unwrap()).unwrap();
    let manifest = checkpoint["source"]["versions"].as_object().unwrap();
    let mut names: Vec<&str> = manifest.keys().map(|k| k.rsplit('/').next().unwrap()).collect();
    names.sort();
    assert_eq!(names, vec!["a.txt", "c.txt"]);

    // A file added while stopped is picked up on restart; SIGTERM stops it too.
    ws.write("data/d.txt", "delta");
    let child = start(&ws);
    wait_for(
        &ws,
        &[
            ("a.txt", "alpha two, changed"),
            ("c.txt", "charlie"),
            ("d.txt", "delta"),
        ],
    );
    stop(child, "-TERM");
    // Nothing was written twice across the restarts.
    assert_eq!(
        ws.count("p.yaml", "SELECT count(*) FROM out_log WHERE op = 'upsert'"),
        5
    );
}

/// Regression: the folder was never listed again when checkpoint ticks came
/// faster than `poll_interval` (each tick cancelled the wait, which restarted).
#[test]
fn a_poll_interval_longer_than_the_checkpoint_interval_still_lists_again() {
    let ws = Workspace::new();
    ws.write(
        "p.yaml",
        PIPELINE
            .replace("interval: 200ms", "interval: 50ms")
            .replace("poll_interval: 100ms", "poll_interval: 300ms"),
    );
    ws.write("data/a.txt", "alpha");
    let child = start(&ws);
    wait_for(&ws, &[("a.txt", "alpha")]);
    ws.write("data/b.txt", "bravo");
    wait_for(&ws, &[("a.txt", "alpha"), ("b.txt", "bravo")]);
    stop(child, "-TERM");
}
