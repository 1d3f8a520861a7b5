//! LanceDB, local and on S3: read back from Rust, Python and `sluice sql`; the index.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use crate::util::{self, Workspace};

type Options = Vec<(String, String)>;

async fn lance_table(uri: &str, options: &Options) -> lancedb::Table {
    let db = lancedb::connect(uri)
        .storage_options(options.iter().cloned())
        .execute()
        .await
        .unwrap();
    db.open_table("chunks").execute().await.unwrap()
}

/// The chunk ids in the LanceDB table, read with the `lancedb` crate.
fn lance_ids(rt: &tokio::runtime::Runtime, uri: &str, options: &Options) -> BTreeSet<String> {
    use arrow::array::AsArray;
    lance_select(rt, uri, options, &["chunk_id"])
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The Python `lancedb` package's view: count, sorted ids, top hit of `vector`.
fn python_lancedb(uri: &str, options: &Options, vector: &serde_json::Value) -> serde_json::Value {
    let options: BTreeMap<_, _> = options.iter().cloned().collect();
    let mut py = std::process::Command::new("python3")
        .arg(util::repo_root().join("tests/python/lancedb_read.py"))
        .args([uri, "chunks", &serde_json::to_string(&options).unwrap()])
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
            .write_all(vector.to_string().as_bytes())
            .unwrap();
    }
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "lancedb (Python): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Run the pipeline into the LanceDB sink `vectors` (table `chunks` at `uri`), then
/// read it back from Rust, Python and `sluice sql`; edit, re-run, and replay.
fn lancedb_round_trip(ws: &Workspace, sink: &str, uri: &str, options: &Options) {
    corpus(ws);
    ws.write("p.yaml", pipeline(sink));
    ws.ok(&["run", "p.yaml"]);
    let rt = runtime();
    let want: BTreeSet<String> = expected(ws).into_keys().collect();
    assert_eq!(lance_ids(&rt, uri, options), want);

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
        use arrow::array::AsArray;
        use futures::TryStreamExt;
        use lancedb::query::{ExecutableQuery, QueryBase};
        let hits: Vec<arrow::record_batch::RecordBatch> = lance_table(uri, options)
            .await
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
        hits[0]
            .column_by_name("chunk_id")
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .to_string()
    });
    assert_eq!(nearest, r["chunk_id"].as_str().unwrap());

    // The Python `lancedb` package reads the same table: count, ids and top hit.
    let got = python_lancedb(uri, options, &r["embedding"]);
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
    let (hits, own) = search_own_text(ws);
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["chunk_id"], own, "{hits:?}");

    edit(ws);
    ws.ok(&["run", "p.yaml"]);
    let after: BTreeSet<String> = expected(ws).into_keys().collect();
    assert_eq!(lance_ids(&rt, uri, options), after);
    std::fs::remove_file(ws.path(".sluice/sinks/checkpoint.json")).unwrap();
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(
        lance_ids(&rt, uri, options),
        after,
        "a replay writes nothing twice"
    );
}

#[test]
fn lancedb_holds_exactly_the_current_chunks_and_answers_vector_search() {
    let ws = Workspace::new();
    let sink = "  - {name: vectors, type: lancedb, uri: ./lance, table: chunks, dimension: 384, index: {type: ivf_pq, metric: cosine, after_rows: 1000000}}";
    let uri = ws.path("lance").to_string_lossy().into_owned();
    lancedb_round_trip(&ws, sink, &uri, &Vec::new());
}

#[test]
fn lancedb_on_s3_holds_exactly_the_current_chunks() {
    let endpoint = util::services().s3;
    let bucket = util::unique("lance").replace('_', "-");
    util::create_bucket(&endpoint, &bucket);
    let options = util::s3_options(&endpoint);
    let uri = format!("s3://{bucket}/db");
    let sink = format!("  - {}", util::lance_sink_yaml(&uri, &options));
    let ws = Workspace::new();
    lancedb_round_trip(&ws, &sink, &uri, &options);
    // Nothing was written locally: the table lives in the bucket.
    assert!(!ws.path("s3:").exists());
}

/// The corpus run into a local LanceDB sink with an HNSW index after `after_rows`.
fn run_with_index(after_rows: u64) -> Workspace {
    let ws = Workspace::new();
    corpus(&ws);
    let sink = format!(
        "  - {{name: vectors, type: lancedb, uri: ./lance, table: chunks, index: {{type: hnsw, metric: cosine, after_rows: {after_rows}}}}}"
    );
    ws.write("p.yaml", pipeline(&sink));
    ws.ok(&["run", "p.yaml"]);
    ws
}

#[test]
fn lancedb_builds_its_index_once_the_table_is_big_enough() {
    let ws = run_with_index(10);
    assert!(indexed(&ws.path("lance").to_string_lossy()));
}

/// Does the local table `chunks` at `uri` have an index on `embedding`?
fn indexed(uri: &str) -> bool {
    runtime().block_on(async {
        lance_table(uri, &Vec::new())
            .await
            .list_indices()
            .await
            .unwrap()
            .iter()
            .any(|i| i.columns == vec!["embedding".to_string()])
    })
}

#[test]
fn sluice_index_rebuild_builds_the_lancedb_index_on_request() {
    let ws = run_with_index(1_000_000);
    let uri = ws.path("lance").to_string_lossy().into_owned();
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
