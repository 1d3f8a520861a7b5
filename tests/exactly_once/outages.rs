//! Outages: Redis stopped mid-run and started again, and the object store under
//! LanceDB cut off for a few seconds, are ridden out; PostgreSQL down past
//! `max_outage` stops the run cleanly, naming the server, and the next start
//! resumes. Each uses its own servers, so other tests keep theirs.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::corpus::Corpus;
use crate::sinks::{assert_sinks_hold, pipeline, redis_counts, reference, Target};
use crate::util::{PrivateServices, Workspace};

fn spawn(ws: &Workspace) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "p.yaml"])
        .current_dir(ws.dir.path())
        // object_store logs its retries at info.
        .env("RUST_LOG", "warn,object_store=info")
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

/// Documents for an outage test: enough that, on a loaded 2-core machine, the run
/// is still writing epochs well after its first one is visible (with 400, a CI
/// run once finished before the outage began).
const DOCS: usize = 1200;

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
    let ws = setup(&target, DOCS);
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
    let ws = setup(&target, DOCS);
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

/// `tests/python/tcp_proxy.py` in front of a port; killed on drop.
struct Proxy {
    child: Child,
    port: u16,
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .arg(crate::util::repo_root().join("tests/python/tcp_proxy.py"))
            .arg(target.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Proxy {
            port: line.trim().parse().unwrap(),
            child,
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_object_store_under_lancedb_cut_off_mid_run_loses_nothing() {
    let services = PrivateServices::start("");
    let s3_port: u16 = services.env.s3.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = Proxy::start(s3_port);
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let bucket = crate::util::unique("outage").replace('_', "-");
    crate::util::create_bucket(&services.env.s3, &bucket);
    let options = crate::util::s3_options(&endpoint);
    let uri = format!("s3://{bucket}/db");
    let target = Target::on(&services.env, "s3_outage");
    let ws = setup(&target, DOCS);
    // Lance retries on its own first (its AIMD throttle layer, each try up to 4
    // object_store requests), for longer than any fixed outage here when it is
    // on: turned off, object_store's three retries give up within a second and
    // the sink's own retry has to ride the outage out. With it on (the default)
    // CI saw Lance absorb an 8 s outage, so `retrying` never showed.
    let mut sink_options = options.clone();
    sink_options.push(("lance_aimd_max_retries".into(), "0".into()));
    let lance = crate::util::lance_sink_yaml(&uri, &sink_options);
    let p = pipeline(&target).replace(
        "{name: vectors, type: lancedb, uri: ./lance, table: chunks}",
        &lance,
    );
    assert!(p.contains("s3://"));
    ws.write("p.yaml", p);
    let child = spawn(&ws);
    // Once the first rows are committed (the Parquet sink commits with LanceDB),
    // more epochs follow every few hundred milliseconds: cut the store off then.
    wait_until("a first epoch of rows", || {
        std::fs::read_dir(ws.path("out"))
            .map(|d| {
                d.flatten()
                    .any(|f| f.file_name().to_string_lossy().ends_with(".parquet"))
            })
            .unwrap_or(false)
    });
    proxy.signal("-USR1");
    std::thread::sleep(Duration::from_secs(3));
    proxy.signal("-USR2");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // object_store's own retries give up after three; the sink's retry rides on.
    assert!(
        stderr.contains("backing off"),
        "the run never saw the outage: {stderr}"
    );
    assert!(stderr.contains("retrying"), "{stderr}");
    let want = reference(&ws);
    assert_eq!(crate::sinks::lance_rows_at(&uri, &options), want);
}
