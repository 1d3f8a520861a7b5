//! The table as `sluice sql` and `vector_search` read it (see
//! [`sluice_connector_sdk::read`]).

use std::sync::Arc;

use arrow::array::Float32Array;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use futures::{StreamExt, TryStreamExt};
use lance::dataset::scanner::Scanner;
use lance::Dataset;
use lance_datafusion::exec::{execute_plan, LanceExecutionOptions};
use lance_index::scalar::FullTextSearchQuery;
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
    /// The vector column searches go to.
    pub embedding: String,
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

fn err(what: String) -> impl FnOnce(lance::Error) -> ConnectorError {
    move |e| ConnectorError::external(what).with_source(e)
}

impl LanceTable {
    /// The table, or none when the sink has not created it yet.
    async fn open(&self) -> Result<Option<Dataset>> {
        crate::open(&self.uri, &self.table, &self.options).await
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
        let rows = table.scan().try_into_stream().await.map_err(err(what.clone()))?;
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
        // Lance sizes its candidate lists from k: no more than the table holds.
        let rows = table.count_rows(None).await.map_err(err(what()))?;
        let mut scanner = table.scan();
        scanner
            .nearest(&self.embedding, &Float32Array::from(vector), k.min(rows.max(1)))
            .map_err(err(what()))?
            .distance_metric(crate::index::distance(self.metric));
        // Before the search (LanceDB's default), so `k` matching rows come back.
        self.limit(&mut scanner, k, filter).map_err(err(what()))?;
        self.ranked(&scanner, DISTANCE, what()).await
    }

    fn can_match_text(&self) -> bool {
        self.full_text
    }

    async fn matching(&self, text: &str, k: usize, filter: Option<&Filter>) -> Result<Vec<RecordBatch>> {
        let Some(table) = self.open().await? else {
            return Ok(Vec::new());
        };
        let what = || format!("searching the text of `{}`", self.table);
        let mut scanner = table.scan();
        scanner
            .full_text_search(FullTextSearchQuery::new(text.to_string()))
            .map_err(err(what()))?;
        self.limit(&mut scanner, k, filter).map_err(err(what()))?;
        match self.ranked(&scanner, SCORE, what()).await {
            Ok(rows) => Ok(rows),
            // The first epoch builds the index: before it, no row can match.
            Err(e) if no_text_index(&table).await => {
                tracing::debug!("no full-text index on `{}` yet: {e}", self.table);
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }
}

async fn no_text_index(table: &Dataset) -> bool {
    crate::index::indexes(table)
        .await
        .is_ok_and(|all| !all.iter().any(|i| i.is_full_text()))
}

impl LanceTable {
    /// At most `k` rows, of those `filter` keeps, filtered before the search.
    fn limit(&self, scanner: &mut Scanner, k: usize, filter: Option<&Filter>) -> lance::Result<()> {
        scanner.limit(Some(k as i64), None)?.prefilter(true);
        if let Some(f) = filter {
            scanner.filter(&f.to_sql(&LANCE_SQL))?;
        }
        Ok(())
    }

    /// The rows of a search in the table's schema, with its Float32 `extra`
    /// column (Lance's own `_distance` or `_score`) after them.
    async fn ranked(&self, scanner: &Scanner, extra: &str, what: String) -> Result<Vec<RecordBatch>> {
        let plan = scanner.create_plan().await.map_err(err(what.clone()))?;
        let plan = crate::cosine::normalize(plan).await.map_err(err(what.clone()))?;
        let rows = execute_plan(plan, LanceExecutionOptions::default()).map_err(err(what.clone()))?;
        let batches: Vec<RecordBatch> = rows
            .try_collect()
            .await
            .map_err(|e| ConnectorError::external(what).with_source(e))?;
        let mut fields: Vec<Field> = self.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(extra, DataType::Float32, true));
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        batches.iter().map(|b| conform(b, &schema)).collect()
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
