//! A sink's store as a DataFusion table: whatever store it is, read through
//! the sink's own [`SinkTable`] capability.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{StreamExt, TryStreamExt};
use sluice_connector_sdk::read::SinkTable;

/// One partition: the store's whole scan, started when the query runs.
#[derive(Debug)]
struct Scan {
    table: Arc<dyn SinkTable>,
    schema: SchemaRef,
}

impl PartitionStream for Scan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let table = self.table.clone();
        let rows = futures::stream::once(async move { table.scan().await })
            .try_flatten()
            .map_err(|e| DataFusionError::External(Box::new(e)))
            .boxed();
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), rows))
    }
}

/// The DataFusion table for `table`.
pub fn provider(table: Arc<dyn SinkTable>) -> datafusion::error::Result<Arc<StreamingTable>> {
    let schema = table.schema();
    let scan = Arc::new(Scan {
        table,
        schema: schema.clone(),
    });
    Ok(Arc::new(StreamingTable::try_new(schema, vec![scan])?))
}
