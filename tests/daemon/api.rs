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

/// Regression: a command's body that arrives after its headers. The daemon
/// answered pause/resume without reading the body, so hyper closed the
/// connection under a keep-alive client, whose next request on it failed with
/// "Peer disconnected" (CI, 2026-12-03).
#[test]
fn a_command_body_sent_after_its_headers_keeps_the_connection_alive() {
    use std::io::{Read, Write};
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("pipelines")).unwrap();
    let d = harness::start(ws.dir.path(), &[], &[]);
    let addr = d.url.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The answer to one request: the head, then as many body bytes as it says.
    let answer = |conn: &mut std::net::TcpStream| -> String {
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            match conn.read(&mut byte) {
                Ok(1) => got.push(byte[0]),
                other => panic!(
                    "connection ended mid-answer: {other:?}; so far {:?}",
                    String::from_utf8_lossy(&got)
                ),
            }
        }
        let head = String::from_utf8_lossy(&got).to_string();
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body).unwrap();
        head
    };
    for round in 0..3 {
        write!(
            conn,
            "POST /v1/pipelines/nope/pause HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n"
        )
        .unwrap();
        conn.flush().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        conn.write_all(b"{}").unwrap();
        let head = answer(&mut conn);
        assert!(head.starts_with("HTTP/1.1 404"), "round {round}: {head}");
    }
}
