//! The table as `sluice sql` and `vector_search` read it (see
//! [`sluice_connector_sdk::read`]).

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::{StreamExt, TryStreamExt};
use lancedb::query::{ExecutableQuery, QueryBase};
use lancedb::Table;
use sluice_connector_sdk::read::{conform, BatchStream, SinkTable};
use sluice_connector_sdk::{ConnectorError, Result};

use crate::StorageOptions;

/// A LanceDB sink's table.
pub struct LanceTable {
    pub uri: String,
    pub table: String,
    pub options: StorageOptions,
    /// What the sink writes (its input, less `op` and `content`, plus `epoch`
    /// and `sluice_writer`).
    pub schema: SchemaRef,
}

impl std::fmt::Debug for LanceTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the storage options: they may hold keys.
        f.debug_struct("LanceTable")
            .field("uri", &self.uri)
            .field("table", &self.table)
            .finish()
    }
}

fn err(what: String) -> impl FnOnce(lancedb::Error) -> ConnectorError {
    move |e| ConnectorError::external(what).with_source(e)
}

impl LanceTable {
    /// The table, or none when the sink has not created it yet.
    async fn open(&self) -> Result<Option<Table>> {
        let db = crate::connect(&self.uri, &self.options).await?;
        match db.open_table(&self.table).execute().await {
            Ok(t) => Ok(Some(t)),
            Err(lancedb::Error::TableNotFound { .. }) => Ok(None),
            Err(e) => Err(err(format!("opening `{}` at {}", self.table, self.uri))(e)),
        }
    }
}

#[async_trait::async_trait]
impl SinkTable for LanceTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn scan(&self) -> Result<BatchStream> {
        let Some(table) = self.open().await? else {
            return Ok(Box::pin(futures::stream::empty()));
        };
        let what = format!("reading `{}`", self.table);
        let rows = table.query().execute().await.map_err(err(what.clone()))?;
        let schema = self.schema.clone();
        Ok(rows
            .map(move |b| b.map_err(err(what.clone())).and_then(|b| conform(&b, &schema)))
            .boxed())
    }

    fn can_search(&self) -> bool {
        true
    }

    async fn nearest(&self, vector: Vec<f32>, k: usize) -> Result<Vec<RecordBatch>> {
        let Some(table) = self.open().await? else {
            return Ok(Vec::new());
        };
        let what = || format!("searching `{}`", self.table);
        table
            .vector_search(vector)
            .map_err(err(what()))?
            .limit(k)
            .execute()
            .await
            .map_err(err(what()))?
            .try_collect()
            .await
            .map_err(err(what()))
    }
}
