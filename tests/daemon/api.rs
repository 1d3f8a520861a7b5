//! The API's token rule, its SQL endpoint (JSON, Arrow IPC, the CLI's refusals)
//! and its answers for what does not exist.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::harness::{self, watched, Feeder};
use crate::util::Workspace;

#[test]
fn listening_beyond_loopback_needs_a_token_and_the_token_guards_every_route_but_health() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("pipelines")).unwrap();
    // No token, not loopback: refused before anything starts, exit 2.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["daemon", "--pipelines", "pipelines", "--listen", "0.0.0.0:0"])
        .current_dir(ws.dir.path())
        .env_remove("SLUICE_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SLUICE_API_TOKEN"), "{stderr}");
    assert!(!ws.path("state").exists());

    // With a token it starts, on any address.
    let d = harness::start(
        ws.dir.path(),
        &["--listen", "0.0.0.0:0"],
        &[("SLUICE_API_TOKEN", "s3cret-token")],
    );
    let port = d.url.rsplit(':').next().unwrap().to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let status =
        |req: ureq::RequestBuilder<ureq::typestate::WithoutBody>| req.call().unwrap().status().as_u16();
    assert_eq!(status(agent.get(url("/v1/pipelines"))), 401);
    assert_eq!(status(agent.get(url("/metrics"))), 401);
    assert_eq!(
        status(
            agent
                .get(url("/v1/pipelines"))
                .header("Authorization", "Bearer wrong")
        ),
        401
    );
    assert_eq!(
        status(
            agent
                .get(url("/v1/pipelines"))
                .header("Authorization", "Bearer s3cret-token")
        ),
        200
    );
    let r = agent.post(url("/v1/sql")).send("{}").unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(status(agent.get(url("/healthz"))), 200);
    assert_eq!(status(agent.get(url("/readyz"))), 200);
    assert!(!d.log().contains("s3cret-token"), "the token was logged");
}

#[test]
fn sql_answers_json_and_arrow_and_refuses_what_the_cli_refuses() {
    let ws = Workspace::new();
    ws.write("pipelines/docs.yaml", watched("docs", 64));
    ws.write("pipelines/bad.yaml", "name: bad\nsource: {type: nope}\n");
    let _feed = Feeder::start(vec![ws.path("data/docs")], Duration::from_millis(100));
    let d = harness::start(ws.dir.path(), &[], &[]);
    let p = d.wait("docs", 30, "wrote 5 documents", |p| {
        p["sinks"][0]["rows"].as_u64().unwrap_or(0) >= 5
    });
    // Until the epoch that holds them is checkpointed.
    d.wait_past("docs", p["epoch"]["open"].as_u64().unwrap());
    let (code, body) = d.get("/readyz");
    assert_eq!(code, 200, "{body}");

    let ask = |query: &str, format: &str| {
        d.post(
            "/v1/sql",
            &json!({"pipeline": "docs", "query": query, "format": format}),
        )
    };
    let (code, ctype, body) = ask("SELECT count(DISTINCT doc_id) AS docs FROM out", "json");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ctype, "application/json");
    let rows: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(rows[0]["docs"].as_u64().unwrap() >= 5, "{rows}");

    // Arrow IPC, read back with arrow's own reader.
    let (code, ctype, body) = ask("SELECT doc_id, text FROM out ORDER BY doc_id LIMIT 3", "arrow");
    assert_eq!(code, 200);
    assert_eq!(ctype, "application/vnd.apache.arrow.stream");
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None).unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    assert_eq!(batches[0].schema().field(0).name(), "doc_id");

    // The CLI's refusals.
    for query in [
        "DROP TABLE out",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "SELECT 1; SELECT 2",
    ] {
        let (code, _, body) = ask(query, "json");
        let body = String::from_utf8_lossy(&body);
        assert_eq!(code, 400, "{query}: {body}");
        assert!(
            body.contains("refused") || body.contains("exactly one"),
            "{query}: {body}"
        );
    }
    let (code, _, body) = ask("SELECT nope FROM out", "json");
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&body));
    let (code, _, _) = d.post("/v1/sql", &json!({"pipeline": "ghost", "query": "SELECT 1"}));
    assert_eq!(code, 404);
    let (code, _, body) = d.post("/v1/sql", &json!({"query": "SELECT 1"}));
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&body));
    // A file that never validated is listed, with its errors, and cannot be queried.
    let bad = d.pipeline("bad");
    assert_eq!(bad["state"], "invalid");
    assert!(
        bad["config_errors"].as_str().unwrap().contains("bad.yaml:2:"),
        "{bad:#}"
    );
    let (code, _, _) = d.post("/v1/sql", &json!({"pipeline": "bad", "query": "SELECT 1"}));
    assert_eq!(code, 409);
    let (code, _) = d.get("/v1/pipelines/ghost");
    assert_eq!(code, 404);
}
