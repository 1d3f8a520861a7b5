//! The SDK's checkpoint-contract check (`testkit::check_replay_and_rollback`) run
//! against every vector and feature-store sink, counted through each one's own
//! storage: a reopen drops uncheckpointed epochs, and a replay writes nothing twice.

mod util;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use sluice_connector_sdk::testkit::check_replay_and_rollback;
use sluice_connector_sdk::{Sink, SinkConfig, SinkContext};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("chunk_id", DataType::Utf8, true),
        Field::new("doc_id", DataType::Utf8, true),
        Field::new("op", DataType::Utf8, true),
        Field::new(
            "modified_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("embedding", sluice::stages::embed::embedding_type(3), true),
    ]))
}

/// Rows `from..to`, two chunks per document.
fn rows(from: usize, to: usize) -> RecordBatch {
    let n = to - from;
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from_iter_values((from..to).map(|i| format!("c{i}")))) as ArrayRef,
            Arc::new(StringArray::from_iter_values(
                (from..to).map(|i| format!("d{}", i / 2)),
            )),
            Arc::new(StringArray::from_iter_values((from..to).map(|_| "upsert"))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (from..to).map(|i| 1_700_000_000_000_000 + i as i64),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(
                FixedSizeListArray::try_new(
                    Arc::new(Field::new_list_field(DataType::Float32, true)),
                    3,
                    Arc::new(Float32Array::from_iter_values((0..n * 3).map(|v| v as f32))),
                    None,
                )
                .unwrap(),
            ),
        ],
    )
    .unwrap()
}

fn ctx(dir: &std::path::Path) -> SinkContext {
    SinkContext {
        pipeline: "contract".into(),
        name: "sink".into(),
        base_dir: dir.to_path_buf(),
        state_dir: dir.join(".sluice"),
        shared: false,
        backfill: false,
    }
}

fn check<C, F, Fut>(config: C, input: SchemaRef, one: RecordBatch, two: RecordBatch, count: F)
where
    C: SinkConfig + Clone + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = sluice_connector_sdk::Result<usize>>,
{
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(check_replay_and_rollback(
        || {
            let sink: sluice_connector_sdk::Result<Box<dyn Sink>> =
                config.build(&ctx(dir.path()), input.clone());
            async move { sink }
        },
        count,
        one,
        two,
    ))
    .unwrap();
}

#[test]
fn lancedb_keeps_the_checkpoint_contract() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("lance").to_string_lossy().into_owned();
    let config: sluice_lancedb::LanceDbSinkConfig =
        serde_json::from_value(serde_json::json!({"uri": uri, "table": "t"})).unwrap();
    check(config, schema(), rows(0, 6), rows(6, 10), || {
        let uri = uri.clone();
        async move {
            let db = lancedb::connect(&uri).execute().await.unwrap();
            Ok(db
                .open_table("t")
                .execute()
                .await
                .unwrap()
                .count_rows(None)
                .await
                .unwrap())
        }
    });
}

#[test]
fn pgvector_keeps_the_checkpoint_contract() {
    let url = util::services().pg;
    let table = util::unique("contract");
    let config: sluice_pgvector::PgVectorSinkConfig =
        serde_json::from_value(serde_json::json!({"url": url, "table": table})).unwrap();
    check(config, schema(), rows(0, 6), rows(6, 10), || {
        let (url, table) = (url.clone(), table.clone());
        async move {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let n: i64 = c
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .unwrap()
                .get(0);
            Ok(n as usize)
        }
    });
}

#[test]
fn the_feature_store_keeps_the_checkpoint_contract() {
    let dir = tempfile::tempdir().unwrap();
    let offline = dir.path().join("features");
    let config: sluice_feature_store::FeatureStoreSinkConfig = serde_json::from_value(serde_json::json!({
        "entity": ["chunk_id"], "event_timestamp": "modified_at", "offline": offline.to_string_lossy(),
    }))
    .unwrap();
    let input = Arc::new(Schema::new(
        schema().fields()[..4]
            .iter()
            .map(|f| f.as_ref().clone())
            .collect::<Vec<_>>(),
    ));
    let cut = |b: RecordBatch| b.project(&[0, 1, 2, 3]).unwrap();
    check(config, input, cut(rows(0, 6)), cut(rows(6, 10)), || {
        let offline = offline.clone();
        async move {
            let mut n = 0;
            for part in std::fs::read_dir(&offline).into_iter().flatten().flatten() {
                for f in std::fs::read_dir(part.path()).unwrap().flatten() {
                    if f.path().extension().is_some_and(|e| e == "parquet") {
                        let file = std::fs::File::open(f.path()).unwrap();
                        let meta = parquet::file::reader::FileReader::metadata(
                            &parquet::file::reader::SerializedFileReader::new(file).unwrap(),
                        )
                        .file_metadata()
                        .num_rows();
                        n += meta as usize;
                    }
                }
            }
            Ok(n)
        }
    });
}
