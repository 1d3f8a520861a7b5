//! `sluice tail`: through the daemon's Server-Sent Events and through a run's
//! tail socket, filtered, limited, refused when wrong, gone when the client
//! goes, and never in the pipeline's way.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{self, watched, Feeder};
use crate::util::Workspace;

fn sluice(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(dir)
        .env_remove("SLUICE_API_TOKEN")
        .env_remove("SLUICE_DAEMON")
        .output()
        .unwrap()
}

fn json_lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// The `sluice_tail_watchers` of `pipeline` in a /metrics scrape.
fn watchers(d: &harness::Daemon, pipeline: &str) -> f64 {
    let (_, text) = d.get("/metrics");
    let prefix = format!("sluice_tail_watchers{{pipeline=\"{pipeline}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn tails_follow_any_point_through_the_daemon_and_the_socket_and_end_with_their_client() {
    let ws = Workspace::new();
    ws.write("pipelines/docs.yaml", watched("docs", 8));
    let _feed = Feeder::start(vec![ws.path("data/docs")], Duration::from_millis(50));
    let d = harness::start(ws.dir.path(), &[], &[("SLUICE_API_TOKEN", "tail-token")]);
    d.wait("docs", 30, "wrote rows", |p| {
        p["sinks"][0]["rows"].as_u64().unwrap_or(0) > 0
    });
    let dir = ws.dir.path();

    // Through the daemon: a stage that is not tapped, filtered and limited.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["tail", "--daemon", &d.url, "--pipeline", "docs", "chunks"])
        .args(["--where", "chunk_index = 1", "--limit", "4", "--format", "json"])
        .current_dir(dir)
        .env("SLUICE_API_TOKEN", "tail-token")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 4, "{rows:?}");
    for r in &rows {
        assert_eq!(r["chunk_index"], 1, "{r}");
        assert!(r["doc_id"].as_str().unwrap().contains("doc-"), "{r}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the limit was reached"), "{stderr}");

    // Without the token the daemon refuses.
    let out = sluice(
        dir,
        &[
            "tail",
            "--daemon",
            &d.url,
            "--pipeline",
            "docs",
            "chunks",
            "--limit",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bearer token"));

    // Through the run's socket, by the pipeline's file: the source and a sink's input.
    for point in ["source", "out"] {
        let out = sluice(
            dir,
            &[
                "--state",
                "state",
                "tail",
                "--pipeline",
                "pipelines/docs.yaml",
                point,
                "--limit",
                "2",
            ],
        );
        assert!(
            out.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(
            table.contains("doc_id") && table.contains("doc-"),
            "{point}:\n{table}"
        );
    }

    // No backfill runs: `--backfill` looks for its socket, in the backfill's
    // state folder, and says so.
    let out = sluice(
        dir,
        &[
            "--state",
            "state",
            "tail",
            "--pipeline",
            "pipelines/docs.yaml",
            "--backfill",
            "parse",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the pipeline is not running") && stderr.contains("state/docs/backfill/tail.sock"),
        "{stderr}"
    );
    refusals_say_why(dir, &d.url);
    an_sse_client_that_leaves_is_forgotten(&d);
}

/// Refusals name what is wrong, through the socket and the daemon, with
/// exit 2 and no panic.
fn refusals_say_why(dir: &std::path::Path, url: &str) {
    // Refusals name what is wrong, with exit 2 and no panic.
    for (args, why) in [
        (
            vec!["nope"],
            "no stage or sink named `nope`; it has: source, parse, chunks, out",
        ),
        (vec!["chunks", "--where", "missing_column = 1"], "missing_column"),
        (vec!["chunks", "--where", "chunk_index +"], "--where"),
    ] {
        let mut socket = vec!["--state", "state", "tail", "--pipeline", "pipelines/docs.yaml"];
        socket.extend(&args);
        let mut http = vec!["tail", "--daemon", url, "--pipeline", "docs"];
        http.extend(&args);
        for argv in [socket, http] {
            let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
                .args(&argv)
                .current_dir(dir)
                .env("SLUICE_API_TOKEN", "tail-token")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{argv:?}: {stderr}");
            assert!(stderr.contains(why), "{argv:?}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

/// A Server-Sent Events client that reads one event and leaves: the daemon
/// forgets it.
fn an_sse_client_that_leaves_is_forgotten(d: &harness::Daemon) {
    // A Server-Sent Events client that reads one event and leaves: the
    // daemon forgets it.
    let stream = std::net::TcpStream::connect(d.url.trim_start_matches("http://")).unwrap();
    let mut writer = stream.try_clone().unwrap();
    write!(
        writer,
        "GET /v1/pipelines/docs/tail/parse HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer tail-token\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut saw_rows = false;
    while !saw_rows {
        line.clear();
        reader.read_line(&mut line).unwrap();
        saw_rows = line.starts_with("event: rows");
    }
    assert_eq!(watchers(d, "docs"), 1.0);
    drop(reader);
    drop(writer);
    let deadline = Instant::now() + Duration::from_secs(20);
    while watchers(d, "docs") > 0.0 {
        assert!(Instant::now() < deadline, "the tail outlived its client");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_tail_that_never_reads_does_not_slow_the_run() {
    let ws = Workspace::new();
    let n = 400;
    std::fs::create_dir_all(ws.path("data")).unwrap();
    ws.write(
        "p.yaml",
        "name: p\nstate_dir: ./state\ncheckpoint: {interval: 100ms}\n\
         source: {type: files, path: ./data, watch: true, poll_interval: 100ms}\n\
         channels: {max_rows: 16}\n\
         stages:\n  - {name: parse, type: parse}\n  - {name: chunks, type: chunk, max_tokens: 16, overlap_tokens: 0}\n\
         sinks:\n  - {name: out, type: parquet, path: ./out}\n",
    );
    let mut run = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "p.yaml", "--no-progress"])
        .current_dir(ws.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ws.wait_for_file("state/tail.sock", 30);
    // Ask to follow the chunks, then never read a byte.
    let mut idle = std::os::unix::net::UnixStream::connect(ws.path("state/tail.sock")).unwrap();
    idle.write_all(b"{\"point\": \"chunks\"}\n").unwrap();
    // The documents arrive once the tail is there, over many polls: the tail
    // is offered many batches, megabytes of rows it never takes.
    for i in 0..n {
        ws.write(
            &format!("data/d{i:04}.md"),
            format!("# Doc {i}\n\n{}\n", "words and more words. ".repeat(200)),
        );
        if i % 8 == 7 {
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let docs = ws.count("p.yaml", "SELECT count(DISTINCT doc_id) FROM out");
        if docs == n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {docs} of {n} documents written while a tail sat idle"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(idle);
    let _ = Command::new("kill")
        .args(["-INT", &run.id().to_string()])
        .status();
    assert!(run.wait().unwrap().success());
    assert!(
        !ws.path("state/tail.sock").exists(),
        "the socket outlived its run"
    );
}
