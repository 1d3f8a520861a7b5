//! The vector and feature-store sinks against real servers (PostgreSQL + pgvector,
//! Redis, LanceDB embedded), read back through each sink's own client.

mod util;

use std::collections::{BTreeMap, BTreeSet};

use util::Workspace;

fn model() -> String {
    util::repo_root()
        .join("models/all-minilm-l6-v2")
        .to_string_lossy()
        .into_owned()
}

/// files → parse → chunk → embed → {parquet `out` (the reference), `sink`}.
fn pipeline(sink: &str) -> String {
    format!(
        r#"name: sinks
checkpoint:
  interval: 1s
source:
  type: files
  path: ./data
stages:
  - name: parse
    type: parse
  - name: chunks
    type: chunk
    max_tokens: 48
    overlap_tokens: 0
    strategy: markdown
  - name: embed
    type: embed
    model: {model}
sinks:
  - name: out
    type: parquet
    path: ./out
{sink}
"#,
        model = model()
    )
}

fn corpus(ws: &Workspace) {
    for d in 0..4 {
        let mut text = format!("# Document {d}\n\n");
        for p in 0..4 {
            text.push_str(&format!(
                "Paragraph {p} of document {d} is about subject {} and has enough words to be its own chunk.\n\n",
                d * 10 + p
            ));
        }
        ws.write(&format!("data/doc{d}.md"), text);
    }
}

/// Change doc1 to fewer, different paragraphs and delete doc3.
fn edit(ws: &Workspace) {
    ws.write(
        "data/doc1.md",
        "# Document 1\n\nOnly one paragraph is left, and it is new.\n",
    );
    std::fs::remove_file(ws.path("data/doc3.md")).unwrap();
}

/// chunk_id → doc_id of the current Parquet state: what every sink must hold.
fn expected(ws: &Workspace) -> BTreeMap<String, String> {
    ws.query(
        "p.yaml",
        "SELECT chunk_id, doc_id FROM out WHERE chunk_id IS NOT NULL",
    )
    .into_iter()
    .map(|r| {
        (
            r["chunk_id"].as_str().unwrap().to_string(),
            r["doc_id"].as_str().unwrap().to_string(),
        )
    })
    .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

#[test]
fn pgvector_holds_exactly_the_current_chunks_with_their_vectors() {
    let (pg_url, _) = util::services();
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

    // A changed document keeps no chunk of its old version; a deleted one is gone.
    edit(&ws);
    ws.ok(&["run", "p.yaml"]);
    let after = expected(&ws);
    assert!(!after.values().any(|d| d.ends_with("doc3.md")));
    assert!(after.values().any(|d| d.ends_with("doc1.md")));
    assert_eq!(read(&rt), after);

    // A replay after a lost checkpoint writes nothing twice.
    std::fs::remove_file(ws.path(".sluice/checkpoint.json")).unwrap();
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(read(&rt), after);
}

#[test]
fn pgvector_refuses_a_table_of_another_dimension() {
    let (pg_url, _) = util::services();
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
fn lancedb_holds_exactly_the_current_chunks_and_answers_vector_search() {
    let ws = Workspace::new();
    corpus(&ws);
    let sink = "  - {name: vectors, type: lancedb, uri: ./lance, table: chunks, dimension: 384, index: {type: ivf_pq, metric: cosine, after_rows: 1000000}}";
    ws.write("p.yaml", pipeline(sink));
    ws.ok(&["run", "p.yaml"]);
    let uri = ws.path("lance").to_string_lossy().into_owned();
    let rt = runtime();
    let read = |rt: &tokio::runtime::Runtime| -> BTreeSet<String> {
        rt.block_on(async {
            use futures::TryStreamExt;
            use lancedb::query::{ExecutableQuery, QueryBase};
            let db = lancedb::connect(&uri).execute().await.unwrap();
            let t = db.open_table("chunks").execute().await.unwrap();
            let batches: Vec<arrow::record_batch::RecordBatch> = t
                .query()
                .select(lancedb::query::Select::columns(&["chunk_id"]))
                .execute()
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            use arrow::array::AsArray;
            batches
                .iter()
                .flat_map(|b| {
                    b.column(0)
                        .as_string::<i32>()
                        .iter()
                        .map(|s| s.unwrap().to_string())
                        .collect::<Vec<_>>()
                })
                .collect()
        })
    };
    let want: BTreeSet<String> = expected(&ws).into_keys().collect();
    assert_eq!(read(&rt), want);

    let r = &ws.query(
        "p.yaml",
        "SELECT chunk_id, embedding FROM out ORDER BY chunk_id LIMIT 1",
    )[0];
    let v: Vec<f32> = r["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let nearest = rt.block_on(async {
        use futures::TryStreamExt;
        use lancedb::query::{ExecutableQuery, QueryBase};
        let db = lancedb::connect(&uri).execute().await.unwrap();
        let t = db.open_table("chunks").execute().await.unwrap();
        let hits: Vec<arrow::record_batch::RecordBatch> = t
            .vector_search(v)
            .unwrap()
            .distance_type(lancedb::DistanceType::Cosine)
            .limit(1)
            .execute()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        use arrow::array::AsArray;
        hits[0]
            .column_by_name("chunk_id")
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .to_string()
    });
    assert_eq!(nearest, r["chunk_id"].as_str().unwrap());

    // The Python `lancedb` package reads the same table: count, ids and top hit.
    let mut py = std::process::Command::new("python3")
        .arg(util::repo_root().join("tests/python/lancedb_read.py"))
        .args([uri.as_str(), "chunks"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        py.stdin
            .take()
            .unwrap()
            .write_all(r["embedding"].to_string().as_bytes())
            .unwrap();
    }
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "lancedb (Python): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["count"], want.len());
    let ids: BTreeSet<String> = got["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, want);
    assert_eq!(got["top"], r["chunk_id"]);
    assert!(got["distance"].as_f64().unwrap() < 1e-4, "{got}");

    // `sluice sql` reads the table by the sink's name, and vector_search embeds a
    // query with the pipeline's own model: a chunk's own text finds that chunk.
    assert_eq!(
        ws.count("p.yaml", "SELECT count(*) AS n FROM vectors"),
        want.len() as u64
    );
    let text = ws.query(
        "p.yaml",
        "SELECT chunk_id, text FROM out WHERE text LIKE '%subject 21%'",
    );
    let hits = ws.query(
        "p.yaml",
        &format!(
            "SELECT chunk_id, _distance FROM vector_search(vectors, '{}', 3) ORDER BY _distance",
            text[0]["text"].as_str().unwrap().replace('\'', "''")
        ),
    );
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["chunk_id"], text[0]["chunk_id"], "{hits:?}");

    edit(&ws);
    ws.ok(&["run", "p.yaml"]);
    let after: BTreeSet<String> = expected(&ws).into_keys().collect();
    assert_eq!(read(&rt), after);
    std::fs::remove_file(ws.path(".sluice/checkpoint.json")).unwrap();
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(read(&rt), after, "a replay writes nothing twice");
}

#[test]
fn lancedb_builds_its_index_once_the_table_is_big_enough() {
    let ws = Workspace::new();
    corpus(&ws);
    let sink = "  - {name: vectors, type: lancedb, uri: ./lance, table: chunks, index: {type: hnsw, metric: cosine, after_rows: 10}}";
    ws.write("p.yaml", pipeline(sink));
    ws.ok(&["run", "p.yaml"]);
    let uri = ws.path("lance").to_string_lossy().into_owned();
    let indexed = runtime().block_on(async {
        let db = lancedb::connect(&uri).execute().await.unwrap();
        let t = db.open_table("chunks").execute().await.unwrap();
        t.list_indices()
            .await
            .unwrap()
            .iter()
            .any(|i| i.columns == vec!["embedding".to_string()])
    });
    assert!(indexed);
}

fn redis_hash(url: &str, key: &str) -> BTreeMap<String, String> {
    runtime().block_on(async {
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap()
    })
}

/// Every offline row as (doc_id, chunk_count, event date folder).
fn offline_rows(dir: &std::path::Path) -> Vec<(String, i64, String)> {
    use arrow::array::AsArray;
    let mut rows = Vec::new();
    for part in std::fs::read_dir(dir).unwrap().flatten() {
        let date = part.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(part.path()).unwrap().flatten() {
            let file = std::fs::File::open(f.path()).unwrap();
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            for b in reader {
                let b = b.unwrap();
                let docs = b.column_by_name("doc_id").unwrap().as_string::<i32>();
                let counts = b
                    .column_by_name("chunk_count")
                    .unwrap()
                    .as_primitive::<arrow::datatypes::Int64Type>();
                assert!(
                    b.column_by_name("event_timestamp").is_some()
                        && b.column_by_name("created_timestamp").is_some()
                );
                for r in 0..b.num_rows() {
                    rows.push((docs.value(r).to_string(), counts.value(r), date.clone()));
                }
            }
        }
    }
    rows.sort();
    rows
}

#[test]
fn feature_store_writes_feast_parquet_and_redis_never_goes_back_in_time() {
    let (_, redis_url) = util::services();
    let prefix = util::unique("docs");
    let ws = Workspace::new();
    corpus(&ws);
    let sink = format!(
        r#"  - name: doc_features
    type: feature_store
    query: >
      SELECT doc_id, op, count(*) AS chunk_count, sum(token_count) AS token_count,
             max(parse_ms) AS parse_ms, max(modified_at) AS event_timestamp
      FROM input GROUP BY doc_id, op
    entity: [doc_id]
    offline: ./features
    online: {{url: "{redis_url}", prefix: "{prefix}"}}
    feast: {{repo: ./feast, project: sinks_test}}"#
    );
    ws.write("p.yaml", pipeline(&sink));
    ws.ok(&["run", "p.yaml"]);

    let per_doc: BTreeMap<String, i64> = ws
        .query("p.yaml", "SELECT doc_id, count(*) AS n FROM out GROUP BY doc_id")
        .into_iter()
        .map(|r| {
            (
                r["doc_id"].as_str().unwrap().to_string(),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    let today = chrono::Utc::now().format("date=%Y-%m-%d").to_string();
    let offline = offline_rows(&ws.path("features"));
    assert_eq!(offline.len(), 4);
    for (doc, count, date) in &offline {
        assert_eq!(Some(count), per_doc.get(doc));
        assert_eq!(date, &today);
    }
    assert_eq!(
        ws.count(
            "p.yaml",
            &format!(
                "SELECT count(*) AS n FROM doc_features WHERE date = '{}'",
                &today[5..]
            )
        ),
        4
    );
    let doc0 = offline[0].0.clone();
    let online = redis_hash(&redis_url, &format!("{prefix}:{doc0}"));
    assert_eq!(online["chunk_count"], per_doc[&doc0].to_string());
    assert!(online["parse_ms"].parse::<f64>().unwrap() >= 0.0);

    // An older event for doc0 (its file dated 2001) reaches the offline history
    // but does not overwrite the newer online values.
    let path = ws.path("data/doc0.md");
    std::fs::write(&path, "# Document 0\n\nShorter now.\n").unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::remove_file(ws.path("data/doc3.md")).unwrap();
    ws.ok(&["run", "p.yaml"]);
    let offline = offline_rows(&ws.path("features"));
    assert!(
        offline
            .iter()
            .any(|(d, _, date)| d == &doc0 && date == "date=2001-09-09"),
        "{offline:?}"
    );
    assert_eq!(
        redis_hash(&redis_url, &format!("{prefix}:{doc0}"))["chunk_count"],
        per_doc[&doc0].to_string()
    );
    let doc3 = per_doc.keys().find(|d| d.ends_with("doc3.md")).unwrap();
    assert!(
        redis_hash(&redis_url, &format!("{prefix}:{doc3}")).is_empty(),
        "a deleted document leaves Redis"
    );

    let py = std::fs::read_to_string(ws.path("feast/features.py")).unwrap();
    assert!(
        py.contains("FeatureView(") && py.contains("Field(name=\"chunk_count\", dtype=Int64)"),
        "{py}"
    );
    assert!(ws.path("feast/feature_store.yaml").exists());

    // Feast itself reads the offline store: a point-in-time join as of now gives
    // each remaining document's newest features (doc0's newest event is the first run's).
    let docs: Vec<&String> = per_doc.keys().filter(|d| !d.ends_with("doc3.md")).collect();
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(util::repo_root().join("tests/python/feast_read.py"))
        .arg(ws.path("feast"))
        .arg("doc_features")
        .args(&docs);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "feast: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: BTreeMap<String, i64> =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    for d in docs {
        assert_eq!(got[d], per_doc[d], "{d}");
    }
}

/// `scripts/services.sh CMD` on a private PostgreSQL and Redis under `dir`.
fn private_services(dir: &std::path::Path, port: u16, cmd: &str) -> String {
    let out = std::process::Command::new("bash")
        .arg(util::repo_root().join("scripts/services.sh"))
        .arg(cmd)
        .env("SLUICE_SERVICES_DIR", dir)
        .env("SLUICE_PG_PORT", port.to_string())
        .env("SLUICE_REDIS_PORT", (port + 1).to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "services.sh {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two consecutive free ports (PostgreSQL, then Redis), as the OS hands them out.
fn free_port_pair() -> u16 {
    loop {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// Stops the private services when the test ends, passed or failed.
struct StopServices(std::path::PathBuf, u16);

impl Drop for StopServices {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(util::repo_root().join("scripts/services.sh"))
            .arg("down")
            .env("SLUICE_SERVICES_DIR", &self.0)
            .env("SLUICE_PG_PORT", self.1.to_string())
            .env("SLUICE_REDIS_PORT", (self.1 + 1).to_string())
            .status();
    }
}

#[test]
fn pgvector_waits_out_a_database_outage_and_loses_nothing() {
    let dir = std::path::PathBuf::from(format!("/tmp/{}", util::unique("outage")));
    let port = free_port_pair();
    let _stop = StopServices(dir.clone(), port);
    let env = private_services(&dir, port, "up");
    let url = env
        .lines()
        .find_map(|l| l.strip_prefix("SLUICE_TEST_PG_URL="))
        .unwrap()
        .to_string();

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
    private_services(&dir, port, "pg-stop");
    std::thread::sleep(std::time::Duration::from_secs(3));
    private_services(&dir, port, "pg-start");

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

#[test]
fn sluice_index_rebuild_builds_the_lancedb_index_on_request() {
    let ws = Workspace::new();
    corpus(&ws);
    let sink = "  - {name: vectors, type: lancedb, uri: ./lance, table: chunks, index: {type: hnsw, metric: cosine, after_rows: 1000000}}";
    ws.write("p.yaml", pipeline(sink));
    ws.ok(&["run", "p.yaml"]);
    let uri = ws.path("lance").to_string_lossy().into_owned();
    let indexed = |uri: &str| {
        runtime().block_on(async {
            let db = lancedb::connect(uri).execute().await.unwrap();
            let t = db.open_table("chunks").execute().await.unwrap();
            t.list_indices()
                .await
                .unwrap()
                .iter()
                .any(|i| i.columns == vec!["embedding".to_string()])
        })
    };
    assert!(!indexed(&uri), "below after_rows: no index yet");
    let out = ws.ok(&["index", "rebuild", "--pipeline", "p.yaml"]);
    assert!(
        out.starts_with("vectors: built a Hnsw index (Cosine) on `embedding`"),
        "{out}"
    );
    assert!(indexed(&uri));
    // Again: the index is replaced, not refused.
    ws.ok(&["index", "rebuild", "--pipeline", "p.yaml", "--sink", "vectors"]);
    let out = ws.sluice(&["index", "rebuild", "--pipeline", "p.yaml", "--sink", "out"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no sink named `out`"));
}
