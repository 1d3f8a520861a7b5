//! The pipeline under test, and every sink read back through its own client.

use std::collections::BTreeMap;

use crate::util::{self, Workspace};

/// Where the shared servers keep this test's rows.
pub struct Target {
    pub pg: String,
    pub table: String,
    pub redis: String,
    /// The Feast project the online features are keyed by.
    pub project: String,
    /// The sinks' `max_outage`.
    pub max_outage: &'static str,
}

impl Target {
    /// Rows under `name` on the shared test services.
    pub fn new(name: &str) -> Target {
        Target::on(&util::services(), name)
    }

    /// Rows under `name` on `services`.
    pub fn on(services: &util::Services, name: &str) -> Target {
        Target {
            pg: services.pg.clone(),
            table: util::unique(name),
            redis: services.redis.clone(),
            project: util::unique(name),
            max_outage: "60s",
        }
    }
}

const PARSE_AND_CHUNK: &str = r#"  - {name: parse, type: parse, tap: true}
  - {name: chunks, type: chunk, max_tokens: 48, overlap_tokens: 0, strategy: markdown, tap: true}
"#;

/// files → parse → chunk → embed → Parquet `out`, LanceDB `vectors`, pgvector and a
/// per-document feature store with Redis.
pub fn pipeline(t: &Target) -> String {
    let model = util::repo_root().join("models/all-minilm-l6-v2");
    format!(
        r#"name: exactly_once
checkpoint: {{interval: 100ms}}
channels: {{max_rows: 64}}
source: {{type: files, path: ./data, batch_size: 8}}
stages:
{PARSE_AND_CHUNK}  - {{name: embed, type: embed, model: "{model}"}}
sinks:
  - {{name: out, type: parquet, path: ./out}}
  - {{name: vectors, type: lancedb, uri: ./lance, table: chunks}}
  - {{name: pg, type: pgvector, url: "{pg}", table: {table}, max_outage: {outage}}}
  - name: features
    type: feature_store
    query: SELECT doc_id, op, count(*) AS chunk_count, max(modified_at) AS event_timestamp FROM input GROUP BY doc_id, op
    entity: [doc_id]
    offline: ./features
    online: {{url: "{redis}", max_outage: {outage}}}
    feast: {{repo: ./feast, project: {project}}}
"#,
        outage = t.max_outage,
        model = model.display(),
        pg = t.pg,
        table = t.table,
        redis = t.redis,
        project = t.project,
    )
}

/// (file name, chunk_index, text): a chunk, wherever the corpus lives.
pub type Row = (String, i64, String);

fn file(doc_id: &str) -> String {
    doc_id.rsplit('/').next().unwrap().to_string()
}

/// What every sink must hold for the files in `ws/data`: a parse + chunk run (no
/// embedding, no crash) over a copy of them.
pub fn reference(ws: &Workspace) -> Vec<Row> {
    let reference = Workspace::new();
    for entry in std::fs::read_dir(ws.path("data")).unwrap().flatten() {
        std::fs::create_dir_all(reference.path("data")).unwrap();
        std::fs::copy(entry.path(), reference.path("data").join(entry.file_name())).unwrap();
    }
    reference.write(
        "p.yaml",
        format!(
            "name: reference\nsource: {{type: files, path: ./data}}\nstages:\n{PARSE_AND_CHUNK}sinks:\n  - {{name: out, type: parquet, path: ./out}}\n"
        ),
    );
    reference.ok(&["run", "p.yaml"]);
    parquet_rows(&reference)
}

/// The Parquet sink's current state, through `sluice sql`.
pub fn parquet_rows(ws: &Workspace) -> Vec<Row> {
    let mut rows: Vec<Row> = ws
        .query(
            "p.yaml",
            "SELECT doc_id, chunk_index, text FROM out WHERE chunk_id IS NOT NULL",
        )
        .iter()
        .map(|r| {
            (
                file(r["doc_id"].as_str().unwrap()),
                r["chunk_index"].as_i64().unwrap(),
                r["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The local LanceDB table `./lance`, read with the `lance` crate.
pub fn lance_rows(ws: &Workspace) -> Vec<Row> {
    lance_rows_at(&ws.path("lance").to_string_lossy(), &[])
}

/// The LanceDB table `chunks` at `uri`; every row has a 384-d vector.
pub fn lance_rows_at(uri: &str, options: &[(String, String)]) -> Vec<Row> {
    use arrow::array::{Array, AsArray};
    let columns = ["doc_id", "chunk_index", "text", "embedding"];
    let batches = runtime().block_on(crate::util::lance_select(uri, options, "chunks", &columns));
    let mut rows = Vec::new();
    for b in &batches {
        let docs = b.column(0).as_string::<i32>();
        let idx = b.column(1).as_primitive::<arrow::datatypes::UInt32Type>();
        let text = b.column(2);
        let emb = b.column(3).as_fixed_size_list();
        assert_eq!(emb.value_length(), 384);
        assert_eq!(emb.null_count(), 0, "a chunk without its vector");
        for r in 0..b.num_rows() {
            let text = match text.data_type() {
                arrow::datatypes::DataType::LargeUtf8 => text.as_string::<i64>().value(r).to_string(),
                _ => text.as_string::<i32>().value(r).to_string(),
            };
            rows.push((file(docs.value(r)), idx.value(r) as i64, text));
        }
    }
    rows.sort();
    rows
}

/// The pgvector table, through tokio-postgres.
pub fn pg_rows(t: &Target) -> Vec<Row> {
    let mut rows: Vec<Row> = runtime().block_on(async {
        let (c, conn) = tokio_postgres::connect(&t.pg, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.query(
            &format!(
                "SELECT doc_id, chunk_index, text FROM {} WHERE vector_dims(embedding) = 384",
                t.table
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (file(r.get(0)), r.get(1), r.get(2)))
        .collect()
    });
    rows.sort();
    rows
}

/// The text value of a Feast entity key with one string join key (see
/// `sluice_feature_store::feast_layout`): count, key name, then the value.
fn feast_doc_id(key: &[u8]) -> String {
    let u32_at = |at: usize| u32::from_le_bytes(key[at..at + 4].try_into().unwrap()) as usize;
    let name_len = u32_at(8);
    let value_len = u32_at(12 + name_len + 4);
    let at = 12 + name_len + 8;
    String::from_utf8(key[at..at + value_len].to_vec()).unwrap()
}

/// A serialized `feast.types.Value` holding an int64.
fn feast_int64(value: &[u8]) -> i64 {
    assert_eq!(value.first(), Some(&0x20), "not an int64 value: {value:?}");
    let (mut n, mut shift) = (0u64, 0);
    for b in &value[1..] {
        n |= u64::from(b & 0x7f) << shift;
        shift += 7;
    }
    n as i64
}

/// file name → `chunk_count` of every entity in this target's Feast project,
/// read from Redis in Feast's layout.
pub fn redis_counts(t: &Target) -> BTreeMap<String, i64> {
    let field = sluice_feature_store::feast_layout::feature_field("features", "chunk_count");
    runtime().block_on(async {
        let client = redis::Client::open(t.redis.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
            .arg(format!("*{}", t.project))
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut counts = BTreeMap::new();
        for k in keys.into_iter().filter(|k| !k.starts_with(b"__sluice:undo:")) {
            let n: Vec<u8> = redis::cmd("HGET")
                .arg(&k)
                .arg(&field)
                .query_async(&mut conn)
                .await
                .unwrap();
            counts.insert(file(&feast_doc_id(&k)), feast_int64(&n));
        }
        counts
    })
}

/// Feast's own `get_online_features`: file name → `chunk_count` for every
/// document the corpus ever had (`doc_ids`), null for the deleted ones.
pub fn feast_counts(ws: &Workspace, doc_ids: &[String]) -> BTreeMap<String, serde_json::Value> {
    (util::feast_chunk_counts(&ws.path("feast"), "features", doc_ids).into_iter())
        .map(|(doc, n)| (file(&doc), n))
        .collect()
}

/// Every sink holds exactly `want`: the same rows, none twice, none of an older
/// version; Redis has each document's chunk count and nothing for deleted ones.
pub fn assert_sinks_hold(ws: &Workspace, t: &Target, want: &[Row]) {
    let summary = |rows: &[Row]| format!("{} rows", rows.len());
    for (sink, got) in [
        ("parquet", parquet_rows(ws)),
        ("lancedb", lance_rows(ws)),
        ("pgvector", pg_rows(t)),
    ] {
        if got != want {
            let extra: Vec<&Row> = got.iter().filter(|r| !want.contains(r)).take(5).collect();
            let missing: Vec<&Row> = want.iter().filter(|r| !got.contains(r)).take(5).collect();
            panic!(
                "{sink} holds {} instead of {}; extra (first 5): {extra:?}; missing (first 5): {missing:?}",
                summary(&got),
                summary(want)
            );
        }
    }
    let mut per_doc: BTreeMap<String, i64> = BTreeMap::new();
    for (f, _, _) in want {
        *per_doc.entry(f.clone()).or_default() += 1;
    }
    assert_eq!(redis_counts(t), per_doc, "Redis");
    assert_eq!(
        redis_undo_logs(t),
        Vec::<String>::new(),
        "a finished run leaves no online undo log behind"
    );
}

/// The feature store's undo logs for this target's Feast project.
fn redis_undo_logs(t: &Target) -> Vec<String> {
    runtime().block_on(async {
        let client = redis::Client::open(t.redis.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("KEYS")
            .arg(format!("__sluice:undo:{}:*", t.project))
            .query_async(&mut conn)
            .await
            .unwrap()
    })
}
