//! The running `lancedb` sink.
//!
//! Invariants: rows carry their `epoch` and their writer (`sluice_writer`);
//! `open(committed)` deletes this writer's later epochs;
//! `commit` deletes the epoch's doc_ids, then adds the new rows, so a document's
//! rows are replaced as a whole and a replayed epoch changes nothing.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatchIterator;
use lance::dataset::{NewColumnTransform, WriteMode, WriteParams};
use lance::Dataset;
use sluice_connector_sdk::replace::{epoch_rows, rows_of, versions, EpochRows};
use sluice_connector_sdk::writer::EpochWriter;
use sluice_connector_sdk::{ConnectorError, Epoch, Result, SinkContext};

use crate::config::{LanceDbSinkConfig, EPOCH, WRITER};

pub struct LanceDbSink {
    pub(crate) config: LanceDbSinkConfig,
    uri: String,
    schema: SchemaRef,
    pub(crate) table: Option<Dataset>,
    /// The vector index exists (or is not wanted).
    pub(crate) indexed: bool,
    /// Who runs this sink: its name, where refused documents go, whether
    /// others write the table too (no rollback by epoch number then), and
    /// whether it is a backfill (rows carry epoch 0).
    pub(crate) ctx: SinkContext,
    /// Stamped on every row (`sluice_writer`); rollbacks touch only its rows.
    writer: String,
}

/// An epoch ready to write: the rows that replace their documents, and the
/// documents left out (doc_id, version, why), left as they were.
pub struct Prepared {
    rows: EpochRows,
    refused: Vec<(String, String, String)>,
}

/// The documents whose embedding holds a NaN or an infinity: no distance to
/// them means anything, and they break index training. (doc_id → reason)
fn non_finite(batches: &[RecordBatch], doc: &str, embedding: &str) -> Vec<(String, String)> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Float32Type;
    let mut out: Vec<(String, String)> = Vec::new();
    for b in batches {
        let (Some(ids), Some(vectors)) = (
            b.column_by_name(doc).and_then(|c| c.as_string_opt::<i32>()),
            b.column_by_name(embedding)
                .and_then(|c| c.as_fixed_size_list_opt()),
        ) else {
            continue;
        };
        let Some(values) = vectors.values().as_primitive_opt::<Float32Type>() else {
            continue;
        };
        let dim = vectors.value_length() as usize;
        for r in 0..b.num_rows() {
            if vectors.is_null(r) || ids.is_null(r) {
                continue;
            }
            let start = vectors.value_offset(r) as usize;
            let bad = values.values()[start..start + dim].iter().any(|v| !v.is_finite());
            if bad && !out.iter().any(|(d, _)| d == ids.value(r)) {
                out.push((
                    ids.value(r).to_string(),
                    format!("`{embedding}` holds a NaN or an infinite value"),
                ));
            }
        }
    }
    out
}

/// Storage and network failures may pass (an object store that is briefly
/// unreachable, a commit whose outcome is unknown, a conflict with another
/// writer); the rest (schemas, inputs, unsupported operations) will not.
pub(crate) fn lance_err(what: impl Into<String>, e: lance::Error) -> ConnectorError {
    use lance::Error as E;
    let permanent = matches!(
        e,
        E::InvalidInput { .. }
            | E::DatasetAlreadyExists { .. }
            | E::SchemaMismatch { .. }
            | E::CorruptFile { .. }
            | E::NotSupported { .. }
            | E::Schema { .. }
            | E::Arrow { .. }
            | E::FieldNotFound { .. }
            | E::InvalidTableLocation { .. }
    ) && !e.is_commit_status_unknown();
    ConnectorError::external(what)
        .with_source(e)
        .retryable(!permanent)
}

/// `'a', 'b'` with quotes doubled, for a delete predicate (one value: a
/// quoted literal).
fn sql_list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("'{}'", v.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The length of `column`'s vectors, if it is a fixed-size list.
pub(crate) fn dimension(schema: &arrow::datatypes::Schema, column: &str) -> Option<i32> {
    match schema.field_with_name(column).ok()?.data_type() {
        DataType::FixedSizeList(_, d) => Some(*d),
        _ => None,
    }
}

impl LanceDbSink {
    /// A sink writing `schema` (see [`crate::config::table_schema`]) to the
    /// table at `uri`, for the run `ctx` describes.
    pub fn new(config: LanceDbSinkConfig, uri: String, schema: SchemaRef, ctx: &SinkContext) -> Self {
        LanceDbSink {
            config,
            uri,
            schema,
            table: None,
            indexed: false,
            writer: ctx.writer(),
            ctx: ctx.clone(),
        }
    }

    pub(crate) fn table(&mut self) -> Result<&mut Dataset> {
        self.table
            .as_mut()
            .ok_or_else(|| ConnectorError::internal("lancedb sink used before open"))
    }

    /// Reorder and complete `batch` to the table's schema, with `epoch` and
    /// `sluice_writer` set.
    fn to_table_rows(&self, batch: &RecordBatch, epoch: Epoch) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = self
            .schema
            .fields()
            .iter()
            .map(|f| {
                if f.name() == EPOCH {
                    let epoch = self.ctx.role.row_epoch(epoch);
                    Ok(Arc::new(Int64Array::from(vec![epoch; batch.num_rows()])) as ArrayRef)
                } else if f.name() == WRITER {
                    let writer = StringArray::from(vec![self.writer.as_str(); batch.num_rows()]);
                    Ok(Arc::new(writer) as ArrayRef)
                } else {
                    batch
                        .column_by_name(f.name())
                        .cloned()
                        .ok_or_else(|| ConnectorError::internal(format!("no column `{}`", f.name())))
                }
            })
            .collect::<Result<_>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[async_trait::async_trait]
impl EpochWriter for LanceDbSink {
    type Prepared = Prepared;

    fn service(&self) -> String {
        format!("LanceDB at {}", self.uri)
    }

    fn max_outage(&self) -> std::time::Duration {
        self.config.max_outage.0
    }

    async fn open(&mut self, committed: Epoch) -> Result<()> {
        self.open_once(committed).await
    }

    /// Documents whose vectors hold a NaN or an infinity are left out.
    fn prepare(&mut self, _epoch: Epoch, pending: &[RecordBatch]) -> Result<Prepared> {
        let mut rows = epoch_rows(pending, &self.config.doc_column)?;
        let doc = &self.config.doc_column;
        let found = non_finite(&rows.batches, doc, &self.config.embedding_column);
        let mut refused = Vec::new();
        if !found.is_empty() {
            let versions = versions(&rows.batches, doc);
            rows.doc_ids.retain(|d| !found.iter().any(|(r, _)| r == d));
            rows.batches = rows_of(&rows.batches, doc, &rows.doc_ids)?;
            refused = found
                .into_iter()
                .map(|(d, why)| (d.clone(), versions.get(&d).cloned().unwrap_or_default(), why))
                .collect();
        }
        Ok(Prepared { rows, refused })
    }

    /// Delete then add is idempotent, so after a failure the whole epoch is
    /// written again (a lost reply to an `add` included).
    async fn write(&mut self, epoch: Epoch, prepared: &Prepared) -> Result<()> {
        let rows = &prepared.rows;
        let doc = self.config.doc_column.clone();
        let batches: Vec<RecordBatch> = rows
            .batches
            .iter()
            .map(|b| self.to_table_rows(b, epoch))
            .collect::<Result<_>>()?;
        let schema = self.schema.clone();
        let table = self.table()?;
        for ids in rows.doc_ids.chunks(500) {
            table
                .delete(format!("{doc} IN ({})", sql_list(ids)).as_str())
                .await
                .map_err(|e| lance_err("deleting replaced documents", e))?;
        }
        if !batches.is_empty() {
            let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), schema);
            table
                .append(reader, None)
                .await
                .map_err(|e| lance_err("adding rows", e))?;
        }
        Ok(())
    }

    /// A failed commit may have landed after all: look at the newest version
    /// before trying again (if the store still fails, so will the next try,
    /// and the retry goes on).
    async fn reset(&mut self) {
        if let Some(table) = &mut self.table {
            let _ = table.checkout_latest().await;
        }
    }

    async fn written(&mut self, _epoch: Epoch, prepared: Prepared) -> Result<()> {
        for (doc, version, why) in prepared.refused {
            self.ctx.dead_letter(doc, version, why);
        }
        self.maybe_index().await?;
        self.maybe_index_text().await
    }
}

impl LanceDbSink {
    async fn open_once(&mut self, committed: Epoch) -> Result<()> {
        crate::create_local(&self.uri)?;
        let mut table = self.open_table().await?;
        // Shared with other processes: their epochs are numbered apart from
        // ours. Otherwise only this writer's rows (and rows from before rows
        // said who wrote them): another pipeline sharing the table keeps its
        // epochs.
        if self.ctx.role.rolls_back() {
            let writer = sql_list(std::slice::from_ref(&self.writer));
            table
                .delete(&format!(
                    "{EPOCH} > {committed} AND ({WRITER} = {writer} OR {WRITER} IS NULL)"
                ))
                .await
                .map_err(|e| lance_err("rolling back uncommitted epochs", e))?;
        }
        self.table = Some(table);
        Ok(())
    }

    /// Open the table, or create it. Refuse one whose vectors have another
    /// dimension; give one made before rows said who wrote them its
    /// `sluice_writer` column (empty on the old rows).
    async fn open_table(&self) -> Result<Dataset> {
        let name = &self.config.table;
        let options = self.config.storage_options();
        let mut table = match crate::open(&self.uri, name, &options).await? {
            Some(t) => t,
            None => self.create_table().await?,
        };
        let have: Schema = table.schema().into();
        let column = &self.config.embedding_column;
        if let (Some(h), Some(w)) = (dimension(&have, column), dimension(&self.schema, column)) {
            if h != w {
                return Err(ConnectorError::user(format!(
                    "LanceDB table `{name}` at {} has {h}-dimensional `{column}`, this pipeline makes {w}; refusing to run (use another table)",
                    self.uri
                )));
            }
        }
        // Columns a newer sluice writes (the writer, the lineage): the old
        // rows get nulls.
        let missing: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .filter(|f| f.is_nullable() && have.field_with_name(f.name()).is_err())
            .map(|f| f.as_ref().clone())
            .collect();
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|f| f.name().as_str()).collect();
            let what = format!("adding {} to table `{name}`", names.join(", "));
            table
                .add_columns(
                    NewColumnTransform::AllNulls(Arc::new(Schema::new(missing))),
                    None,
                    None,
                )
                .await
                .map_err(|e| lance_err(what, e))?;
        }
        Ok(table)
    }

    /// An empty table with the sink's schema; if another writer created it
    /// first (a migration's copy and the stream open a new shadow table
    /// together), that one.
    async fn create_table(&self) -> Result<Dataset> {
        let name = &self.config.table;
        let options = self.config.storage_options();
        let params = WriteParams {
            mode: WriteMode::Create,
            store_params: Some(crate::store_params(&options)),
            ..Default::default()
        };
        let empty = RecordBatchIterator::new(std::iter::empty(), self.schema.clone());
        match Dataset::write(empty, crate::table_uri(&self.uri, name).as_str(), Some(params)).await {
            Ok(t) => Ok(t),
            Err(lance::Error::DatasetAlreadyExists { .. }) => crate::open(&self.uri, name, &options)
                .await?
                .ok_or_else(|| ConnectorError::internal(format!("table `{name}` came and went"))),
            Err(e) => Err(lance_err(format!("creating table `{name}`"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a commit whose outcome Lance could not verify (the store
    /// went away mid-commit) stopped the run instead of being retried.
    #[test]
    fn a_commit_of_unknown_outcome_is_retryable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "store down");
        let lance = lance_core::Error::commit_status_unknown_source(3, Box::new(io));
        assert!(lance_err("adding rows", lance).retryable);
        let schema = lance_core::Error::schema("bad");
        assert!(!lance_err("adding rows", schema).retryable);
    }
}
