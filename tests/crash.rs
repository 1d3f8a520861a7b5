//! `kill -9` the binary mid-run, restart it, and every document's chunks are in the
//! Parquet output exactly once.

mod util;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::Workspace;

const DOCS: usize = 4000;

fn pipeline() -> String {
    r#"name: crash
checkpoint: {interval: 50ms}
channels: {max_rows: 64}
source: {type: files, path: ./data, batch_size: 1}
stages:
  - {type: parse, parallelism: 1}
  - {type: chunk, max_tokens: 32, overlap_tokens: 4}
sinks:
  - {name: out, type: parquet, path: ./out}
"#
    .to_string()
}

fn corpus(ws: &Workspace) {
    for i in 0..DOCS {
        let body = format!("Document {i} talks about epochs and barriers. ").repeat(3 + i % 7);
        ws.write(&format!("data/{:02}/doc{i}.txt", i % 50), body);
    }
    ws.write("p.yaml", pipeline());
}

/// (path inside data/, chunk_index) of every row in the sink log.
fn chunk_keys(ws: &Workspace) -> (Vec<(String, u64)>, u64) {
    let rows = ws.query("p.yaml", "SELECT doc_id, chunk_index FROM out_log");
    let keys = rows
        .iter()
        .map(|r| {
            let id = r["doc_id"].as_str().unwrap();
            (
                id[id.find("/data/").unwrap()..].to_string(),
                r["chunk_index"].as_u64().unwrap(),
            )
        })
        .collect();
    let distinct = ws.count("p.yaml", "SELECT count(DISTINCT chunk_id) FROM out_log");
    (keys, distinct)
}

/// A small deterministic generator, so a failing seed can be replayed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn kill_9_mid_run_then_restart_writes_every_chunk_exactly_once() {
    let reference = Workspace::new();
    corpus(&reference);
    reference.ok(&["run", "p.yaml"]);
    let (expected, _) = chunk_keys(&reference);
    let expected: BTreeSet<_> = expected.into_iter().collect();

    let ws = Workspace::new();
    corpus(&ws);
    let mut seed: u64 = std::env::var("SLUICE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234);
    eprintln!("crash test seed: {seed} (set SLUICE_CRASH_SEED to replay)");
    let checkpoint = ws.path(".sluice/checkpoint.json");
    let mut kills = 0;
    for _ in 0..4 {
        let before = std::fs::read(&checkpoint).ok();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "p.yaml"])
            .current_dir(ws.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait for a new checkpoint, then kill at a random moment after it.
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::read(&checkpoint).ok() == before && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(next(&mut seed) % 40));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        kills >= 2,
        "the run finished before it could be killed; make the corpus larger"
    );
    let last = ws.ok(&["run", "p.yaml"]);
    assert!(last.contains(" documents"), "{last}");

    let (keys, distinct) = chunk_keys(&ws);
    let unique: BTreeSet<_> = keys.iter().cloned().collect();
    assert_eq!(keys.len(), unique.len(), "a chunk was written twice");
    assert_eq!(distinct as usize, keys.len());
    assert_eq!(unique, expected, "the crashed runs lost or changed chunks");
    assert_eq!(
        ws.count("p.yaml", "SELECT count(DISTINCT doc_id) FROM out"),
        DOCS as u64
    );
}
