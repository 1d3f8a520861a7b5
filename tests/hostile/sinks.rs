//! A store that refuses one document's content (a NUL byte PostgreSQL text
//! cannot hold, a NaN no vector store should, a feature row with no event
//! time) dead-letters that document for that sink; every other document is
//! written, and the run exits 0. Read back through each store's own client.

use std::collections::BTreeSet;

use crate::util::{self, unique, Workspace};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The file names (last path part) of doc_ids.
fn names<'a>(ids: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    ids.into_iter()
        .map(|d| d.rsplit('/').next().unwrap().to_string())
        .collect()
}

/// The file names of the documents in a PostgreSQL table, read with
/// tokio-postgres.
fn pg_files(url: &str, table: &str) -> BTreeSet<String> {
    let ids: Vec<String> = runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let rows = client
            .query(&format!("SELECT DISTINCT doc_id FROM {table}"), &[])
            .await
            .unwrap();
        rows.iter().map(|r| r.get::<_, String>(0)).collect()
    });
    names(ids.iter().map(String::as_str))
}

#[test]
fn documents_a_sink_refuses_are_dead_letters_for_that_sink_and_the_rest_is_written() {
    let svc = util::services();
    let table = unique("refused");
    let ws = Workspace::new();
    ws.write("data/good1.txt", "A good document.");
    ws.write("data/good2.txt", "Another good document.");
    ws.write(
        "data/nul.txt",
        "A NUL \u{0} byte, which PostgreSQL text cannot hold.",
    );
    ws.write("data/nan.txt", "poison-nan: this one's vector holds a NaN.");
    ws.write("data/notime.txt", "poison-time: this one has no event time.");
    ws.write(
        "p.yaml",
        format!(
            r#"name: refusals
source: {{type: files, path: ./data}}
stages:
  - {{name: parse, type: parse}}
  - {{name: chunks, type: chunk, max_tokens: 64, overlap_tokens: 0}}
  - name: vectors
    type: sql
    query: >-
      SELECT *, arrow_cast(make_array(1.0, 2.0,
        CASE WHEN text LIKE '%poison-nan%' THEN CAST('NaN' AS DOUBLE) ELSE 3.0 END),
        'FixedSizeList(3, Float32)') AS embedding FROM input
sinks:
  - {{name: pg, type: pgvector, url: "{pg}", table: {table}}}
  - {{name: lance, type: lancedb, uri: ./lance, table: chunks}}
  - name: features
    type: feature_store
    query: >-
      SELECT doc_id, op, count(*) AS chunk_count,
        CASE WHEN max(text) LIKE '%poison-time%' THEN NULL ELSE max(modified_at) END AS event_timestamp
      FROM input GROUP BY doc_id, op
    entity: [doc_id]
    offline: ./features
"#,
            pg = svc.pg
        ),
    );
    let summary = ws.ok(&["run", "p.yaml"]);
    assert!(summary.contains("5 documents"), "{summary}");
    assert!(summary.contains("4 dead letters"), "{summary}");

    let letters = ws.query(
        "p.yaml",
        "SELECT doc_id, stage, error FROM dead_letters ORDER BY stage, doc_id",
    );
    let by_stage = |stage: &str| -> BTreeSet<String> {
        names(
            letters
                .iter()
                .filter(|l| l["stage"] == stage)
                .map(|l| l["doc_id"].as_str().unwrap()),
        )
    };
    assert_eq!(by_stage("sink:pg"), names(["nul.txt", "nan.txt"]), "{letters:?}");
    assert_eq!(by_stage("sink:lance"), names(["nan.txt"]), "{letters:?}");
    assert_eq!(by_stage("sink:features"), names(["notime.txt"]), "{letters:?}");
    let reason = |stage: &str, doc: &str| {
        letters
            .iter()
            .find(|l| l["stage"] == stage && l["doc_id"].as_str().unwrap().ends_with(doc))
            .map(|l| l["error"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(reason("sink:pg", "nul.txt").contains("0x00"), "{letters:?}");
    assert!(reason("sink:lance", "nan.txt").contains("NaN"), "{letters:?}");
    assert!(
        reason("sink:features", "notime.txt").contains("event time"),
        "{letters:?}"
    );

    // PostgreSQL, through its own client: every document but the two refused.
    assert_eq!(
        pg_files(&svc.pg, &table),
        names(["good1.txt", "good2.txt", "notime.txt"])
    );

    // LanceDB, as `sluice sql` reads it (the sink's table, through Lance's
    // own scanner).
    let in_lance = ws.query("p.yaml", "SELECT DISTINCT doc_id FROM lance");
    assert_eq!(
        names(in_lance.iter().map(|r| r["doc_id"].as_str().unwrap())),
        names(["good1.txt", "good2.txt", "nul.txt", "notime.txt"])
    );

    // The feature store's offline Parquet, through sluice sql.
    let features = ws.query("p.yaml", "SELECT DISTINCT doc_id FROM features");
    assert_eq!(
        names(features.iter().map(|r| r["doc_id"].as_str().unwrap())),
        names(["good1.txt", "good2.txt", "nul.txt", "nan.txt"])
    );
}

/// Two pipelines writing one PostgreSQL table, one LanceDB table, one Parquet
/// folder and one feature-store folder: the second one's start-up rollback
/// (rows of epochs after its own checkpoint) leaves the first one's rows
/// alone. It used to delete every row with an epoch above its checkpoint, and
/// the two Parquet logs overwrote each other's `epoch-1.parquet`.
#[test]
fn a_rollback_removes_only_the_rows_its_own_pipeline_wrote() {
    let svc = util::services();
    let table = unique("shared_table");
    let ws = Workspace::new();
    ws.write("a/x.txt", "Alpha's document.");
    ws.write("b/y.txt", "Bravo's document.");
    let pipeline = |name: &str, folder: &str| {
        format!(
            r#"name: {name}
source: {{type: files, path: ./{folder}}}
stages:
  - {{name: parse, type: parse}}
  - {{name: chunks, type: chunk, max_tokens: 32, overlap_tokens: 0}}
  - {{name: v, type: sql, query: "SELECT *, arrow_cast(make_array(1.0, 2.0, 3.0), 'FixedSizeList(3, Float32)') AS embedding FROM input"}}
sinks:
  - {{name: pg, type: pgvector, url: "{pg}", table: {table}}}
  - {{name: lance, type: lancedb, uri: ./lance, table: chunks}}
  - {{name: changes, type: parquet, path: ./changes}}
  - name: features
    type: feature_store
    query: SELECT doc_id, op, count(*) AS chunk_count, max(modified_at) AS event_timestamp FROM input GROUP BY doc_id, op
    entity: [doc_id]
    offline: ./features
"#,
            pg = svc.pg
        )
    };
    ws.write("alpha.yaml", pipeline("alpha", "a"));
    ws.write("bravo.yaml", pipeline("bravo", "b"));
    ws.ok(&["run", "alpha.yaml"]);
    ws.ok(&["run", "bravo.yaml"]);
    let both = names(["x.txt", "y.txt"]);
    assert_eq!(
        pg_files(&svc.pg, &table),
        both,
        "bravo's rollback removed alpha's rows"
    );
    // The folder sinks and LanceDB, read through sluice sql (Lance's own
    // reader, DataFusion over the Parquet files).
    for (query, what) in [
        ("SELECT DISTINCT doc_id FROM lance", "LanceDB"),
        ("SELECT DISTINCT doc_id FROM changes", "the Parquet log"),
        (
            "SELECT DISTINCT doc_id FROM features",
            "the offline feature store",
        ),
    ] {
        let rows = ws.query("alpha.yaml", query);
        let found = names(rows.iter().map(|r| r["doc_id"].as_str().unwrap()));
        assert_eq!(found, both, "{what}: bravo's rollback removed alpha's rows");
    }
    let writers = ws.query(
        "alpha.yaml",
        "SELECT DISTINCT split_part(sluice_writer, '@', 1) AS w FROM lance ORDER BY w",
    );
    assert_eq!(writers.len(), 2, "{writers:?}");
    assert_eq!(
        (&writers[0]["w"], &writers[1]["w"]),
        (&"alpha".into(), &"bravo".into())
    );
}
