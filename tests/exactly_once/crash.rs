//! The crash harness: `kill -9` at random moments (at least 20 per run, from a
//! logged seed), restart, and let the files change while the pipeline is down.
//! When it ends, every sink holds exactly the rows of the final files.
//!
//! `SLUICE_CRASH_KILLS=200` (and `SLUICE_CRASH_DOCS`) run the long mode;
//! `SLUICE_CRASH_SEED` replays a run.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::corpus::{seed, Corpus};
use crate::sinks::{assert_sinks_hold, feast_counts, pipeline, reference, Target};
use crate::util::Workspace;

fn env(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn kill_9_at_random_moments_then_restart_leaves_every_sink_exact() {
    let kills_wanted = env("SLUICE_CRASH_KILLS", 20);
    let docs = env("SLUICE_CRASH_DOCS", 1500);
    let mut rng = seed("SLUICE_CRASH_SEED", 0x5eed_1234);
    let target = Target::new("crash");
    let ws = Workspace::new();
    let mut corpus = Corpus::new(docs);
    corpus.write_all(&ws);
    ws.write("p.yaml", pipeline(&target));
    let log = ws.path("runs.log");
    let checkpoint = ws.path(".sluice/exactly_once/checkpoint.json");

    let (mut kills, mut completed, mut changes) = (0, 0, 0);
    let mut epochs = Vec::new();
    let started = Instant::now();
    while kills < kills_wanted {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{kills} kills in 10 minutes: too slow"
        );
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "p.yaml"])
            .current_dir(ws.dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        // One kill in four lands during start-up (model load, sink set-up, rollback);
        // the others at a random moment after the run has made a new checkpoint,
        // so each crashed run makes progress and crashes mid-epoch, mid-commit or
        // between a sink's commit and the checkpoint.
        let before = std::fs::read(&checkpoint).ok();
        let early = rng.below(4) == 0;
        let mut deadline = early.then(|| Instant::now() + Duration::from_millis(rng.below(1500)));
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if deadline.is_none() && std::fs::read(&checkpoint).ok() != before {
                deadline = Some(Instant::now() + Duration::from_millis(rng.below(300)));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        match status {
            Some(status) => {
                assert!(
                    status.success(),
                    "a run failed: {}",
                    std::fs::read_to_string(&log).unwrap()
                );
                completed += 1;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                let cp: Option<serde_json::Value> = std::fs::read(&checkpoint)
                    .ok()
                    .map(|b| serde_json::from_slice(&b).unwrap());
                epochs.push(cp.map(|c| c["epoch"].as_u64().unwrap()).unwrap_or(0));
            }
        }
        // Every few crashes the files change while the pipeline is down (1%
        // changed, 1% deleted, 1% added); after a completed run, 5% each, so the
        // next runs have work to be killed in.
        if status.is_some() {
            corpus.mutate(&ws, &mut rng, (docs / 20).max(1));
            changes += 1;
        } else if kills % 5 == 0 {
            corpus.mutate(&ws, &mut rng, (docs / 100).max(1));
            changes += 1;
        }
    }
    let last = ws.ok(&["run", "p.yaml"]);
    eprintln!(
        "{kills} kills (checkpointed epoch after each: {epochs:?}), {completed} runs completed between them, {changes} rounds of changes, {:?}; last run: {last}",
        started.elapsed()
    );
    let progressed = epochs.windows(2).filter(|w| w[1] > w[0]).count();
    assert!(
        progressed >= kills_wanted / 2,
        "most crashed runs should make progress before the kill: {epochs:?}"
    );
    let want = reference(&ws);
    assert!(want.len() > docs, "{} rows for {docs} documents", want.len());
    assert_sinks_hold(&ws, &target, &want);
    // Feast's own online read agrees, document by document.
    let ids = ws.query("p.yaml", "SELECT DISTINCT doc_id FROM out ORDER BY doc_id");
    let ids: Vec<String> = (ids.iter())
        .map(|r| r["doc_id"].as_str().unwrap().to_string())
        .collect();
    let mut per_doc: std::collections::BTreeMap<String, serde_json::Value> = Default::default();
    for (f, _, _) in &want {
        let n = per_doc.entry(f.clone()).or_insert(serde_json::json!(0));
        *n = serde_json::json!(n.as_i64().unwrap() + 1);
    }
    assert_eq!(feast_counts(&ws, &ids), per_doc, "Feast's get_online_features");
}
