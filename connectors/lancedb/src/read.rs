//! The table as `sluice sql` and `vector_search` read it (see
//! [`sluice_connector_sdk::read`]).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::{StreamExt, TryStreamExt};
use lancedb::index::scalar::FullTextSearchQuery;
use lancedb::query::{ExecutableQuery, QueryBase};
use lancedb::Table;
use sluice_connector_sdk::read::filter::SqlDialect;
use sluice_connector_sdk::read::{conform, BatchStream, Filter, SinkTable, DISTANCE, SCORE};
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
    /// The sink keeps a full-text index.
    pub full_text: bool,
    /// The distance searches use (the index's; cosine without one).
    pub metric: sluice_connector_sdk::Metric,
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

    async fn nearest(&self, vector: Vec<f32>, k: usize, filter: Option<&Filter>) -> Result<Vec<RecordBatch>> {
        let Some(table) = self.open().await? else {
            return Ok(Vec::new());
        };
        let what = || format!("searching `{}`", self.table);
        let mut query = table
            .vector_search(vector)
            .map_err(err(what()))?
            .distance_type(crate::index::distance(self.metric))
            .limit(k);
        if let Some(f) = filter {
            // Before the search (LanceDB's default), so `k` matching rows come back.
            query = query.only_if(f.to_sql(&LANCE_SQL));
        }
        let rows = query.execute().await.map_err(err(what()))?;
        self.ranked(rows, DISTANCE, what()).await
    }

    fn can_match_text(&self) -> bool {
        self.full_text
    }

    async fn matching(&self, text: &str, k: usize, filter: Option<&Filter>) -> Result<Vec<RecordBatch>> {
        let Some(table) = self.open().await? else {
            return Ok(Vec::new());
        };
        let what = || format!("searching the text of `{}`", self.table);
        let mut query = table
            .query()
            .full_text_search(FullTextSearchQuery::new(text.to_string()))
            .limit(k);
        if let Some(f) = filter {
            query = query.only_if(f.to_sql(&LANCE_SQL));
        }
        let rows = match query.execute().await {
            Ok(rows) => rows,
            // The first epoch builds the index: before it, no row can match.
            Err(e) if self.no_text_index_yet(&table).await => {
                tracing::debug!("no full-text index on `{}` yet: {e}", self.table);
                return Ok(Vec::new());
            }
            Err(e) => return Err(err(what())(e)),
        };
        self.ranked(rows, SCORE, what()).await
    }
}

impl LanceTable {
    /// The rows of a search in the table's schema, with its Float32 `extra`
    /// column (LanceDB's own `_distance` or `_score`) after them.
    async fn ranked(
        &self,
        rows: lancedb::arrow::SendableRecordBatchStream,
        extra: &str,
        what: String,
    ) -> Result<Vec<RecordBatch>> {
        let batches: Vec<RecordBatch> = rows.try_collect().await.map_err(err(what))?;
        let mut fields: Vec<Field> = self.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(extra, DataType::Float32, true));
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        batches.iter().map(|b| conform(b, &schema)).collect()
    }

    async fn no_text_index_yet(&self, table: &Table) -> bool {
        table
            .list_indices()
            .await
            .is_ok_and(|all| !all.iter().any(|i| i.index_type == lancedb::index::IndexType::FTS))
    }
}

fn backticked(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// LanceDB's filter SQL: identifiers in backticks.
const LANCE_SQL: SqlDialect = SqlDialect {
    quote_ident: backticked,
    quote_text: single_quoted,
};
