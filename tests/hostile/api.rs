//! The daemon's API refuses what a web page on another site could make a
//! browser send, and holds no connection open for a client that never
//! finishes its headers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness;
use crate::util::Workspace;

/// Send a raw HTTP/1.1 request; the status code of the answer.
fn status(addr: &str, request: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r
}

#[test]
fn forged_browser_requests_are_refused_and_honest_ones_pass() {
    let ws = Workspace::new();
    ws.write("data/a.txt", "alpha");
    ws.write(
        "pipelines/docs.yaml",
        "name: docs\nsource: {type: files, path: ../data}\nsinks:\n  - {name: out, type: parquet, path: ../out}\n",
    );
    let d = harness::start(ws.dir.path(), &["--allow-host", "sluice.internal"], &[]);
    let addr = d.url.trim_start_matches("http://").to_string();
    let sql = r#"{"pipeline": "docs", "query": "SELECT 1 AS one"}"#;
    let json = ("Content-Type", "application/json");
    let get = |host: &str| status(&addr, &request("GET", "/v1/pipelines", &[("Host", host)], ""));

    // DNS rebinding: a name the daemon was not told about.
    assert_eq!(get("attacker.example"), 421);
    assert_eq!(get("attacker.example:80"), 421);
    // Addresses, localhost and configured names.
    assert_eq!(get(&addr), 200);
    assert_eq!(get("localhost:8080"), 200);
    assert_eq!(get("[::1]:8080"), 200);
    assert_eq!(get("Sluice.Internal:8080"), 200);

    // SQL only as JSON: a text/plain or form POST needs no CORS preflight.
    let post = |path: &str, headers: &[(&str, &str)], body: &str| {
        let mut all = vec![("Host", addr.as_str())];
        all.extend_from_slice(headers);
        status(&addr, &request("POST", path, &all, body))
    };
    assert_eq!(post("/v1/sql", &[("Content-Type", "text/plain")], sql), 415);
    assert_eq!(
        post(
            "/v1/sql",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            sql
        ),
        415
    );
    assert_eq!(post("/v1/sql", &[], sql), 415);
    assert_eq!(post("/v1/sql", &[json], sql), 200);

    // Cross-origin writes: by Origin, or by the browser's Sec-Fetch-Site.
    assert_eq!(
        post(
            "/v1/pipelines/docs/pause",
            &[("Origin", "http://attacker.example")],
            ""
        ),
        403
    );
    assert_eq!(post("/v1/pipelines/docs/pause", &[("Origin", "null")], ""), 403);
    assert_eq!(
        post(
            "/v1/pipelines/docs/pause",
            &[("Sec-Fetch-Site", "cross-site")],
            ""
        ),
        403
    );
    assert_eq!(
        post("/v1/sql", &[json, ("Origin", "http://attacker.example")], sql),
        403
    );
    let own_origin = format!("http://{addr}");
    assert_eq!(
        post("/v1/sql", &[json, ("Origin", own_origin.as_str())], sql),
        200
    );
    // A client without Origin (curl, a script) may.
    assert_eq!(post("/v1/pipelines/docs/pause", &[], ""), 202);
}

#[test]
fn the_token_scheme_is_case_insensitive_and_readyz_names_no_pipeline() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("pipelines")).unwrap();
    ws.write(
        "pipelines/secret-project.yaml",
        "name: secret-project\nsource: {type: nope}\n",
    );
    let d = harness::start(ws.dir.path(), &[], &[("SLUICE_API_TOKEN", "tok-123")]);
    let addr = d.url.trim_start_matches("http://").to_string();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} tok-123");
        let r = request(
            "GET",
            "/v1/pipelines",
            &[("Host", &addr), ("Authorization", &auth)],
            "",
        );
        assert_eq!(status(&addr, &r), 200, "{scheme}");
    }
    let r = request(
        "GET",
        "/v1/pipelines",
        &[("Host", &addr), ("Authorization", "Basic tok-123")],
        "",
    );
    assert_eq!(status(&addr, &r), 401);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(request("GET", "/readyz", &[("Host", &addr)], "").as_bytes())
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(!answer.contains("secret-project"), "{answer}");
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("pipelines")).unwrap();
    let d = harness::start(ws.dir.path(), &[], &[]);
    let addr = d.url.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /v1/pipelines HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    // Well past the server's 10 s header-read timeout: without it, this read
    // times out on our side instead of seeing the server close.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut buf = Vec::new();
    let read = s.read_to_end(&mut buf);
    assert!(read.is_ok(), "the connection was held open: {read:?}");
}

/// The console's routes answer hostile parameters and bodies with a 4xx and
/// the reason, never a 5xx or a panic, and a forged replay is refused.
#[test]
fn the_console_routes_refuse_hostile_input() {
    let ws = Workspace::new();
    ws.write("data/a.txt", "alpha");
    ws.write(
        "pipelines/docs.yaml",
        "name: docs\nsource: {type: files, path: ../data, watch: true, poll_interval: 100ms}\n\
         stages:\n  - {name: parse, type: parse}\nsinks:\n  - {name: out, type: parquet, path: ../out}\n",
    );
    let d = harness::start(ws.dir.path(), &[], &[]);
    d.wait("docs", 30, "running", |p| p["state"] == "running");
    let addr = d.url.trim_start_matches("http://").to_string();
    let host = ("Host", "127.0.0.1");
    let json = ("Content-Type", "application/json");
    let get = |path: &str| status(&addr, &request("GET", path, &[host], ""));
    let long = "x".repeat(5_000);
    for (path, want) in [
        ("/v1/pipelines/docs/tail/nope".to_string(), 404),
        ("/v1/pipelines/nope/tail/parse".to_string(), 404),
        ("/v1/pipelines/docs/tail/parse?where=text%20%3D".to_string(), 400),
        (
            "/v1/pipelines/docs/tail/parse?where=(SELECT%201)".to_string(),
            400,
        ),
        (
            "/v1/pipelines/docs/tail/parse?where=doc_id%20%2B%201".to_string(),
            400,
        ),
        (format!("/v1/pipelines/docs/tail/parse?where={long}"), 400),
        ("/v1/pipelines/docs/tail/parse?limit=-1".to_string(), 400),
        (
            "/v1/pipelines/docs/tail/parse?width=99999999999999999999".to_string(),
            400,
        ),
        ("/v1/pipelines/%00%ff/history".to_string(), 400),
        ("/v1/pipelines/nope/tables".to_string(), 404),
        ("/v1/pipelines/nope/eval".to_string(), 404),
        (
            format!("/v1/pipelines/docs/tail/parse?where={}", "x".repeat(100_000)),
            414,
        ),
    ] {
        let code = get(&path);
        assert_eq!(code, want, "GET {}", &path[..path.len().min(80)]);
    }
    let replay = "/v1/pipelines/docs/dead_letters/replay";
    let post = |headers: &[(&str, &str)], body: &str| {
        let mut all = vec![host];
        all.extend_from_slice(headers);
        status(&addr, &request("POST", replay, &all, body))
    };
    for body in [
        "",
        "{}",
        "[]",
        r#"{"ids": []}"#,
        r#"{"all": true, "ids": ["a"]}"#,
        r#"{"all": false}"#,
        r#"{"ids": "a"}"#,
        r#"{"ids": ["a"], "extra": 1}"#,
    ] {
        assert_eq!(post(&[json], body), 400, "{body}");
    }
    let many = format!(r#"{{"ids": [{}]}}"#, vec!["\"a\""; 10_001].join(","));
    assert_eq!(post(&[json], &many), 400);
    // A quote in an id is a value, not SQL: nothing matches.
    assert_eq!(post(&[json], r#"{"ids": ["x' OR '1'='1"]}"#), 404);
    assert_eq!(post(&[json], r#"{"all": true}"#), 404, "no letters to replay");
    assert_eq!(post(&[("Content-Type", "text/plain")], r#"{"all": true}"#), 415);
    assert_eq!(
        post(&[json, ("Origin", "http://attacker.example")], r#"{"all": true}"#),
        403
    );
    assert_eq!(get("/v1/pipelines/docs/history"), 200);
    assert_eq!(get("/v1/pipelines/docs/tables"), 200);
    assert_eq!(get("/v1/pipelines/docs/eval"), 200);
    // The console's assets are open and allow their own origin only.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(request("GET", "/", &[host], "").as_bytes()).unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let policy = page
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-security-policy:"))
        .unwrap_or_else(|| panic!("no policy in {page}"));
    assert!(
        policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"),
        "{policy}"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page names another origin"
    );
    assert_eq!(d.pipeline("docs")["state"], "running", "{}", d.log());
    assert!(!d.log().contains("panicked"));
}
