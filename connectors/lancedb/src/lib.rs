//! The `lancedb` sink, the embedded default vector store: a LanceDB table in a
//! local folder or under an `s3://` URI.
//!
//! Per epoch: delete the rows of the epoch's doc_ids, add the new rows (tagged
//! with `epoch`), commit. `open(committed)` deletes rows of later epochs. An ANN
//! index (`ivf_pq` or `hnsw`) is built once the table passes `after_rows`; with
//! `full_text`, a full-text index on the text column.
//!
//! - [`config`]: the YAML block, checked against the plan (the dimension too).
//! - [`sink`]: the running sink; [`index`]: its vector and full-text indexes.
//! - [`read`]: the table for `sluice sql`, `vector_search` and `sluice search`.

pub mod config;
pub mod index;
pub mod read;
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
