//! What a sink's store answers besides writes: its rows, for `sluice sql`; the
//! rows nearest to a vector, for `vector_search` and `sluice search`; and the
//! rows that best match a text by the store's own full-text index. Both
//! searches take a [`Filter`] that the store applies before it ranks.
//!
//! A sink offers these through [`crate::SinkConfig::inspect_table`] as
//! [`crate::InspectTable::Store`]; the engine registers the table under the
//! sink's name and never needs to know which store it is.
//!
//! ```
//! use std::sync::Arc;
//! use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
//! use sluice_connector_sdk::read::{BatchStream, SinkTable};
//! use sluice_connector_sdk::Result;
//!
//! #[derive(Debug)]
//! struct Empty(SchemaRef);
//!
//! #[async_trait::async_trait]
//! impl SinkTable for Empty {
//!     fn schema(&self) -> SchemaRef {
//!         self.0.clone()
//!     }
//!     async fn scan(&self) -> Result<BatchStream> {
//!         Ok(Box::pin(futures::stream::empty()))
//!     }
//! }
//! let t = Empty(Arc::new(Schema::new(vec![Field::new("doc_id", DataType::Utf8, true)])));
//! assert!(!t.can_search());
//! ```

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use futures::stream::BoxStream;

use crate::{ConnectorError, Result};

pub mod filter;
pub mod full_text;

pub use filter::Filter;
pub use full_text::FullText;

/// The column `nearest` adds: the distance to the query vector (smaller is nearer).
pub const DISTANCE: &str = "_distance";

/// The column `matching` adds: the store's full-text relevance (larger is better).
pub const SCORE: &str = "_score";

/// Batches of a table, read lazily.
pub type BatchStream = BoxStream<'static, Result<RecordBatch>>;

/// A sink's table as a reader sees it.
#[async_trait::async_trait]
pub trait SinkTable: Send + Sync + std::fmt::Debug {
    /// The schema of every batch [`SinkTable::scan`] yields.
    fn schema(&self) -> SchemaRef;

    /// Every row of the table. A table the sink has not created yet has none.
    async fn scan(&self) -> Result<BatchStream>;

    /// Whether [`SinkTable::nearest`] works: the store holds vectors.
    fn can_search(&self) -> bool {
        false
    }

    /// The `k` rows nearest to `vector` among those `filter` keeps, nearest
    /// first, each with [`DISTANCE`] (Float32) after the table's columns.
    async fn nearest(&self, vector: Vec<f32>, k: usize, filter: Option<&Filter>) -> Result<Vec<RecordBatch>> {
        let _ = (vector, k, filter);
        Err(ConnectorError::user("this sink's store cannot search by vector"))
    }

    /// Whether [`SinkTable::matching`] works: the sink keeps a full-text index
    /// (its `full_text` setting).
    fn can_match_text(&self) -> bool {
        false
    }

    /// The `k` rows among those `filter` keeps that best match `text` by the
    /// store's full-text ranking, best first, each with [`SCORE`] (Float32)
    /// after the table's columns. No row matching is no rows, not an error.
    async fn matching(&self, text: &str, k: usize, filter: Option<&Filter>) -> Result<Vec<RecordBatch>> {
        let _ = (text, k, filter);
        Err(ConnectorError::user(
            "this sink keeps no full-text index; set `full_text: true` on it",
        ))
    }
}

/// `batch` in `schema`: columns by name, cast where the store's type differs,
/// and nulls for a nullable column the table does not have (a table made by an
/// older version).
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => Ok(cast(c, f.data_type())?),
            None if f.is_nullable() => Ok(new_null_array(f.data_type(), batch.num_rows())),
            None => Err(ConnectorError::internal(format!(
                "the table has no column `{}`",
                f.name()
            ))),
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn conform_orders_casts_and_fills_missing_columns() {
        let have = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("n", DataType::Int32, true),
                Field::new("doc_id", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["a", "b"])),
            ],
        )
        .unwrap();
        let want = Arc::new(Schema::new(vec![
            Field::new("doc_id", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("writer", DataType::Utf8, true),
        ]));
        let got = conform(&have, &want).unwrap();
        assert_eq!(got.schema(), want);
        assert_eq!(got.column(2).null_count(), 2);
        let strict = Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, false)]));
        assert!(conform(&have, &strict).is_err());
    }
}
