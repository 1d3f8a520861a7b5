//! A secret given through `${ENV}` appears in no output: not in `validate`,
//! not in an error, not in the logs (at debug level), not in the daemon's API
//! or log. It used to leak through librdkafka's echo of a refused option value,
//! a Redis URL with the wrong scheme, and a `?password=` query parameter.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::harness;
use crate::util::Workspace;

const CANARY: &str = "canary-7f3a9c-do-not-print";

fn sluice(ws: &Workspace, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(ws.dir.path())
        .env("RUST_LOG", "debug")
        .env("SECRET_CANARY", CANARY)
        .output()
        .unwrap()
}

fn all_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn clean(what: &str, text: &str) {
    assert!(!text.contains(CANARY), "{what} printed the secret:\n{text}");
}

const PG_SINK: &str = "  - {name: pg, type: pgvector, url: \"postgresql://sluice:${SECRET_CANARY}@127.0.0.1:9/db?sslmode=disable&password=${SECRET_CANARY}\", table: t, dimension: 3, max_outage: 1s}\n";

#[test]
fn validate_and_failed_runs_never_print_the_secret() {
    let ws = Workspace::new();
    ws.write("data/a.txt", "alpha");
    // librdkafka refuses a value and echoes it; the secret sits in both options.
    ws.write(
        "kafka.yaml",
        "name: k\nsource:\n  type: kafka\n  brokers: 127.0.0.1:1\n  topics: [t]\n  group_id: g\n  options: {sasl.password: \"${SECRET_CANARY}\", socket.timeout.ms: \"${SECRET_CANARY}\"}\nsinks:\n  - {name: out, type: parquet, path: ./out}\n",
    );
    let out = sluice(&ws, &["validate", "kafka.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let text = all_of(&out);
    assert!(text.contains("librdkafka refuses"), "{text}");
    clean("validate", &text);

    // A database that is not there: the error names the server, not the password.
    let pipeline = |sinks: &str| {
        format!("name: s\nsource: {{type: files, path: ./data}}\nstages:\n  - {{name: parse, type: parse}}\n  - {{name: chunks, type: chunk, max_tokens: 32, overlap_tokens: 0}}\n  - {{name: v, type: sql, query: \"SELECT *, arrow_cast(make_array(1.0, 2.0, 3.0), 'FixedSizeList(3, Float32)') AS embedding FROM input\"}}\nsinks:\n{sinks}")
    };
    ws.write("pg.yaml", pipeline(PG_SINK));
    let out = sluice(&ws, &["run", "pg.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_of(&out));
    let text = all_of(&out);
    assert!(text.contains("127.0.0.1:9"), "{text}");
    clean("a failed run", &text);

    // A Redis URL with a scheme redis does not know.
    ws.write(
        "redis.yaml",
        pipeline("  - {name: f, type: feature_store, query: \"SELECT doc_id, op, max(modified_at) AS event_timestamp FROM input GROUP BY doc_id, op\", entity: [doc_id], offline: ./features, online: {url: \"rediss+nope://:${SECRET_CANARY}@127.0.0.1:1\"}}\n"),
    );
    let out = sluice(&ws, &["run", "redis.yaml"]);
    assert_ne!(out.status.code(), Some(0), "{}", all_of(&out));
    clean("a bad Redis URL", &all_of(&out));
}

#[test]
fn the_daemon_api_and_log_never_show_the_secret() {
    let ws = Workspace::new();
    ws.write("data/a.txt", "alpha");
    ws.write(
        "pipelines/pg.yaml",
        format!("name: pg\nsource: {{type: files, path: ../data}}\nstages:\n  - {{name: parse, type: parse}}\n  - {{name: chunks, type: chunk, max_tokens: 32, overlap_tokens: 0}}\n  - {{name: v, type: sql, query: \"SELECT *, arrow_cast(make_array(1.0, 2.0, 3.0), 'FixedSizeList(3, Float32)') AS embedding FROM input\"}}\nsinks:\n{PG_SINK}"),
    );
    let d = harness::start(
        ws.dir.path(),
        &[],
        &[("SECRET_CANARY", CANARY), ("RUST_LOG", "debug")],
    );
    let started = Instant::now();
    let listed = loop {
        let (_, body) = d.get("/v1/pipelines");
        if body.contains("last_error\":\"") {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no error yet: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    clean("GET /v1/pipelines", &listed);
    let (_, detail) = d.get("/v1/pipelines/pg");
    clean("GET /v1/pipelines/pg", &detail);
    let (_, metrics) = d.get("/metrics");
    clean("/metrics", &metrics);
    clean("the daemon's log", &d.log());
}
