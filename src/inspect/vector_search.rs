//! `vector_search(sink, 'query text', k)`: embeds the text with the pipeline's own
//! embed stage and returns the `k` nearest rows of a sink whose store can search
//! by vector (LanceDB, pgvector), with `_distance`.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, Result as DfResult, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;

use sluice_connector_sdk::read::SinkTable;

use crate::stages::QueryEmbedder;

/// A sink's table and the model that embeds a query for it.
pub type Searchable = (Arc<dyn SinkTable>, Option<Arc<dyn QueryEmbedder>>);

pub struct VectorSearch {
    /// Sink name → its store, for every sink that can search by vector.
    /// Each searchable sink: the table it is served from and the model that
    /// embeds a query for it (a migration's shadow has its own).
    pub sinks: HashMap<String, Searchable>,
}

impl std::fmt::Debug for VectorSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorSearch")
            .field("sinks", &self.sinks.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn literal_str(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _) => Some(s.clone()),
        Expr::Column(c) => Some(c.name.clone()),
        _ => None,
    }
}

/// The most rows `vector_search` returns: enough for any re-ranking, and
/// bounded so that `k` cannot ask LanceDB for a whole table in memory.
pub const MAX_K: usize = 10_000;

fn literal_k(e: &Expr) -> Option<usize> {
    match e {
        Expr::Literal(ScalarValue::Int64(Some(k)), _) if *k > 0 => Some(*k as usize),
        _ => None,
    }
}

impl TableFunctionImpl for VectorSearch {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let (Some(sink), Some(text), Some(k)) = (
            exprs.first().and_then(literal_str),
            exprs.get(1).and_then(literal_str),
            exprs.get(2).and_then(literal_k),
        ) else {
            return plan_err!(
                "use vector_search(sink, 'query text', k), e.g. vector_search(vectors, 'backpressure', 5)"
            );
        };
        if k > MAX_K {
            return plan_err!("vector_search returns at most {MAX_K} rows; ask for fewer (k = {k})");
        }
        let Some((table, embedder)) = self.sinks.get(&sink).cloned() else {
            let mut names: Vec<&String> = self.sinks.keys().collect();
            names.sort();
            return plan_err!("`{sink}` is not a vector sink of this pipeline; vector sinks: {names:?}");
        };
        let Some(embedder) = embedder else {
            return plan_err!("this pipeline has no embed stage to embed the query with");
        };
        // The model failing is not the query's fault: its error keeps its
        // kind (internal), so `sluice sql` exits 1 with the cause.
        let vector = embedder
            .embed_query(&text)
            .map_err(|e| DataFusionError::External(Box::new(e)).context("embedding the query"))?;
        // A table function is planned synchronously: run the search on its own
        // runtime. The store's error stays an error (External), so `sluice sql`
        // tells a store that failed from a bad query.
        let external = |e: Box<dyn std::error::Error + Send + Sync>| {
            DataFusionError::External(e).context("vector search")
        };
        let batches = std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| external(Box::new(e)))?;
                rt.block_on(table.nearest(vector, k, None))
                    .map_err(|e| external(Box::new(e)))
            })
            .join()
            .map_err(|_| DataFusionError::Internal("the vector search thread panicked".into()))?
        })?;
        let Some(schema) = batches.first().map(|b| b.schema()) else {
            return plan_err!("`{sink}` is empty");
        };
        Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
    }
}
