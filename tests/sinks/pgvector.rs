//! pgvector: rows and vectors read back with tokio-postgres, the HNSW index in use,
//! dimension checks, password redaction, an outage, and TLS.

use std::collections::BTreeMap;

use crate::common::*;
use crate::util::{self, Workspace};

#[test]
fn pgvector_holds_exactly_the_current_chunks_with_their_vectors() {
    let pg_url = util::services().pg;
    let table = util::unique("chunks");
    let ws = Workspace::new();
    corpus(&ws);
    let sink =
        format!("  - {{name: vectors, type: pgvector, url: \"{pg_url}\", table: {table}, dimension: 384}}");
    ws.write("p.yaml", pipeline(&sink));
    ws.ok(&["run", "p.yaml"]);

    let rt = runtime();
    let read = |rt: &tokio::runtime::Runtime| -> BTreeMap<String, String> {
        rt.block_on(async {
            let c = pg(&pg_url).await;
            c.query(&format!("SELECT chunk_id, doc_id FROM {table}"), &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        })
    };
    let want = expected(&ws);
    assert!(want.len() >= 8, "{}", want.len());
    assert_eq!(read(&rt), want);

    // The vectors are the ones the Parquet sink got, 384 floats each, and the
    // HNSW index answers a nearest-neighbour query with the row itself.
    let (id, parquet_vec): (String, Vec<f32>) = {
        let r = &ws.query(
            "p.yaml",
            "SELECT chunk_id, embedding FROM out ORDER BY chunk_id LIMIT 1",
        )[0];
        let v = r["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        (r["chunk_id"].as_str().unwrap().to_string(), v)
    };
    rt.block_on(async {
        let c = pg(&pg_url).await;
        let row = c
            .query_one(
                &format!("SELECT embedding FROM {table} WHERE chunk_id = $1"),
                &[&id],
            )
            .await
            .unwrap();
        let v: pgvector::Vector = row.get(0);
        assert_eq!(v.as_slice().len(), 384);
        let diff = v
            .as_slice()
            .iter()
            .zip(&parquet_vec)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-5, "{diff}");
        let nearest: String = c
            .query_one(
                &format!("SELECT chunk_id FROM {table} ORDER BY embedding <=> $1 LIMIT 1"),
                &[&pgvector::Vector::from(parquet_vec.clone())],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(nearest, id);
        let indexes: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE '%hnsw%'",
                &[&table],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(indexes, 1);
        // The planner uses it (a table this small is scanned unless told not to).
        let literal = format!(
            "[{}]",
            parquet_vec.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
        );
        let plan: Vec<String> = c
            .simple_query(&format!(
                "SET enable_seqscan = off; EXPLAIN SELECT chunk_id FROM {table} ORDER BY embedding <=> '{literal}' LIMIT 1"
            ))
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .collect();
        assert!(plan.iter().any(|l| l.contains(&format!("{table}_hnsw"))), "{plan:?}");
    });

    // `sluice sql` reads the table through the sink (the same rows as
    // tokio-postgres, vectors and timestamps decoded), and vector_search embeds
    // a query with the pipeline's own model: a chunk's own text finds it.
    let through_sql: BTreeMap<String, String> = ws
        .query("p.yaml", "SELECT chunk_id, doc_id FROM vectors")
        .iter()
        .map(|r| {
            let s = |c: &str| r[c].as_str().unwrap().to_string();
            (s("chunk_id"), s("doc_id"))
        })
        .collect();
    assert_eq!(through_sql, want);
    let stamped = ws.count(
        "p.yaml",
        "SELECT count(*) FROM vectors WHERE array_length(embedding) = 384 AND modified_at IS NOT NULL AND sluice_writer LIKE 'sinks@%'",
    );
    assert_eq!(stamped, want.len() as u64);
    let (hits, own) = search_own_text(&ws);
    assert_eq!(hits.len(), 3, "{hits:?}");
    assert_eq!(hits[0]["chunk_id"], own, "{hits:?}");
    assert!(hits[0]["_distance"].as_f64().unwrap().abs() < 1e-3, "{hits:?}");

    // A changed document keeps no chunk of its old version; a deleted one is gone.
    edit(&ws);
    ws.ok(&["run", "p.yaml"]);
    let after = expected(&ws);
    assert!(!after.values().any(|d| d.ends_with("doc3.md")));
    assert!(after.values().any(|d| d.ends_with("doc1.md")));
    assert_eq!(read(&rt), after);

    // A replay after a lost checkpoint writes nothing twice.
    std::fs::remove_file(ws.path(".sluice/sinks/checkpoint.json")).unwrap();
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(read(&rt), after);
}

#[test]
fn pgvector_refuses_a_table_of_another_dimension() {
    let pg_url = util::services().pg;
    let table = util::unique("small");
    runtime().block_on(async {
        let c = pg(&pg_url).await;
        c.batch_execute(&format!(
            "CREATE EXTENSION IF NOT EXISTS vector; CREATE TABLE {table} (chunk_id TEXT PRIMARY KEY, embedding vector(3))"
        ))
        .await
        .unwrap();
    });
    let ws = Workspace::new();
    corpus(&ws);
    let sink = format!("  - {{name: vectors, type: pgvector, url: \"{pg_url}\", table: {table}}}");
    ws.write("p.yaml", pipeline(&sink));
    let out = ws.sluice(&["run", "p.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a user error: {err}");
    assert!(
        err.contains(&format!(
            "table `{table}` has `embedding` vector(3), this pipeline makes vector(384)"
        )),
        "{err}"
    );
    assert_eq!(err.matches("refusing to run").count(), 1, "said once: {err}");

    // A declared dimension that the model does not make fails validate.
    let sink =
        format!("  - {{name: vectors, type: pgvector, url: \"{pg_url}\", table: {table}, dimension: 768}}");
    ws.write("p.yaml", pipeline(&sink));
    let out = ws.sluice(&["validate", "p.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the pipeline makes 384-dimensional embeddings, this sink declares 768"),
        "{err}"
    );
}

#[test]
fn a_password_from_the_environment_never_reaches_the_output() {
    let ws = Workspace::new();
    corpus(&ws);
    // Nothing listens on port 9: the connection fails quickly.
    let sink = "  - {name: vectors, type: pgvector, url: \"postgresql://sluice:${PGPASS}@127.0.0.1:9/db\", table: t, max_outage: 1s}";
    ws.write("p.yaml", pipeline(sink));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "p.yaml"])
        .current_dir(ws.dir.path())
        .env("PGPASS", "hunter2-secret")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("postgresql://sluice:***@127.0.0.1:9/db"), "{all}");
    assert!(all.contains("unreachable"), "{all}");
    assert!(!all.contains("hunter2"), "{all}");
}

#[test]
fn pgvector_waits_out_a_database_outage_and_loses_nothing() {
    let services = util::PrivateServices::start("");
    let url = services.env.pg.clone();

    let ws = Workspace::new();
    for d in 0..240 {
        ws.write(
            &format!("data/doc{d:03}.md"),
            format!("# Document {d}\n\nA paragraph about topic {d}, long enough to be a chunk of its own in this test.\n"),
        );
    }
    let sink =
        format!("  - {{name: vectors, type: pgvector, url: \"{url}\", table: outage, max_outage: 60s}}");
    ws.write(
        "p.yaml",
        pipeline(&sink)
            // Small channels throttle the source, so epochs are cut all through the run.
            .replace("interval: 1s", "interval: 200ms\nchannels:\n  max_rows: 16")
            .replace("path: ./data\n", "path: ./data\n  batch_size: 2\n")
            // Small micro-batches: the embed stage holds few rows, so it throttles the source.
            .replace("type: embed\n", "type: embed\n    batch_size: 2\n"),
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "p.yaml"])
        .current_dir(ws.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // As soon as the first epoch is in, stop the database for three seconds.
    let rt = runtime();
    let rows = |rt: &tokio::runtime::Runtime| -> i64 {
        rt.block_on(async {
            let Ok((c, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await else {
                return -1;
            };
            tokio::spawn(conn);
            match c.query_one("SELECT count(*) FROM outage", &[]).await {
                Ok(r) => r.get(0),
                Err(_) => -1,
            }
        })
    };
    let started = std::time::Instant::now();
    while rows(&rt) <= 0 {
        assert!(started.elapsed().as_secs() < 120, "no rows arrived");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let first_rows = started.elapsed();
    services.stop("pg");
    std::thread::sleep(std::time::Duration::from_secs(3));
    services.resume("pg");

    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("retrying"),
        "the run never saw the outage (rows first seen after {first_rows:?}, run ended after {:?}): {stderr}\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stdout)
    );
    let want = expected(&ws);
    let got: BTreeMap<String, String> = rt.block_on(async {
        let c = pg(&url).await;
        c.query("SELECT chunk_id, doc_id FROM outage", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    });
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want, "nothing lost, nothing twice");
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with `openssl`, in `dir`:
/// `ca.pem`, `server.pem`, `server.key`.
fn make_certificates(dir: &std::path::Path) {
    let script = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=sluice-test-ca
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf
"#;
    let out = std::process::Command::new("bash")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the TLS front of `tests/python/pg_tls_proxy.py`; killed on drop.
struct TlsProxy {
    child: std::process::Child,
    port: u16,
    sessions: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl TlsProxy {
    fn start(certs: &std::path::Path, pg_port: u16) -> TlsProxy {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .arg(util::repo_root().join("tests/python/pg_tls_proxy.py"))
            .arg(certs.join("server.pem"))
            .arg(certs.join("server.key"))
            .arg(pg_port.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines.next().unwrap().unwrap().trim().parse().unwrap();
        let sessions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = sessions.clone();
        std::thread::spawn(move || {
            for _ in lines.map_while(|l| l.ok()) {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        TlsProxy {
            child,
            port,
            sessions,
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pgvector_with_tls_require_verifies_the_server_and_never_falls_back_to_plain_text() {
    let pg_url = util::services().pg;
    let pg_port: u16 = pg_url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let proxy = TlsProxy::start(certs.path(), pg_port);
    let table = util::unique("tls");
    let tls_url = format!("postgresql://postgres@127.0.0.1:{}/postgres", proxy.port);
    let ws = Workspace::new();
    corpus(&ws);
    std::fs::copy(certs.path().join("ca.pem"), ws.path("ca.pem")).unwrap();
    let sink = |url: &str, tls: &str| {
        format!("  - {{name: vectors, type: pgvector, url: \"{url}\", table: {table}, {tls}}}")
    };

    // The CA file makes the test CA trusted: the run goes through the TLS front.
    ws.write(
        "p.yaml",
        pipeline(&sink(&tls_url, "tls: require, ca_file: ca.pem")),
    );
    ws.ok(&["run", "p.yaml"]);
    assert!(proxy.sessions.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    let want = expected(&ws);
    let got: BTreeMap<String, String> = runtime().block_on(async {
        pg(&pg_url)
            .await
            .query(&format!("SELECT chunk_id, doc_id FROM {table}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    });
    assert_eq!(got, want);

    // Without it the certificate is not trusted, and the run says so.
    ws.write(
        "p2.yaml",
        pipeline(&sink(&tls_url, "tls: require, max_outage: 1s")),
    );
    let out = ws.sluice(&["run", "p2.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("certificate") || stderr.contains("Certificate"),
        "{stderr}"
    );

    // Straight to the server, which has no TLS: refused, never plain text.
    ws.write(
        "p3.yaml",
        pipeline(&sink(&pg_url, "tls: require, max_outage: 1s")),
    );
    let out = ws.sluice(&["run", "p3.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "tls: require went through without TLS");
    assert!(
        stderr.contains("TLS") || stderr.contains("SSL") || stderr.contains("tls"),
        "{stderr}"
    );

    // A ca_file that is not a certificate is a config error, found before any run.
    ws.write("bad.pem", "not a certificate");
    ws.write(
        "p4.yaml",
        pipeline(&sink(&tls_url, "tls: require, ca_file: bad.pem")),
    );
    let out = ws.sluice(&["validate", "p4.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("ca_file") && stderr.contains("bad.pem"),
        "{stderr}"
    );
}

/// The index names on `table`.
fn pg_indexes(url: &str, table: &str) -> Vec<String> {
    runtime().block_on(async {
        pg(url)
            .await
            .query("SELECT indexname FROM pg_indexes WHERE tablename = $1", &[&table])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    })
}

#[test]
fn pgvector_with_index_none_loads_without_hnsw_and_index_rebuild_builds_it() {
    let pg_url = util::services().pg;
    let table = util::unique("noindex");
    let ws = Workspace::new();
    corpus(&ws);
    let sink = format!(
        "  - {{name: vectors, type: pgvector, url: \"{pg_url}\", table: {table}, index: {{type: none, metric: l2}}}}"
    );
    ws.write("p.yaml", pipeline(&sink));
    ws.ok(&["run", "p.yaml"]);
    let hnsw = format!("{table}_hnsw");
    assert!(!pg_indexes(&pg_url, &table).contains(&hnsw));

    let out = ws.ok(&["index", "rebuild", "--pipeline", "p.yaml"]);
    assert!(out.contains("HNSW") && out.contains("L2"), "{out}");
    assert!(pg_indexes(&pg_url, &table).contains(&hnsw));
    let def: String = runtime().block_on(async {
        pg(&pg_url)
            .await
            .query_one("SELECT indexdef FROM pg_indexes WHERE indexname = $1", &[&hnsw])
            .await
            .unwrap()
            .get(0)
    });
    assert!(def.contains("hnsw") && def.contains("vector_l2_ops"), "{def}");
    // Rebuilding again replaces it.
    ws.ok(&["index", "rebuild", "--pipeline", "p.yaml"]);
    assert_eq!(
        pg_indexes(&pg_url, &table).iter().filter(|i| **i == hnsw).count(),
        1
    );
}
