//! An epoch log: one Parquet file per epoch under a prefix of an object store.
//!
//! Rows of epoch `e` are streamed to `epoch-<e>.parquet.tmp` and renamed to
//! `epoch-<e>.parquet` on commit, so a reader never sees half an epoch. Replaying an
//! epoch rewrites the same name, which makes a replay idempotent. `rollback(c)`
//! removes every file of an epoch after `c` and every leftover temp file.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::async_writer::ParquetObjectWriter;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::{ConnectorError, Epoch, Result};

const FINAL_SUFFIX: &str = ".parquet";
const TEMP_SUFFIX: &str = ".parquet.tmp";

/// The files of an epoch log.
#[derive(Debug, Clone)]
pub struct EpochLog {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// File names are `<stem>-<epoch>.parquet`; other stems in the folder belong
    /// to other writers and are never touched.
    stem: String,
    /// The local folder `prefix` is, when the store is the local file system:
    /// a commit then fsyncs the file and the folder before it returns.
    local_dir: Option<std::path::PathBuf>,
}

impl EpochLog {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        Self {
            store,
            prefix,
            stem: "epoch".into(),
            local_dir: None,
        }
    }

    /// The store is the local file system and `prefix` is the folder `dir`:
    /// commits are made durable with fsync (object_store's local store does not
    /// sync), so a power loss after the checkpoint cannot lose a committed epoch.
    pub fn with_local_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.local_dir = Some(dir.into());
        self
    }

    /// Name this writer's files `<stem>-<epoch>.parquet` (see `SinkContext::epoch_stem`).
    pub fn with_stem(mut self, stem: impl Into<String>) -> Self {
        self.stem = stem.into();
        self
    }

    /// Path of the committed file of `epoch`.
    pub fn file(&self, epoch: Epoch) -> Path {
        self.prefix
            .clone()
            .join(format!("{}-{epoch:020}{FINAL_SUFFIX}", self.stem))
    }

    fn temp_file(&self, epoch: Epoch) -> Path {
        self.prefix
            .clone()
            .join(format!("{}-{epoch:020}{TEMP_SUFFIX}", self.stem))
    }

    /// Committed epochs with their files, in epoch order.
    pub async fn epochs(&self) -> Result<Vec<(Epoch, Path)>> {
        let mut out: Vec<(Epoch, Path)> = self
            .list()
            .await?
            .into_iter()
            .filter_map(|(p, temp)| (!temp).then_some(p))
            .filter_map(|p| parse_epoch(&p, &self.stem).map(|e| (e, p)))
            .collect();
        out.sort_by_key(|(e, _)| *e);
        Ok(out)
    }

    /// This writer's files, each with whether it is a temp file. A name must
    /// be exactly `<stem>-<digits>` and a suffix: a stem that merely starts
    /// like ours (`epoch-docs` and `epoch-docs-2`) is another writer's.
    async fn list(&self) -> Result<Vec<(Path, bool)>> {
        let metas: Vec<_> = self.store.list(Some(&self.prefix)).try_collect().await?;
        Ok(metas
            .into_iter()
            .filter(|m| parse_epoch(&m.location, &self.stem).is_some())
            .map(|m| {
                let temp = m.location.filename().is_some_and(|n| n.ends_with(TEMP_SUFFIX));
                (m.location, temp)
            })
            .collect())
    }

    /// Remove files of epochs after `committed` and all temp files. Returns how many
    /// files were removed.
    pub async fn rollback(&self, committed: Epoch) -> Result<usize> {
        let mut removed = 0;
        for (path, temp) in self.list().await? {
            let newer = parse_epoch(&path, &self.stem).is_some_and(|e| e > committed);
            if temp || newer {
                self.store.delete(&path).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Remove committed files of epochs before `keep_from` (retention).
    pub async fn prune_before(&self, keep_from: Epoch) -> Result<usize> {
        let mut removed = 0;
        for (e, path) in self.epochs().await? {
            if e < keep_from {
                self.store.delete(&path).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn parse_epoch(path: &Path, stem: &str) -> Option<Epoch> {
    let name = path.filename()?;
    let digits = name.strip_prefix(stem)?.strip_prefix('-')?;
    let digits = digits
        .strip_suffix(TEMP_SUFFIX)
        .or_else(|| digits.strip_suffix(FINAL_SUFFIX))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Streams the rows of one epoch at a time into an [`EpochLog`].
pub struct EpochLogWriter {
    log: EpochLog,
    schema: SchemaRef,
    open: Option<(Epoch, AsyncArrowWriter<ParquetObjectWriter>)>,
}

impl EpochLogWriter {
    pub fn new(log: EpochLog, schema: SchemaRef) -> Self {
        Self {
            log,
            schema,
            open: None,
        }
    }

    pub fn log(&self) -> &EpochLog {
        &self.log
    }

    /// Append rows to `epoch`. All rows of one epoch come before its commit.
    pub async fn write(&mut self, epoch: Epoch, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if let Some((open_epoch, _)) = &self.open {
            if *open_epoch != epoch {
                return Err(ConnectorError::internal(format!(
                    "epoch log got rows of epoch {epoch} while epoch {open_epoch} is open"
                )));
            }
        } else {
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build();
            let object = ParquetObjectWriter::new(self.log.store.clone(), self.log.temp_file(epoch));
            let writer = AsyncArrowWriter::try_new(object, self.schema.clone(), Some(props))?;
            self.open = Some((epoch, writer));
        }
        let (_, writer) = self.open.as_mut().expect("writer opened above");
        writer.write(batch).await?;
        Ok(())
    }

    /// Publish `epoch`: close its temp file and rename it into place. An epoch with
    /// no rows leaves no file.
    pub async fn commit(&mut self, epoch: Epoch) -> Result<()> {
        match self.open.take() {
            Some((open_epoch, writer)) if open_epoch == epoch => {
                writer.close().await?;
                let file = self.log.file(epoch);
                self.log.store.rename(&self.log.temp_file(epoch), &file).await?;
                if let (Some(dir), Some(name)) = (&self.log.local_dir, file.filename()) {
                    sync(dir.clone(), name.to_string()).await?;
                }
                Ok(())
            }
            Some((open_epoch, _)) => Err(ConnectorError::internal(format!(
                "commit of epoch {epoch} while epoch {open_epoch} is open"
            ))),
            None => Ok(()),
        }
    }
}

/// fsync `dir/name`, then `dir` (which holds the rename).
async fn sync(dir: std::path::PathBuf, name: String) -> Result<()> {
    let file = dir.join(&name);
    tokio::task::spawn_blocking(move || {
        std::fs::File::open(&file)?.sync_all()?;
        std::fs::File::open(&dir)?.sync_all()
    })
    .await
    .map_err(|e| ConnectorError::internal(format!("fsync task: {e}")))?
    .map_err(|e| ConnectorError::external(format!("syncing {name}")).with_source(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use object_store::local::LocalFileSystem;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    #[tokio::test]
    async fn commit_publishes_and_rollback_discards_newer_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let log = EpochLog::new(store, Path::from("log"));
        let mut w = EpochLogWriter::new(log.clone(), batch(&[]).schema());
        w.write(1, &batch(&[1, 2])).await.unwrap();
        w.commit(1).await.unwrap();
        w.write(2, &batch(&[3])).await.unwrap();
        w.commit(2).await.unwrap();
        // A crash mid-upload leaves a temp file behind.
        let temp = log.temp_file(3);
        log.store.put(&temp, vec![1u8, 2, 3].into()).await.unwrap();
        assert_eq!(log.epochs().await.unwrap().len(), 2);
        assert_eq!(log.rollback(1).await.unwrap(), 2);
        let epochs: Vec<_> = log.epochs().await.unwrap().into_iter().map(|(e, _)| e).collect();
        assert_eq!(epochs, vec![1]);
        assert!(std::fs::read_dir(dir.path().join("log")).unwrap().count() == 1);
    }

    #[tokio::test]
    async fn two_stems_share_a_folder_and_roll_back_only_their_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        // One stem starts like the other: names must match exactly.
        let stream = EpochLog::new(store.clone(), Path::from("log")).with_stem("epoch-docs");
        let backfill = EpochLog::new(store, Path::from("log")).with_stem("epoch-docs-7");
        for (log, epochs) in [(&stream, 1..=2), (&backfill, 1..=5)] {
            let mut w = EpochLogWriter::new(log.clone(), batch(&[]).schema());
            for e in epochs {
                w.write(e, &batch(&[e as i64])).await.unwrap();
                w.commit(e).await.unwrap();
            }
        }
        backfill
            .store
            .put(&backfill.temp_file(6), vec![1u8].into())
            .await
            .unwrap();
        // The stream restarts from epoch 1: it removes its epoch 2 only, not
        // the other writer's temp file.
        assert_eq!(stream.rollback(1).await.unwrap(), 1);
        assert_eq!(backfill.epochs().await.unwrap().len(), 5);
        // The backfill resumes from 4: its epoch 5 and its temp file go.
        assert_eq!(backfill.rollback(4).await.unwrap(), 2);
        let left: Vec<_> = stream
            .epochs()
            .await
            .unwrap()
            .into_iter()
            .map(|(e, _)| e)
            .collect();
        assert_eq!(left, vec![1]);
        assert_eq!(backfill.epochs().await.unwrap().len(), 4);
    }
}
