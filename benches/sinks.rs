//! Rows/s into each sink with precomputed vectors (no embedding): 20,000 chunk rows
//! of 1,000 documents, 384-dimensional vectors, one epoch, through the `Sink` API
//! exactly as the runtime drives it (open, write batches of 1,024, commit).
//!
//! ```sh
//! bash scripts/services.sh up     # PostgreSQL + pgvector and Redis on 127.0.0.1
//! SLUICE_TEST_PG_URL=postgresql://postgres@127.0.0.1:55432/postgres \
//!   cargo bench --bench sinks --profile dev
//! ```
//! Without `SLUICE_TEST_PG_URL` (or `SLUICE_TEST_REDIS_URL`) that line is skipped.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use sluice_connector_sdk::{SinkConfig, SinkContext};

const DOCS: usize = 1_000;
const CHUNKS: usize = 20;
const DIM: usize = 384;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("chunk_id", DataType::Utf8, true),
        Field::new("doc_id", DataType::Utf8, true),
        Field::new("op", DataType::Utf8, true),
        Field::new("text", DataType::Utf8, true),
        Field::new("token_count", DataType::Int64, true),
        Field::new(
            "modified_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("embedding", sluice_embed::embedding_type(DIM), true),
    ]))
}

/// Batches of 1,024 rows; vectors from a fixed pseudo-random sequence.
fn batches() -> Vec<RecordBatch> {
    let n = DOCS * CHUNKS;
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let values: Vec<f32> = (0..n * DIM).map(|_| next()).collect();
    let all = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("chunk-{i:06}")),
            )) as ArrayRef,
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("file:///docs/{:04}.md", i / CHUNKS)),
            )),
            Arc::new(StringArray::from_iter_values((0..n).map(|_| "upsert"))),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("chunk {i} {}", "lorem ipsum ".repeat(16))),
            )),
            Arc::new(Int64Array::from_iter_values(
                (0..n).map(|i| 40 + (i % 200) as i64),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values((0..n).map(|i| 1_700_000_000_000_000 + i as i64))
                    .with_timezone("UTC"),
            ),
            Arc::new(
                FixedSizeListArray::try_new(
                    Arc::new(Field::new_list_field(DataType::Float32, true)),
                    DIM as i32,
                    Arc::new(Float32Array::from(values)),
                    None,
                )
                .unwrap(),
            ),
        ],
    )
    .unwrap();
    (0..n)
        .step_by(1024)
        .map(|at| all.slice(at, 1024.min(n - at)))
        .collect()
}

fn context(name: &str, dir: &std::path::Path) -> SinkContext {
    SinkContext {
        pipeline: "bench".into(),
        name: name.into(),
        base_dir: dir.to_path_buf(),
        state_dir: dir.join(".sluice"),
        role: Default::default(),
        dead_letters: Default::default(),
    }
}

async fn run(
    name: &str,
    config: Box<dyn SinkConfig>,
    input: SchemaRef,
    batches: &[RecordBatch],
    dir: &std::path::Path,
) {
    run_epochs(name, config, input, batches, dir, 1).await
}

/// `epochs` epochs of the same rows, checkpointed as the runtime does; from the
/// second on, every row overwrites one already stored.
async fn run_epochs(
    name: &str,
    config: Box<dyn SinkConfig>,
    input: SchemaRef,
    batches: &[RecordBatch],
    dir: &std::path::Path,
    epochs: u64,
) {
    let ctx = context(name, dir);
    let mut sink = config.build(&ctx, input).unwrap();
    sink.open(0).await.unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    for epoch in 1..=epochs {
        let started = Instant::now();
        if epoch > 1 {
            sink.checkpointed(epoch - 1).await.unwrap();
        }
        for b in batches {
            sink.write(epoch, b.clone()).await.unwrap();
        }
        sink.commit(epoch).await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        let name = if epoch == 1 {
            name.to_string()
        } else {
            format!("  epoch {epoch} (overwrites)")
        };
        println!(
            "{name:<28} {rows:>7} rows in {secs:>6.2}s = {:>9.0} rows/s",
            rows as f64 / secs
        );
    }
}

/// One epoch through a fresh sink, then `sluice index rebuild`'s call, timed apart.
async fn run_then_rebuild(
    name: &str,
    config: impl Fn() -> Box<dyn SinkConfig>,
    input: SchemaRef,
    batches: &[RecordBatch],
    dir: &std::path::Path,
) {
    let started = Instant::now();
    run(name, config(), input, batches, dir).await;
    let build = Instant::now();
    let line = config()
        .rebuild_index(&context(name, dir))
        .unwrap()
        .await
        .unwrap();
    let (build, total) = (build.elapsed().as_secs_f64(), started.elapsed().as_secs_f64());
    println!(
        "{:<28} {line} in {build:.2}s; load + build = {:.0} rows/s",
        "  then index rebuild",
        batches.iter().map(|b| b.num_rows()).sum::<usize>() as f64 / total
    );
}

fn decode<T: serde::de::DeserializeOwned + SinkConfig + 'static>(
    json: serde_json::Value,
) -> Box<dyn SinkConfig> {
    Box::new(serde_json::from_value::<T>(json).unwrap())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let batches = batches();
    let dir = tempfile::tempdir().unwrap();
    let input = schema();
    rt.block_on(async {
        run(
            "parquet",
            decode::<sluice_object_store::ParquetSinkConfig>(serde_json::json!({"path": "./parquet"})),
            input.clone(),
            &batches,
            dir.path(),
        )
        .await;
        run(
            "lancedb (local folder)",
            decode::<sluice_lancedb::LanceDbSinkConfig>(
                serde_json::json!({"uri": "./lance", "table": "chunks"}),
            ),
            input.clone(),
            &batches,
            dir.path(),
        )
        .await;
        // The same rows again in a second table, then one vector index build
        // (IVF-HNSW-SQ, lance-index's k-means and graph build) over them.
        let lance_indexed = || {
            decode::<sluice_lancedb::LanceDbSinkConfig>(
                serde_json::json!({"uri": "./lance", "table": "chunks_indexed"}),
            )
        };
        let name = "lancedb, then index rebuild";
        run_then_rebuild(name, lance_indexed, input.clone(), &batches, dir.path()).await;
        if let Ok(url) = std::env::var("SLUICE_TEST_PG_URL") {
            let table = format!("bench_{}", std::process::id());
            run(
                "pgvector (binary COPY, HNSW)",
                decode::<sluice_pgvector::PgVectorSinkConfig>(
                    serde_json::json!({"url": url, "table": table}),
                ),
                input.clone(),
                &batches,
                dir.path(),
            )
            .await;
            // The bulk-load route: no index during the COPY, one build afterwards.
            let table = format!("bench_noindex_{}", std::process::id());
            let name = "pgvector (COPY, no index)";
            let config = || {
                decode::<sluice_pgvector::PgVectorSinkConfig>(
                    serde_json::json!({"url": url, "table": table, "index": {"type": "none"}}),
                )
            };
            run_then_rebuild(name, config, input.clone(), &batches, dir.path()).await;
        } else {
            println!("pgvector: skipped (set SLUICE_TEST_PG_URL)");
        }
        let features = decode::<sluice_feature_store::FeatureStoreSinkConfig>(serde_json::json!({
            "entity": ["chunk_id"], "event_timestamp": "modified_at", "offline": "./features",
        }));
        let feature_input = Arc::new(Schema::new(
            input
                .fields()
                .iter()
                .filter(|f| f.name() != "embedding")
                .map(|f| f.as_ref().clone())
                .collect::<Vec<_>>(),
        ));
        let feature_batches: Vec<RecordBatch> = batches
            .iter()
            .map(|b| b.project(&[0, 1, 2, 3, 4, 5]).unwrap())
            .collect();
        run(
            "feature store (offline)",
            features,
            feature_input.clone(),
            &feature_batches,
            dir.path(),
        )
        .await;
        if let Ok(url) = std::env::var("SLUICE_TEST_REDIS_URL") {
            // Both online layouts, one after the other in the same run.
            for (layout, online) in [
                ("sluice", serde_json::json!({"url": url, "layout": "sluice", "prefix": format!("bench{}", std::process::id())})),
                ("feast", serde_json::json!({"url": url})),
            ] {
                let features = decode::<sluice_feature_store::FeatureStoreSinkConfig>(serde_json::json!({
                    "entity": ["chunk_id"], "event_timestamp": "modified_at",
                    "offline": format!("./features-{layout}"), "online": online,
                    "feast": {"repo": format!("./feast-{layout}"), "project": format!("bench{}", std::process::id())},
                }));
                run_epochs(
                    &format!("feature store (+ Redis, {layout} layout)"),
                    features,
                    feature_input.clone(),
                    &feature_batches,
                    dir.path(),
                    2,
                )
                .await;
            }
        } else {
            println!("feature store online: skipped (set SLUICE_TEST_REDIS_URL)");
        }
    });
}
