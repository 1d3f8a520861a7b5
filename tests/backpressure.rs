//! With a sink that does not accept rows, the source stops reading and the rows in
//! flight stay under the configured bounds. The gate sink is an in-memory test
//! double: what is under test is the engine's own flow control.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use sluice::plan::PlannedSink;
use sluice::runtime::{self, RunOptions};
use sluice_connector_sdk::{Epoch, Result, Sink, SinkConfig, SinkContext};
use tokio::sync::Semaphore;

#[derive(Debug, Clone)]
struct GateSink {
    /// One permit per batch the sink may accept.
    gate: Arc<Semaphore>,
    rows: Arc<AtomicU64>,
}

impl SinkConfig for GateSink {
    fn build(&self, _: &SinkContext, _: SchemaRef) -> Result<Box<dyn Sink>> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait::async_trait]
impl Sink for GateSink {
    async fn open(&mut self, _: Epoch) -> Result<()> {
        Ok(())
    }
    async fn write(&mut self, _: Epoch, batch: RecordBatch) -> Result<()> {
        self.gate.acquire().await.expect("gate").forget();
        self.rows.fetch_add(batch.num_rows() as u64, Ordering::SeqCst);
        Ok(())
    }
    async fn commit(&mut self, _: Epoch) -> Result<()> {
        Ok(())
    }
}

/// Wait until `read` stops changing for a while (or give up after 20 s).
async fn settle(read: impl Fn() -> u64) -> u64 {
    let mut last = read();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = read();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_sink_stops_the_source_and_bounds_rows_in_flight() {
    const DOCS: u64 = 400;
    const MAX_ROWS: u64 = 8;
    const BATCH: u64 = 2;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..DOCS {
        let p = dir.path().join(format!("data/{i:04}.txt"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("document {i}")).unwrap();
    }
    let yaml = format!(
        "name: bp\nchannels: {{max_rows: {MAX_ROWS}}}\nsource: {{type: files, path: ./data, batch_size: {BATCH}}}\n\
         stages:\n  - {{type: parse, parallelism: 2}}\nsinks:\n  - {{name: gate, type: parquet, path: ./unused}}\n"
    );
    let mut plan = sluice::spec::load_str("bp.yaml", &yaml, dir.path(), &|_| None).unwrap();
    let gate = GateSink {
        gate: Arc::new(Semaphore::new(0)),
        rows: Arc::default(),
    };
    plan.sinks = vec![PlannedSink {
        name: "gate".into(),
        kind: "gate".into(),
        config: Box::new(gate.clone()),
        query: None,
        input: plan.last_schema(),
        stamped: 0,
        shadow: None,
    }];

    let (options, _shutdown) = RunOptions::new(&plan);
    let metrics = options.metrics.clone();
    let run = tokio::spawn(async move { runtime::run(&plan, options).await });

    let read = settle(|| metrics.source_rows.get()).await;
    // Bound: two channels of MAX_ROWS (source → parse → sink), the parse stage's
    // two batches at work, the batch the sink is stuck on, and the batch the source
    // has read and is waiting to send.
    let bound = 2 * MAX_ROWS + 2 * BATCH + BATCH + BATCH;
    assert!(
        read < DOCS,
        "the source read all {DOCS} documents despite a blocked sink"
    );
    assert!(
        read <= bound,
        "{read} rows read while the sink accepted none; bound is {bound}"
    );
    assert_eq!(gate.rows.load(Ordering::SeqCst), 0);
    assert!(metrics.peak_channel_rows() <= MAX_ROWS);

    // Let 20 batches through: the source reads about that many more, then stops again.
    gate.gate.add_permits(20);
    let read2 = settle(|| metrics.source_rows.get()).await;
    let written = gate.rows.load(Ordering::SeqCst);
    assert_eq!(written, 20 * BATCH);
    assert!(
        read2 - written <= bound,
        "{read2} read, {written} written: more in flight than {bound}"
    );

    gate.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.documents, DOCS);
    assert_eq!(gate.rows.load(Ordering::SeqCst), DOCS);
    assert!(
        metrics.peak_channel_rows() <= MAX_ROWS,
        "a channel held more than max_rows"
    );
}
