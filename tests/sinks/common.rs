//! What every sink test shares: the pipeline, the corpus, the edit, the expected rows.

use std::collections::BTreeMap;

use crate::util::{self, Workspace};

pub fn model() -> String {
    util::repo_root()
        .join("models/all-minilm-l6-v2")
        .to_string_lossy()
        .into_owned()
}

/// files → parse → chunk → embed → {parquet `out` (the reference), `sink`}.
pub fn pipeline(sink: &str) -> String {
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

/// A pipeline named `name` in `pipelines/`, over `../data`, that keeps each
/// short document one chunk (up to `max_tokens`), into `sinks` (YAML list items).
pub fn search_pipeline(name: &str, max_tokens: u32, sinks: &str) -> String {
    format!(
        r#"name: {name}
checkpoint:
  interval: 1s
source:
  type: files
  path: ../data
stages:
  - name: parse
    type: parse
  - name: chunks
    type: chunk
    max_tokens: {max_tokens}
    strategy: markdown
  - name: embed
    type: embed
    model: {model}
sinks:
{sinks}
"#,
        model = model()
    )
}

/// Short notes on unrelated subjects, one chunk each; one carries a rare code.
pub const NOTES: &[(&str, &str)] = &[
    ("cats.md", "Cats are small domesticated animals. They purr, hunt mice and sleep for most of the day on warm windowsills."),
    ("dogs.md", "Dogs are loyal companions. They fetch sticks, guard the house and need a long walk every morning."),
    ("bread.md", "To bake bread, knead flour, water, yeast and salt, let the dough rise for an hour, then bake it in a hot oven."),
    ("bonds.md", "A bond pays interest on a schedule. When central banks raise rates, the price of existing bonds falls."),
    ("firmware.md", "Firmware build qzx4471 shipped to the routers on Tuesday after the signing keys were rotated."),
];

/// [`NOTES`] and `more` into `data/`.
pub fn notes(ws: &Workspace, more: &[(&str, &str)]) {
    for (name, text) in NOTES.iter().chain(more) {
        ws.write(&format!("data/{name}"), format!("# Note\n\n{text}\n"));
    }
}

pub fn corpus(ws: &Workspace) {
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
pub fn edit(ws: &Workspace) {
    ws.write(
        "data/doc1.md",
        "# Document 1\n\nOnly one paragraph is left, and it is new.\n",
    );
    std::fs::remove_file(ws.path("data/doc3.md")).unwrap();
}

/// chunk_id → doc_id of the current Parquet state: what every sink must hold.
pub fn expected(ws: &Workspace) -> BTreeMap<String, String> {
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

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// `vector_search(vectors, <the text of the chunk about subject 21>, 3)`
/// through `sluice sql`, with the chunk_id the search should put first.
pub fn search_own_text(ws: &Workspace) -> (Vec<serde_json::Value>, serde_json::Value) {
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
    (hits, text[0]["chunk_id"].clone())
}

/// The `columns` of every row of the LanceDB table `chunks` at `uri`, read
/// with the `lance` crate.
pub fn lance_select(
    rt: &tokio::runtime::Runtime,
    uri: &str,
    options: &[(String, String)],
    columns: &[&str],
) -> Vec<arrow::record_batch::RecordBatch> {
    lance_select_from(rt, uri, options, "chunks", columns)
}

/// The `columns` of every row of LanceDB table `table` at `uri`.
pub fn lance_select_from(
    rt: &tokio::runtime::Runtime,
    uri: &str,
    options: &[(String, String)],
    table: &str,
    columns: &[&str],
) -> Vec<arrow::record_batch::RecordBatch> {
    rt.block_on(crate::util::lance_select(uri, options, table, columns))
}
