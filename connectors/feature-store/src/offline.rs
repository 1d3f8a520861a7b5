//! The offline store: a Hive-partitioned Parquet dataset, `date=YYYY-MM-DD/` by the
//! date (UTC) of the event timestamp, one file per date per epoch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, TimestampMicrosecondArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use chrono::DateTime;
use parquet::arrow::ArrowWriter;
use sluice_connector_sdk::{ConnectorError, Epoch, Result};

use crate::config::{timestamp_type, CREATED_TIMESTAMP, EVENT_TIMESTAMP};

pub struct OfflineStore {
    pub dir: PathBuf,
    /// Entity keys, event and created timestamps, then features.
    pub schema: SchemaRef,
    /// The input column holding the event time.
    pub event_column: String,
    /// This writer's file names, `<stem>-<epoch>.parquet` (`SinkContext::epoch_stem`).
    pub stem: String,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> ConnectorError {
    move |e| ConnectorError::external(what).with_source(e)
}

fn file_epoch(path: &Path, stem: &str) -> Option<Epoch> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_prefix(stem)?.strip_prefix('-')?.split('.').next()?;
    // Exactly digits: `epoch-docs-2-5` is another writer's (stem `epoch-docs-2`).
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl OfflineStore {
    fn partitions(&self) -> Result<Vec<PathBuf>> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        let entries = std::fs::read_dir(&self.dir).map_err(io(format!("listing {}", self.dir.display())))?;
        Ok(entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("date="))
            })
            .collect())
    }

    /// Remove files of epochs after `committed`, and leftover temp files.
    pub fn rollback(&self, committed: Epoch) -> Result<usize> {
        let mut removed = 0;
        for part in self.partitions()? {
            for f in std::fs::read_dir(&part)
                .map_err(io(format!("listing {}", part.display())))?
                .flatten()
            {
                let p = f.path();
                let ours = file_epoch(&p, &self.stem);
                let stale = ours.is_some() && p.extension().is_some_and(|e| e == "tmp")
                    || ours.is_some_and(|e| e > committed);
                if stale {
                    std::fs::remove_file(&p).map_err(io(format!("removing {}", p.display())))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// The rows of `batch` in the offline schema, `created` as their write time.
    pub fn shape(&self, batch: &RecordBatch, created: i64) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = self
            .schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                EVENT_TIMESTAMP => {
                    let col = batch
                        .column_by_name(&self.event_column)
                        .ok_or_else(|| ConnectorError::internal("no event timestamp column"))?;
                    Ok(cast(col, &timestamp_type())?)
                }
                CREATED_TIMESTAMP => Ok(Arc::new(
                    TimestampMicrosecondArray::from(vec![created; batch.num_rows()]).with_timezone("UTC"),
                ) as ArrayRef),
                name => batch
                    .column_by_name(name)
                    .cloned()
                    .ok_or_else(|| ConnectorError::internal(format!("no column `{name}`"))),
            })
            .collect::<Result<_>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// Write the epoch's rows (already shaped), one file per date, atomically each.
    pub fn write_epoch(&self, epoch: Epoch, batches: &[RecordBatch]) -> Result<()> {
        let mut by_date: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
        for b in batches {
            let ts = b
                .column_by_name(EVENT_TIMESTAMP)
                .expect("shaped")
                .as_primitive::<TimestampMicrosecondType>();
            let dates: Vec<Option<String>> = ts
                .iter()
                .map(|t| {
                    t.and_then(DateTime::from_timestamp_micros)
                        .map(|d| d.format("%Y-%m-%d").to_string())
                })
                .collect();
            let mut distinct: Vec<&String> = dates.iter().flatten().collect();
            distinct.sort();
            distinct.dedup();
            for date in distinct {
                let keep: BooleanArray = dates.iter().map(|d| Some(d.as_ref() == Some(date))).collect();
                by_date
                    .entry(date.clone())
                    .or_default()
                    .push(filter_record_batch(b, &keep)?);
            }
            if ts.null_count() > 0 {
                tracing::warn!(
                    "feature store: {} rows without an event timestamp left out",
                    ts.null_count()
                );
            }
        }
        for (date, parts) in by_date {
            let folder = self.dir.join(format!("date={date}"));
            std::fs::create_dir_all(&folder).map_err(io(format!("creating {}", folder.display())))?;
            let path = folder.join(format!("{}-{epoch}.parquet", self.stem));
            let tmp = path.with_extension("parquet.tmp");
            let file = std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
            let mut writer = ArrowWriter::try_new(file, self.schema.clone(), None)
                .map_err(|e| ConnectorError::internal("parquet writer").with_source(e))?;
            for p in &parts {
                writer
                    .write(p)
                    .map_err(|e| ConnectorError::external("writing parquet").with_source(e))?;
            }
            let file = writer
                .into_inner()
                .map_err(|e| ConnectorError::external("finishing parquet").with_source(e))?;
            file.sync_all()
                .map_err(io(format!("syncing {}", tmp.display())))?;
            std::fs::rename(&tmp, &path).map_err(io(format!("publishing {}", path.display())))?;
        }
        Ok(())
    }
}
