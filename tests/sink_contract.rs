//! The SDK's checkpoint-contract check (`testkit::check_replay_and_rollback`) run
//! against every vector and feature-store sink, counted through each one's own
//! storage: a reopen drops uncheckpointed epochs, and a replay writes nothing twice.

use crate::util;

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
        Field::new("embedding", sluice_embed::embedding_type(3), true),
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

/// A context whose pipeline name is `pipeline`: sinks that keep undo logs on a
/// server name them after it, so tests running at once need their own.
fn named_ctx(dir: &std::path::Path, pipeline: &str) -> SinkContext {
    SinkContext {
        pipeline: pipeline.into(),
        name: "sink".into(),
        base_dir: dir.to_path_buf(),
        state_dir: dir.join(".sluice"),
        role: Default::default(),
        dead_letters: Default::default(),
    }
}

fn check<C, F, Fut>(config: C, input: SchemaRef, one: RecordBatch, two: RecordBatch, count: F)
where
    C: SinkConfig + Clone + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = sluice_connector_sdk::Result<usize>>,
{
    check_in(config, "contract", input, one, two, count)
}

fn check_in<C, F, Fut>(
    config: C,
    pipeline: &str,
    input: SchemaRef,
    one: RecordBatch,
    two: RecordBatch,
    count: F,
) where
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
                config.build(&named_ctx(dir.path(), pipeline), input.clone());
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
            Ok(util::lance_open(&uri, "t", &[])
                .await
                .count_rows(None)
                .await
                .unwrap())
        }
    });
}

/// A LanceDB table made before rows said who wrote them (no `sluice_writer`)
/// gains the column when a sink opens it: its old rows still roll back as
/// before, and new rows carry the writer.
#[test]
fn an_older_lancedb_table_gains_the_writer_column() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("lance").to_string_lossy().into_owned();
    let config: sluice_lancedb::LanceDbSinkConfig =
        serde_json::from_value(serde_json::json!({"uri": uri, "table": "t"})).unwrap();
    let ctx = named_ctx(dir.path(), "older_table");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // The table as the sink made it before: the input less `op`, plus
        // `epoch`. Two rows of epoch 1 (checkpointed), two of epoch 2 (not).
        let old = rows(0, 4);
        let keep: Vec<usize> = (0..old.num_columns()).filter(|&i| i != 2).collect();
        let old = old.project(&keep).unwrap();
        let mut fields: Vec<Field> = old.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("epoch", DataType::Int64, false));
        let mut columns = old.columns().to_vec();
        columns.push(Arc::new(arrow::array::Int64Array::from(vec![1, 1, 2, 2])));
        let old = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let path = format!("{uri}/t.lance");
        let old = arrow::record_batch::RecordBatchIterator::new([Ok(old.clone())], old.schema());
        lance::Dataset::write(old, path.as_str(), None).await.unwrap();

        let mut sink = config.build(&ctx, schema()).unwrap();
        sink.open(1).await.unwrap();
        sink.write(3, rows(10, 12)).await.unwrap();
        sink.commit(3).await.unwrap();

        let table = util::lance_open(&uri, "t", &[]).await;
        let count = |filter: String| {
            let table = table.clone();
            async move { table.count_rows(Some(filter)).await.unwrap() }
        };
        assert_eq!(
            count("sluice_writer IS NULL".into()).await,
            2,
            "epoch 1's rows stay"
        );
        assert_eq!(count("epoch = 2".into()).await, 0, "epoch 2 rolled back");
        let ours = format!("sluice_writer = '{}' AND epoch = 3", ctx.writer());
        assert_eq!(count(ours).await, 2, "new rows carry the writer");
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

/// The feature-store input: `chunk_id` (the entity), `doc_id` (the feature),
/// `op`, `modified_at`.
fn feature_input() -> SchemaRef {
    Arc::new(schema().project(&[0, 1, 2, 3]).unwrap())
}

/// Both online layouts: sluice's (`<name>:<key>`) and Feast's (the entity key,
/// then the Feast project `name`).
const LAYOUTS: [&str; 2] = ["sluice", "feast"];

fn online_config(
    dir: &std::path::Path,
    name: &str,
    layout: &str,
) -> sluice_feature_store::FeatureStoreSinkConfig {
    let mut online = serde_json::json!({"url": util::services().redis, "layout": layout, "ttl": "1h"});
    if layout == "sluice" {
        online["prefix"] = name.into();
    }
    serde_json::from_value(serde_json::json!({
        "entity": ["chunk_id"], "event_timestamp": "modified_at",
        "offline": dir.join("features").to_string_lossy(),
        "online": online,
        "feast": {"repo": dir.join("feast").to_string_lossy(), "project": name},
    }))
    .unwrap()
}

/// The pattern of the entities' keys in `layout`.
fn entities(name: &str, layout: &str) -> String {
    match layout {
        "sluice" => format!("{name}:*"),
        _ => format!("*{name}"),
    }
}

/// A key or field, readable whether it is text or Feast's binary.
type Bytes = Vec<u8>;

async fn redis_keys(pattern: &str) -> Vec<Bytes> {
    let client = redis::Client::open(util::services().redis.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<Bytes> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

/// Every hash under `pattern`, field by field.
async fn redis_hashes(pattern: &str) -> std::collections::BTreeMap<Bytes, Vec<(Bytes, Bytes)>> {
    let client = redis::Client::open(util::services().redis.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys = redis_keys(pattern).await;
    let mut out = std::collections::BTreeMap::new();
    for k in keys {
        let mut fields: Vec<(Bytes, Bytes)> = redis::cmd("HGETALL")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .unwrap();
        fields.sort();
        let ttl: i64 = redis::cmd("PTTL").arg(&k).query_async(&mut conn).await.unwrap();
        fields.push((b"(has ttl)".to_vec(), (ttl > 0).to_string().into_bytes()));
        out.insert(k, fields);
    }
    out
}

#[test]
fn the_online_store_keeps_the_checkpoint_contract() {
    for layout in LAYOUTS {
        online_store_keeps_the_checkpoint_contract(layout);
    }
}

fn online_store_keeps_the_checkpoint_contract(layout: &str) {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = util::unique("contract_online");
    let config = online_config(dir.path(), &pipeline, layout);
    let cut = |b: RecordBatch| b.project(&[0, 1, 2, 3]).unwrap();
    let pattern = entities(&pipeline, layout);
    check_in(
        config,
        &pipeline,
        feature_input(),
        cut(rows(0, 6)),
        cut(rows(6, 10)),
        || {
            let pattern = pattern.clone();
            async move { Ok(redis_hashes(&pattern).await.len()) }
        },
    );
}

/// Feature rows: (chunk_id, doc_id, op, event time in µs).
fn feature_rows(rows: &[(&str, &str, &str, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        feature_input(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef,
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.3)).with_timezone("UTC"),
            ),
        ],
    )
    .unwrap()
}

/// In Feast's layout the compare-and-set decodes the stored protobuf
/// Timestamp in Lua. Before 1970 its seconds are ten-byte varints, past what a
/// Lua number holds exactly; an older event must still lose, there and after.
#[test]
fn in_feasts_layout_an_older_event_loses_before_1970_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let name = util::unique("feast_ts");
    let config = online_config(dir.path(), &name, "feast");
    let ctx = named_ctx(dir.path(), &name);
    let field = sluice_feature_store::feast_layout::feature_field("sink", "doc_id");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut sink = config.build(&ctx, feature_input()).unwrap();
        sink.open(0).await.unwrap();
        let client = redis::Client::open(util::services().redis.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        // (event µs, value written, value Redis must then hold)
        let steps = [
            (-1_500_000, "first", "first"),
            (-1_500_001, "older by a microsecond", "first"),
            (-86_400_000_000_000, "older by years", "first"),
            (
                -1_500_000,
                "same time: a replay overwrites",
                "same time: a replay overwrites",
            ),
            (-999_999, "newer", "newer"),
            (1_700_000_000_000_000, "after 1970", "after 1970"),
            (1_699_999_999_999_999, "older after 1970", "after 1970"),
        ];
        for (epoch, (at, value, want)) in (1..).zip(steps) {
            sink.write(epoch, feature_rows(&[("a", value, "upsert", at)]))
                .await
                .unwrap();
            sink.commit(epoch).await.unwrap();
            sink.checkpointed(epoch).await.unwrap();
            let keys = redis_keys(&entities(&name, "feast")).await;
            assert_eq!(keys.len(), 1, "one entity");
            let got: Vec<u8> = redis::cmd("HGET")
                .arg(&keys[0])
                .arg(&field)
                .query_async(&mut conn)
                .await
                .unwrap();
            let want: ArrayRef = Arc::new(StringArray::from(vec![want]));
            let want = sluice_feature_store::feast_layout::value_proto(&want, 0).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "after writing {value:?} at {at}"
            );
        }
        sink.close().await.unwrap();
    });
}

/// Regression: Redis kept the values of epochs committed but never
/// checkpointed, so after a crash a document deleted before the restart stayed
/// online (the kill -9 harness caught it). `open` must put back exactly what
/// the checkpoint saw: changed values, deleted entities and their TTLs, and
/// remove entities that epoch created; its undo logs must go once checkpointed.
#[test]
fn reopening_restores_the_online_values_of_the_checkpointed_epoch() {
    for layout in LAYOUTS {
        reopening_restores_online_values(layout);
    }
}

fn reopening_restores_online_values(layout: &str) {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = util::unique("online_undo");
    let config = online_config(dir.path(), &pipeline, layout);
    let ctx = named_ctx(dir.path(), &pipeline);
    let batch = feature_rows;
    let one = batch(&[
        ("a", "v1", "upsert", 10),
        ("b", "v1", "upsert", 10),
        ("c", "v1", "upsert", 10),
    ]);
    let two = batch(&[
        ("a", "v2", "upsert", 20),
        ("b", "", "delete", 20),
        ("new", "v2", "upsert", 20),
    ]);
    let three = batch(&[
        ("a", "v3", "upsert", 30),
        ("c", "v3", "upsert", 30),
        ("later", "v3", "upsert", 30),
    ]);
    let entities = entities(&pipeline, layout);
    let undo_logs = format!("__sluice:undo:{pipeline}:*");
    let writer = ctx.writer();
    let log = |suffix: &str| format!("__sluice:undo:{pipeline}:{writer}:sink{suffix}").into_bytes();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let build = || config.build(&ctx, feature_input()).unwrap();
        let mut sink = build();
        sink.open(0).await.unwrap();
        sink.write(1, one).await.unwrap();
        sink.commit(1).await.unwrap();
        let after_one = redis_hashes(&entities).await;
        assert_eq!(after_one.len(), 3, "{after_one:?}");
        // The engine checkpoints 1 and tells the sink before the next commit;
        // 2 and 3 are committed but a crash comes before their checkpoints.
        sink.checkpointed(1).await.unwrap();
        sink.write(2, two.clone()).await.unwrap();
        sink.commit(2).await.unwrap();
        sink.write(3, three.clone()).await.unwrap();
        sink.commit(3).await.unwrap();
        let after_three = redis_hashes(&entities).await;
        assert_ne!(after_three, after_one, "epochs 2 and 3 changed Redis");
        let logs = redis_keys(&undo_logs).await;
        assert_eq!(
            logs,
            [log(""), log(":2"), log(":3")],
            "epoch 1's log went at its checkpoint"
        );
        drop(sink);

        let mut sink = build();
        sink.open(1).await.unwrap();
        assert_eq!(
            redis_hashes(&entities).await,
            after_one,
            "open(1) restores epoch 1's values"
        );
        for _ in 0..2 {
            sink.write(2, two.clone()).await.unwrap();
            sink.commit(2).await.unwrap();
        }
        sink.checkpointed(2).await.unwrap();
        sink.write(3, three.clone()).await.unwrap();
        sink.commit(3).await.unwrap();
        assert_eq!(
            redis_hashes(&entities).await,
            after_three,
            "the replay ends where the first run did"
        );
        sink.checkpointed(3).await.unwrap();
        sink.close().await.unwrap();
        assert_eq!(
            redis_keys(&undo_logs).await,
            Vec::<Bytes>::new(),
            "no undo log outlives its checkpoint"
        );
    });
}

/// Regression: sinks starting at once on a fresh database (a daemon's pipelines,
/// or the tests of one suite) raced on `CREATE EXTENSION IF NOT EXISTS vector`,
/// and all but one could fail with a duplicate key in `pg_extension`.
#[test]
fn pgvector_sinks_starting_together_on_a_fresh_database_all_open() {
    let url = util::services().pg;
    let db = util::unique("fresh");
    let (base, _) = url.rsplit_once('/').unwrap();
    let fresh = format!("{base}/{db}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin = |sql: String| {
        let url = url.clone();
        async move {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            c.batch_execute(&sql).await.unwrap();
        }
    };
    rt.block_on(admin(format!("CREATE DATABASE {db}")));
    let dir = tempfile::tempdir().unwrap();
    let opened = rt.block_on(async {
        let opens = (0..6).map(|i| {
            let config: sluice_pgvector::PgVectorSinkConfig =
                serde_json::from_value(serde_json::json!({"url": fresh, "table": format!("t{i}")})).unwrap();
            let mut sink = config
                .build(&named_ctx(dir.path(), &format!("p{i}")), schema())
                .unwrap();
            async move { sink.open(0).await.map_err(|e| e.to_string()) }
        });
        futures::future::join_all(opens).await
    });
    rt.block_on(admin(format!("DROP DATABASE {db} WITH (FORCE)")));
    let failed: Vec<&String> = opened.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
}
