use std::sync::Arc;

use arrow::array::{Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice_connector_sdk::{testkit, Sink, SinkConfig, SinkContext};

use super::ParquetSinkConfig;

fn rows(ids: &[&str]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("doc_id", DataType::Utf8, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(ids.to_vec()))]).unwrap()
}

/// Counts rows by reading the files back with the parquet crate, not through sluice.
fn count_rows(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "parquet") {
            let file = std::fs::File::open(&path).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            for b in reader {
                let b = b.unwrap();
                assert!(b.column_by_name("epoch").unwrap().null_count() == 0);
                n += b.num_rows();
            }
        }
    }
    n
}

#[tokio::test]
async fn parquet_sink_passes_the_checkpoint_contract() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = ParquetSinkConfig { path: "out".into() };
    let ctx = SinkContext {
        pipeline: "t".into(),
        name: "chunks".into(),
        base_dir: dir.path().to_path_buf(),
        state_dir: dir.path().join(".sluice"),
        role: Default::default(),
        dead_letters: Default::default(),
    };
    let schema = rows(&[]).schema();
    testkit::check_replay_and_rollback(
        || {
            let sink: sluice_connector_sdk::Result<Box<dyn Sink>> = config.build(&ctx, schema.clone());
            async move { sink }
        },
        || {
            let n = count_rows(&out);
            async move { Ok(n) }
        },
        rows(&["a", "b", "c"]),
        rows(&["d", "e"]),
    )
    .await
    .unwrap();
}
