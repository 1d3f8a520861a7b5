//! One owner per state folder: pipelines never resume from each other's
//! checkpoint, and a second process on a state folder is refused, naming the
//! first.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::{basic_pipeline, Workspace};

#[test]
fn two_pipelines_in_one_folder_keep_separate_checkpoints_by_default() {
    let ws = Workspace::new();
    ws.write("data/a.txt", "alpha");
    ws.write("data/b.txt", "bravo");
    ws.write(
        "one.yaml",
        basic_pipeline("", "1s").replace("name: test", "name: one"),
    );
    // Same source, another name and sink: it must read everything again.
    let two = basic_pipeline("", "1s")
        .replace("name: test", "name: two")
        .replace("path: ./out", "path: ./out2");
    ws.write("two.yaml", two);
    let first = ws.ok(&["run", "one.yaml"]);
    assert!(first.contains("2 documents"), "{first}");
    let second = ws.ok(&["run", "two.yaml"]);
    assert!(
        second.contains("2 documents"),
        "the second pipeline resumed from the first's checkpoint: {second}"
    );
    assert_eq!(ws.count("two.yaml", "SELECT count(DISTINCT doc_id) FROM out"), 2);
    assert!(ws.path(".sluice/one/checkpoint.json").exists());
    assert!(ws.path(".sluice/two/checkpoint.json").exists());
}

#[test]
fn a_checkpoint_written_by_another_pipeline_is_refused() {
    let ws = Workspace::new();
    ws.write("data/a.txt", "alpha");
    let shared = |name: &str| {
        basic_pipeline("", "1s").replace("name: test", &format!("name: {name}\nstate_dir: ./shared-state"))
    };
    ws.write("one.yaml", shared("one"));
    ws.write("two.yaml", shared("two"));
    ws.ok(&["run", "one.yaml"]);
    let out = ws.sluice(&["run", "two.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("written by pipeline `one`, not `two`"),
        "{stderr}"
    );
}

#[test]
fn a_second_process_on_a_state_folder_is_refused_and_told_who_holds_it() {
    let ws = Workspace::new();
    ws.write("data/a.txt", "alpha");
    // A dead letter, so that `dlq replay` has something to replay.
    ws.fixture("truncated.pdf", "data/bad.pdf");
    ws.write(
        "p.yaml",
        basic_pipeline("  watch: true\n  poll_interval: 100ms", "200ms"),
    );
    ws.write("once.yaml", basic_pipeline("", "200ms"));
    let mut first = ws.spawn(&["run", "--no-progress", "p.yaml"], Stdio::null());
    ws.wait_for_file(".sluice/test/checkpoint.json", 60);
    let pid = first.id();
    for args in [
        &["run", "p.yaml"][..],
        &["dlq", "replay", "--pipeline", "p.yaml"][..],
    ] {
        let out = ws.sluice(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("is in use by"), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("pid {pid} on host")),
            "{args:?}: {stderr}"
        );
    }
    // Read-only commands still work beside it.
    ws.ok(&["sql", "--pipeline", "p.yaml", "SELECT count(*) FROM out"]);
    first.kill().unwrap();
    first.wait().unwrap();
    // kill -9 leaves no stale lock: the kernel dropped it with the process.
    ws.ok(&["run", "once.yaml"]);
}

#[test]
fn a_checkpoint_that_cannot_be_written_stops_the_run_with_the_reason() {
    let ws = Workspace::new();
    ws.write("data/a.txt", "alpha");
    ws.write(
        "p.yaml",
        basic_pipeline("  watch: true\n  poll_interval: 100ms", "200ms"),
    );
    let log = ws.path("run.log");
    let mut run = ws.spawn(
        &["run", "--no-progress", "p.yaml"],
        std::fs::File::create(&log).unwrap().into(),
    );
    ws.wait_for_file(".sluice/test/checkpoint.json", 60);
    let checkpoint = ws.path(".sluice/test/checkpoint.json");
    let started = Instant::now();
    // The next checkpoint's rename cannot replace a folder that holds a file.
    std::fs::remove_file(&checkpoint).unwrap();
    ws.write(".sluice/test/checkpoint.json/in-the-way", "x");
    ws.write("data/b.txt", "bravo");
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            run.kill().unwrap();
            panic!(
                "the run went on without checkpoints:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not be written (5 tries)"), "{stderr}");
}

#[test]
fn a_corrupt_dead_letter_file_is_moved_aside_and_the_run_goes_on() {
    let ws = Workspace::new();
    ws.write("data/a.txt", "alpha");
    ws.fixture("truncated.pdf", "data/bad.pdf");
    ws.write("p.yaml", basic_pipeline("", "1s"));
    ws.ok(&["run", "p.yaml"]);
    let dlq = ws.path(".sluice/test/dlq");
    let file = std::fs::read_dir(&dlq)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .expect("a dead-letter file");
    std::fs::write(&file, b"not parquet at all").unwrap();
    let out = ws.sluice(&["run", "p.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("moved aside"), "{stderr}");
    assert!(file.with_extension("parquet.corrupt").exists());
    assert!(!file.exists());
}
