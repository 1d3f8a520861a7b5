//! LanceDB, local and on S3: read back with Lance's own reader, with Python's
//! `lancedb` and with `sluice sql`; the index, and the distances it answers.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use crate::util::{self, Workspace};

type Options = Vec<(String, String)>;

/// The chunk ids in the LanceDB table, read with the `lance` crate.
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
    use lance::index::DatasetIndexExt;
    runtime().block_on(async {
        let table = util::lance_open(uri, "chunks", &[]).await;
        let embedding = table.schema().field("embedding").unwrap().id as u32;
        table
            .describe_indices(None)
            .await
            .unwrap()
            .iter()
            .any(|i| i.field_ids() == [embedding])
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

fn vector(v: &serde_json::Value) -> Vec<f32> {
    let v = v.as_array().unwrap().iter();
    v.map(|x| x.as_f64().unwrap() as f32).collect()
}

/// `1 - cos(a, b)`, computed here from the vectors themselves.
fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| *p as f64 * *q as f64).sum::<f64>();
    1.0 - dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt())
}

/// The hits of `vector_search(vectors, <the text of the chunk that holds
/// `marker`>, 5)`: each distance is `1 - cos` of the vectors themselves (within
/// the index's 8-bit quantization).
fn distances_read_as_cosine(ws: &Workspace, marker: &str) {
    let rows = ws.query(
        "p.yaml",
        "SELECT chunk_id, text, embedding FROM out WHERE chunk_id IS NOT NULL",
    );
    let own = rows
        .iter()
        .find(|r| r["text"].as_str().unwrap().contains(marker))
        .unwrap();
    let query = vector(&own["embedding"]);
    let exact: BTreeMap<String, f64> = rows
        .iter()
        .map(|r| {
            let id = r["chunk_id"].as_str().unwrap().to_string();
            (id, cosine_distance(&query, &vector(&r["embedding"])))
        })
        .collect();
    let text = own["text"].as_str().unwrap().replace('\'', "''");
    let sql =
        format!("SELECT chunk_id, _distance FROM vector_search(vectors, '{text}', 5) ORDER BY _distance");
    let hits = ws.query("p.yaml", &sql);
    assert_eq!(hits.len(), 5, "{hits:?}");
    assert_eq!(hits[0]["chunk_id"], own["chunk_id"], "{hits:?}");
    for hit in &hits {
        let id = hit["chunk_id"].as_str().unwrap();
        let got = hit["_distance"].as_f64().unwrap();
        // sluice's query is the chunk's text embedded again, not its stored
        // vector, and the index quantizes: close, not exact.
        assert!(
            (got - exact[id]).abs() < 0.05,
            "{id}: {got} against 1 - cos = {}",
            exact[id]
        );
    }
    // Python's `lancedb` opens the index sluice built and finds the chunk by
    // its stored vector. (Its distances are not compared: lancedb 0.40, the
    // pinned Python package, still reads twice the cosine distance from a
    // quantized index; the Rust crate halves it since 0.41, as sluice does.)
    let uri = ws.path("lance").to_string_lossy().into_owned();
    let python = python_lancedb(&uri, &Vec::new(), &own["embedding"]);
    assert_eq!(python["top"], own["chunk_id"], "{python}");
}

/// Regression (the `lancedb` crate did this for sluice, `lance` alone does
/// not): a cosine search answered from a quantized index read the squared L2
/// of the normalized vectors, twice the cosine distance. Every distance must
/// read `1 - cos` (as pgvector's `<=>` does), with every row in the index and
/// with new rows outside it.
#[test]
fn lancedb_cosine_distances_read_the_same_indexed_or_not() {
    let ws = run_with_index(1_000_000);
    ws.ok(&["index", "rebuild", "--pipeline", "p.yaml"]);
    distances_read_as_cosine(&ws, "subject 21 and");
    // A new document after the index: its rows are outside it.
    ws.write(
        "data/doc9.md",
        "# Document 9\n\nParagraph 0 of document 9 is about subject 21 and was written after the index.\n",
    );
    ws.ok(&["run", "p.yaml"]);
    distances_read_as_cosine(&ws, "written after the index");
}
