//! The `lancedb` sink, the embedded default vector store: a LanceDB table in a
//! local folder or under an `s3://` URI.
//!
//! Per epoch: delete the rows of the epoch's doc_ids, add the new rows (tagged
//! with `epoch`), commit. `open(committed)` deletes rows of later epochs. An ANN
//! index (`ivf_pq` or `hnsw`) is built once the table passes `after_rows`.
//!
//! - [`config`]: the YAML block, checked against the plan (the dimension too).
//! - [`sink`]: the running sink.

pub mod config;
pub mod sink;

pub use config::LanceDbSinkConfig;

/// Options for LanceDB's object store (`aws_endpoint`, `allow_http`, ...), as pairs.
pub type StorageOptions = Vec<(String, String)>;

/// Connect to the LanceDB database at `uri`, a folder or an `s3://` URI.
pub async fn connect(
    uri: &str,
    options: &StorageOptions,
) -> sluice_connector_sdk::Result<lancedb::Connection> {
    lancedb::connect(uri)
        .storage_options(options.iter().cloned())
        .execute()
        .await
        .map_err(|e| {
            sluice_connector_sdk::ConnectorError::external(format!("LanceDB at {uri}")).with_source(e)
        })
}

/// The LanceDB table `table` at `uri` as a DataFusion table, for `sluice sql`.
pub async fn table_provider(
    uri: &str,
    options: &StorageOptions,
    table: &str,
) -> sluice_connector_sdk::Result<std::sync::Arc<lancedb::table::datafusion::BaseTableAdapter>> {
    let err = |what: String| {
        move |e: lancedb::Error| sluice_connector_sdk::ConnectorError::external(what).with_source(e)
    };
    let db = connect(uri, options).await?;
    let t = db
        .open_table(table)
        .execute()
        .await
        .map_err(err(format!("opening `{table}` at {uri}")))?;
    let adapter = lancedb::table::datafusion::BaseTableAdapter::try_new(t.base_table().clone())
        .await
        .map_err(err(format!("reading `{table}`")))?;
    Ok(std::sync::Arc::new(adapter))
}

/// A nearest-neighbour search of `vector` in the table, `k` rows with `_distance`.
pub async fn vector_search(
    uri: &str,
    options: &StorageOptions,
    table: &str,
    vector: Vec<f32>,
    k: usize,
) -> sluice_connector_sdk::Result<Vec<arrow::record_batch::RecordBatch>> {
    use futures::TryStreamExt;
    use lancedb::query::{ExecutableQuery, QueryBase};
    let err = |what: &'static str| {
        move |e: lancedb::Error| sluice_connector_sdk::ConnectorError::external(what).with_source(e)
    };
    let db = connect(uri, options).await?;
    let t = db
        .open_table(table)
        .execute()
        .await
        .map_err(err("opening the table"))?;
    t.vector_search(vector)
        .map_err(err("vector search"))?
        .limit(k)
        .execute()
        .await
        .map_err(err("vector search"))?
        .try_collect()
        .await
        .map_err(err("vector search"))
}
