//! The dead-letter store: every document a source or stage gave up on, with why.
//!
//! Letters are written as Parquet under `state_dir/dlq/`, one file per epoch, through
//! the same epoch log as sinks. Each letter is tagged with the epoch it was found
//! in and lands in that epoch's file, so a replay after a crash does not record a
//! failure twice. The store is a checkpoint participant like any sink.
//!
//! A letter stays open until its document goes through the pipeline without one:
//! when the source emits a document that has an open letter and no stage gives up
//! on it in that epoch, the store writes a `resolved` row for it. A document's
//! newest epoch in the log decides, so `sluice sql`'s `dead_letters` shows the
//! open letters and `dead_letters_log` every row ever written.
//!
//! - [`store`]: the store's task.
//! - [`open_letters`]: the open documents, read back at start.
//! - `dlq.retention` (pipeline YAML, default 30 days) prunes old epoch files at start.

mod store;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, TimestampMicrosecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use sluice_connector_sdk::epoch_log::EpochLog;
use sluice_connector_sdk::{DeadLetter, Epoch};

use crate::{Error, Result};
pub use store::{run_store, DlqMsg};

pub const OPEN: &str = "open";
pub const RESOLVED: &str = "resolved";

/// Schema of the dead-letter files. `id` and `status` are nullable: files written
/// before they existed read back as open letters without an id.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("version", DataType::Utf8, false),
        Field::new("stage", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, false),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("epoch", DataType::UInt64, false),
        Field::new("status", DataType::Utf8, true),
    ]))
}

/// A letter's id: stable, short, unique per (document, stage, epoch).
pub fn letter_id(doc_id: &str, stage: &str, epoch: Epoch) -> String {
    let hash = blake3::hash(format!("{doc_id}\0{stage}\0{epoch}").as_bytes());
    hash.to_hex()[..12].to_string()
}

/// Rows of `letters` (status `open`) or of resolutions (status `resolved`).
fn to_batch(epoch: Epoch, letters: &[DeadLetter], status: &str) -> Result<RecordBatch> {
    let now = chrono::Utc::now().timestamp_micros();
    let text = |value: fn(&DeadLetter) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(letters.iter().map(value)))
    };
    let n = letters.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            letters.iter().map(|l| letter_id(&l.doc_id, &l.stage, epoch)),
        )),
        text(|l| &l.doc_id),
        text(|l| &l.version),
        text(|l| &l.stage),
        Arc::new(StringArray::from_iter_values(
            letters
                .iter()
                .map(|l| crate::telemetry::secrets::scrub(&l.error).into_owned()),
        )),
        Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
        Arc::new(UInt64Array::from(vec![epoch; n])),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(status, n))),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// The epoch log of the dead-letter store in `dir`.
pub fn log(dir: &std::path::Path) -> Result<EpochLog> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let store =
        LocalFileSystem::new_with_prefix(dir).map_err(|e| Error::connector("dead-letter store", e.into()))?;
    Ok(EpochLog::new(Arc::new(store), StorePath::default()).with_local_dir(dir))
}

/// The documents whose newest row in the committed files under `dir` is open.
/// A file that cannot be read (torn by a disk fault, edited by hand) is moved
/// aside as `<name>.corrupt` with a warning: it must not stop every start.
pub async fn open_letters(dir: &std::path::Path, log: &EpochLog) -> Result<HashSet<String>> {
    let wrap = |e| Error::connector("dead-letter store", e);
    let mut open = HashSet::new();
    for (_, path) in log.epochs().await.map_err(wrap)? {
        let file = dir.join(path.as_ref());
        if let Err(e) = read_statuses(&file, &mut open) {
            let aside = file.with_extension("parquet.corrupt");
            tracing::warn!(
                file = %file.display(),
                moved_to = %aside.display(),
                "a dead-letter file cannot be read; it is moved aside and its letters are left out: {e}"
            );
            std::fs::rename(&file, &aside)
                .map_err(|e| Error::io(format!("moving {} aside", file.display()), e))?;
        }
    }
    Ok(open)
}

/// Why a dead-letter file cannot be read.
#[derive(Debug, thiserror::Error)]
enum Unreadable {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("no doc_id column")]
    NoDocId,
}

/// Apply one dead-letter file's rows to `open`, in order. Rows apply only
/// once the whole file has been read.
fn read_statuses(file: &std::path::Path, open: &mut HashSet<String>) -> std::result::Result<(), Unreadable> {
    let f = std::fs::File::open(file)?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)?.build()?;
    let mut rows: Vec<(String, bool)> = Vec::new();
    for batch in reader {
        let batch = batch?;
        let docs = batch
            .column_by_name("doc_id")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or(Unreadable::NoDocId)?;
        let status = batch
            .column_by_name("status")
            .and_then(|c| c.as_string_opt::<i32>());
        for r in 0..batch.num_rows() {
            let resolved = status.filter(|s| s.is_valid(r)).map(|s| s.value(r)) == Some(RESOLVED);
            rows.push((docs.value(r).to_string(), resolved));
        }
    }
    for (doc, resolved) in rows {
        if resolved {
            open.remove(&doc);
        } else {
            open.insert(doc);
        }
    }
    Ok(())
}

/// Delete committed epoch files last written more than `retention` ago.
pub fn prune(dir: &std::path::Path, retention: Duration) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let cutoff = std::time::SystemTime::now() - retention;
    let mut pruned = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < cutoff);
        if old && name.to_string_lossy().ends_with(".parquet") {
            std::fs::remove_file(entry.path())
                .map_err(|e| Error::io(format!("pruning {}", entry.path().display()), e))?;
            pruned += 1;
        }
    }
    Ok(pruned)
}

/// The view `dead_letters` over the log table `log`: each document's rows of its
/// newest epoch, if they are open letters.
pub fn open_view_sql(log: &str) -> String {
    format!(
        "SELECT id, doc_id, version, stage, error, time, epoch FROM \
         (SELECT *, max(epoch) OVER (PARTITION BY doc_id) AS newest FROM {log}) \
         WHERE epoch = newest AND coalesce(status, '{OPEN}') = '{OPEN}'"
    )
}

/// Forget `doc_ids` in the source's checkpointed position, so the next run
/// reads them again through the current pipeline (a replay of their dead
/// letters). Takes the state lock for the rewrite.
pub fn forget(plan: &crate::plan::Plan, doc_ids: &[String]) -> Result<()> {
    let _lock = crate::checkpoint::StateLock::acquire(&plan.state_dir)?;
    let store = crate::checkpoint::CheckpointStore::new(plan.checkpoint_file());
    let Some(mut checkpoint) = store.load_for(&plan.name)? else {
        return Err(Error::Internal(
            "dead letters but no checkpoint: run the pipeline first".into(),
        ));
    };
    checkpoint.source = plan
        .source
        .config
        .replay(checkpoint.source, doc_ids)
        .map_err(|e| Error::connector("source", e))?;
    store.save(&checkpoint)
}

/// The documents of the open letters `filter` (a SQL `WHERE` clause over
/// `dead_letters`, or nothing) selects, each once, sorted.
pub async fn letter_documents(plan: &crate::plan::Plan, filter: &str) -> Result<Vec<String>> {
    let sql = format!("SELECT DISTINCT doc_id FROM dead_letters {filter} ORDER BY doc_id");
    let batches = crate::inspect::query(plan, &sql).await?;
    Ok(batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect())
}
