//! The `lancedb` sink, the embedded default vector store: a LanceDB table in a
//! local folder or under an `s3://` URI.
//!
//! The table is a Lance dataset in LanceDB's layout (`<uri>/<table>.lance`),
//! written and read with the `lance` crate itself, so LanceDB's own clients
//! (Python's `lancedb`, for one) open it as one of their tables.
//!
//! Per epoch: delete the rows of the epoch's doc_ids, add the new rows (tagged
//! with `epoch`), commit. `open(committed)` deletes rows of later epochs. An ANN
//! index (`ivf_pq` or `hnsw`) is built once the table passes `after_rows`; with
//! `full_text`, a full-text index on the text column.
//!
//! - [`config`]: the YAML block, checked against the plan (the dimension too).
//! - [`sink`]: the running sink; [`index`]: its vector and full-text indexes.
//! - [`read`]: the table for `sluice sql`, `vector_search` and `sluice search`;
//!   [`cosine`]: the distance scale of a cosine search over an index.

pub mod config;
pub mod cosine;
pub mod index;
pub mod read;
pub mod sink;

use std::collections::HashMap;
use std::sync::Arc;

use lance::dataset::builder::DatasetBuilder;
use lance::io::{ObjectStoreParams, StorageOptionsAccessor};
use lance::Dataset;
use sluice_connector_sdk::{ConnectorError, Result};

pub use config::LanceDbSinkConfig;

/// Options for LanceDB's object store (`aws_endpoint`, `allow_http`, ...), as pairs.
pub type StorageOptions = Vec<(String, String)>;

/// Where LanceDB keeps table `table` of the database at `uri` (a folder or
/// an object-store URI).
pub fn table_uri(uri: &str, table: &str) -> String {
    format!("{}/{table}.lance", uri.trim_end_matches('/'))
}

/// The object-store parameters for `options` (none: Lance's defaults).
pub(crate) fn store_params(options: &StorageOptions) -> ObjectStoreParams {
    let map: HashMap<String, String> = options.iter().cloned().collect();
    ObjectStoreParams {
        storage_options_accessor: (!map.is_empty())
            .then(|| Arc::new(StorageOptionsAccessor::with_static_options(map))),
        ..Default::default()
    }
}

/// Open table `table` of the database at `uri`, or none when it does not exist.
pub async fn open(uri: &str, table: &str, options: &StorageOptions) -> Result<Option<Dataset>> {
    let at = table_uri(uri, table);
    match DatasetBuilder::from_uri(&at)
        .with_storage_options(options.iter().cloned().collect())
        .load()
        .await
    {
        Ok(d) => Ok(Some(d)),
        Err(lance::Error::DatasetNotFound { .. }) => Ok(None),
        Err(e) => Err(sink::lance_err(format!("opening `{table}` at {uri}"), e)),
    }
}

/// Delete table `table` of the database at `uri` (done when it is not there).
pub async fn drop_table(uri: &str, table: &str, options: &StorageOptions) -> Result<()> {
    use lance::io::{ObjectStore, ObjectStoreRegistry};
    let at = table_uri(uri, table);
    let what = || format!("dropping table `{table}` at {uri}");
    let registry = Arc::new(ObjectStoreRegistry::default());
    let (store, path) = ObjectStore::from_uri_and_params(registry, &at, &store_params(options))
        .await
        .map_err(|e| sink::lance_err(what(), e))?;
    match store.remove_dir_all(path).await {
        Ok(()) | Err(lance::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(sink::lance_err(what(), e)),
    }
}

/// A local database folder is created on first use; an object store needs none.
pub(crate) fn create_local(uri: &str) -> Result<()> {
    if uri.contains("://") {
        return Ok(());
    }
    std::fs::create_dir_all(uri)
        .map_err(|e| ConnectorError::user(format!("cannot create {uri}")).with_source(e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_live_where_lancedb_keeps_them() {
        assert_eq!(super::table_uri("/data/db", "chunks"), "/data/db/chunks.lance");
        assert_eq!(super::table_uri("s3://b/db/", "t"), "s3://b/db/t.lance");
    }
}
