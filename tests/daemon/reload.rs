//! One supervisor per file: an edit restarts that pipeline alone, a broken
//! edit leaves the old version running, a deleted file stops, SIGTERM
//! checkpoints everything and exits 0.

use std::time::Duration;

use serde_json::json;

use crate::harness::{self, watched, Feeder};
use crate::util::Workspace;

#[test]
fn an_edit_restarts_one_pipeline_a_broken_edit_keeps_the_old_one_and_a_deleted_file_stops() {
    let ws = Workspace::new();
    for name in ["alpha", "beta", "gamma"] {
        ws.write(&format!("pipelines/{name}.yaml"), watched(name, 64));
    }
    ws.write("pipelines/notes.txt", "not a pipeline");
    let _feed = Feeder::start(
        ["alpha", "beta", "gamma"]
            .iter()
            .map(|n| ws.path(&format!("data/{n}")))
            .collect(),
        Duration::from_millis(150),
    );
    let d = harness::start(ws.dir.path(), &[], &[]);
    let names: Vec<String> = d.json("/v1/pipelines")["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    for name in ["alpha", "beta", "gamma"] {
        d.wait_past(name, 1);
    }

    // Edit alpha: it alone checkpoints and restarts on the new version.
    let before: Vec<u64> = ["beta", "gamma"].iter().map(|n| d.committed(n)).collect();
    let beta_rows = d.pipeline("beta")["source"]["rows"].as_u64().unwrap();
    ws.write("pipelines/alpha.yaml", watched("alpha", 32));
    d.wait("alpha", 30, "reloaded", |p| {
        p["reloads"] == 1 && p["state"] == "running"
    });
    let alpha_epoch = d.committed("alpha");
    d.wait_past("alpha", alpha_epoch);
    for (name, was) in ["beta", "gamma"].iter().zip(&before) {
        let p = d.pipeline(name);
        assert_eq!(p["reloads"], 0, "{name} was reloaded too: {p:#}");
        assert_eq!(p["restarts"], 0, "{name} was restarted: {p:#}");
        assert!(
            p["epoch"]["committed"].as_u64().unwrap() > *was,
            "{name} stopped counting: {p:#}"
        );
    }
    // Its counters never reset: the same run went on.
    assert!(d.pipeline("beta")["source"]["rows"].as_u64().unwrap() >= beta_rows);

    // Break beta: the old version keeps running, and the API shows the errors
    // with file, line and column.
    ws.write(
        "pipelines/beta.yaml",
        watched("beta", 64).replace("max_tokens: 64", "max_tokens: 64, overlap_tokns: 3"),
    );
    let p = d.wait("beta", 30, "showed its config errors", |p| {
        p["config_errors"].is_string()
    });
    let errors = p["config_errors"].as_str().unwrap();
    assert!(errors.contains("beta.yaml:6:"), "{errors}");
    assert!(errors.contains("overlap_tokns"), "{errors}");
    assert_eq!(p["state"], "running");
    let listed = d.json("/v1/pipelines");
    let beta = listed["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "beta")
        .unwrap();
    assert!(beta["config_errors"].as_str().unwrap().contains("overlap_tokns"));
    let at_break = d.committed("beta");
    d.wait_past("beta", at_break);
    assert!(
        d.log().contains("beta.yaml is not a valid pipeline"),
        "{}",
        d.log()
    );
    // Fixed again: the error clears and the new version is taken up.
    ws.write("pipelines/beta.yaml", watched("beta", 48));
    d.wait("beta", 30, "took up the fixed file", |p| {
        p["config_errors"].is_null() && p["reloads"] == 1 && p["state"] == "running"
    });

    // Delete gamma: a final checkpoint, then it stops.
    std::fs::remove_file(ws.path("pipelines/gamma.yaml")).unwrap();
    let p = d.wait("gamma", 30, "stopped", |p| p["state"] == "stopped");
    let stopped_at = p["epoch"]["committed"].as_u64().unwrap();
    let checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path("state/gamma/checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(checkpoint["epoch"], stopped_at);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(d.committed("gamma"), stopped_at, "a deleted pipeline went on");

    // Pause alpha: it checkpoints and stops reading; resume: it goes on.
    let (status, _, body) = d.post("/v1/pipelines/alpha/pause", &json!({}));
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let p = d.wait("alpha", 30, "paused", |p| p["state"] == "paused");
    let paused_at = p["epoch"]["committed"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(d.committed("alpha"), paused_at, "a paused pipeline went on");
    let (status, _, _) = d.post("/v1/pipelines/alpha/resume", &json!({}));
    assert_eq!(status, 202);
    d.wait_past("alpha", paused_at);
    let (status, _, _) = d.post("/v1/pipelines/gamma/resume", &json!({}));
    assert_eq!(status, 409, "a stopped pipeline cannot be resumed");
    let (status, _, _) = d.post("/v1/pipelines/nope/pause", &json!({}));
    assert_eq!(status, 404);

    // SIGTERM: every pipeline checkpoints, exit 0.
    let (status, out) = d.terminate();
    assert!(status.success(), "{status:?}");
    assert!(out.contains("every pipeline checkpointed"), "{out}");
    for name in ["alpha", "beta"] {
        assert!(ws.path(&format!("state/{name}/checkpoint.json")).exists());
    }
    // Everything the daemon wrote is there exactly once: each document's chunks
    // once per version, queried through `sluice sql --state`.
    let out = ws.ok(&[
        "--state",
        "state",
        "sql",
        "--pipeline",
        "pipelines/alpha.yaml",
        "--format",
        "json",
        // The log, not the current-state view `out`, which would hide a chunk
        // written again in a later epoch.
        "SELECT count(*) AS n, count(DISTINCT chunk_id) AS chunks FROM out_log",
    ]);
    let rows: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(rows[0]["n"].as_u64().unwrap() > 0);
    assert_eq!(rows[0]["n"], rows[0]["chunks"], "a chunk was written twice");
}

#[test]
fn a_pipeline_that_fails_is_restarted_with_backoff_and_shows_why() {
    let ws = Workspace::new();
    // A sink folder that is a file: every run fails when it opens the sink.
    ws.write("out/broken", "in the way");
    ws.write("data/broken/a.md", "# A\n\nText.\n");
    ws.write("pipelines/broken.yaml", watched("broken", 64));
    let d = harness::start(ws.dir.path(), &[], &[]);
    let p = d.wait("broken", 30, "backed off twice", |p| {
        p["restarts"].as_u64().unwrap_or(0) >= 2 && p["state"] == "backoff"
    });
    assert!(p["last_error"].as_str().unwrap().contains("sink `out`"), "{p:#}");
    assert!(p["retry_at"].is_string());
    // Fixed: the next attempt runs.
    std::fs::remove_file(ws.path("out/broken")).unwrap();
    d.wait("broken", 60, "recovered", |p| {
        p["state"] == "running" && p["epoch"]["committed"].as_u64() > Some(0)
    });
}
