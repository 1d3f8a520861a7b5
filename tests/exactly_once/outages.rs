//! Outages: Redis stopped mid-run and started again is ridden out; PostgreSQL
//! down past `max_outage` stops the run cleanly, naming the server, and the next
//! start resumes. Each uses its own servers, so other tests keep theirs.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::corpus::Corpus;
use crate::sinks::{assert_sinks_hold, pipeline, redis_counts, reference, Target};
use crate::util::{PrivateServices, Workspace};

fn spawn(ws: &Workspace) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "p.yaml"])
        .current_dir(ws.dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{what} never happened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Rows in the pgvector table; 0 while it does not exist yet.
fn pg_count(t: &Target) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Ok((c, conn)) = tokio_postgres::connect(&t.pg, tokio_postgres::NoTls).await else {
            return 0;
        };
        tokio::spawn(conn);
        match c
            .query_one(&format!("SELECT count(*) FROM {}", t.table), &[])
            .await
        {
            Ok(r) => r.get(0),
            Err(_) => 0,
        }
    })
}

/// A workspace with `docs` documents and the pipeline into `target`.
fn setup(target: &Target, docs: usize) -> Workspace {
    let ws = Workspace::new();
    Corpus::new(docs).write_all(&ws);
    ws.write("p.yaml", pipeline(target));
    ws
}

#[test]
fn redis_stopped_mid_run_and_started_again_loses_nothing() {
    let services = PrivateServices::start("");
    let target = Target::on(&services.env, "redis_outage");
    let ws = setup(&target, 400);
    let child = spawn(&ws);
    wait_until("a first epoch in Redis", || !redis_counts(&target).is_empty());
    services.stop("redis");
    std::thread::sleep(Duration::from_secs(3));
    services.resume("redis");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("retrying") && stderr.contains("Redis at"),
        "{stderr}"
    );
    assert_sinks_hold(&ws, &target, &reference(&ws));
}

#[test]
fn postgres_down_past_max_outage_stops_cleanly_and_the_next_start_resumes() {
    let services = PrivateServices::start("");
    let mut target = Target::on(&services.env, "pg_outage");
    target.max_outage = "2s";
    let ws = setup(&target, 400);
    let child = spawn(&ws);
    wait_until("a first epoch in PostgreSQL", || pg_count(&target) > 0);
    services.stop("pg");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "PostgreSQL at {} unreachable for 2s (max_outage); the epoch stays uncommitted",
            target.pg
        )),
        "{stderr}"
    );
    services.resume("pg");
    let again = ws.ok(&["run", "p.yaml"]);
    assert!(again.contains("documents"), "{again}");
    assert_sinks_hold(&ws, &target, &reference(&ws));
}
