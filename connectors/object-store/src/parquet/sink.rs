//! The running `parquet` sink.

use std::sync::Arc;

use arrow::array::{ArrayRef, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use sluice_connector_sdk::documents::DOC_ID;
use sluice_connector_sdk::epoch_log::{EpochLog, EpochLogWriter};
use sluice_connector_sdk::replace::epoch_net;
use sluice_connector_sdk::{Epoch, Result, Sink};

use crate::location::Location;

/// The column the sink adds to every row.
pub const EPOCH_COLUMN: &str = "epoch";

/// Writes each epoch's rows to `<stem>-<n>.parquet` under its folder. With a
/// `doc_id` column the epoch is held until its barrier and written as its net
/// effect per document ([`epoch_net`]); without one, rows stream through.
pub struct ParquetSink {
    writer: EpochLogWriter,
    schema: SchemaRef,
    /// The epoch's rows, when documents are collapsed.
    pending: Option<Vec<RecordBatch>>,
}

/// The input columns plus `epoch`.
pub fn output_schema(input: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(EPOCH_COLUMN, DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}

impl ParquetSink {
    /// `stem` names this writer's epoch files (`SinkContext::epoch_stem`).
    pub fn new(location: Location, input: SchemaRef, stem: String) -> Self {
        let schema = output_schema(&input);
        let local_dir = (!location.remote)
            .then(|| url::Url::parse(&location.url).ok()?.to_file_path().ok())
            .flatten();
        let mut log = EpochLog::new(location.store, location.prefix).with_stem(stem);
        if let Some(dir) = local_dir {
            log = log.with_local_dir(dir);
        }
        let per_document = input.field_with_name(DOC_ID).is_ok();
        Self {
            writer: EpochLogWriter::new(log, schema.clone()),
            schema,
            pending: per_document.then(Vec::new),
        }
    }
}

#[async_trait::async_trait]
impl Sink for ParquetSink {
    async fn open(&mut self, committed: Epoch) -> Result<()> {
        let removed = self.writer.log().rollback(committed).await?;
        if removed > 0 {
            tracing::info!(
                removed,
                committed,
                "parquet sink rolled back files of uncheckpointed epochs"
            );
        }
        Ok(())
    }

    async fn write(&mut self, epoch: Epoch, batch: RecordBatch) -> Result<()> {
        match &mut self.pending {
            Some(pending) => {
                pending.push(batch);
                Ok(())
            }
            None => self.append(epoch, batch).await,
        }
    }

    async fn commit(&mut self, epoch: Epoch) -> Result<()> {
        if let Some(pending) = self.pending.as_mut() {
            let batches = epoch_net(&std::mem::take(pending), DOC_ID)?;
            for b in batches {
                self.append(epoch, b).await?;
            }
        }
        self.writer.commit(epoch).await
    }
}

impl ParquetSink {
    async fn append(&mut self, epoch: Epoch, batch: RecordBatch) -> Result<()> {
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.push(Arc::new(UInt64Array::from(vec![epoch; batch.num_rows()])));
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.writer.write(epoch, &batch).await
    }
}
