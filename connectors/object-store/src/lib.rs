//! sluice connectors built on `object_store`.
//!
//! - [`files`]: the `files` source. It lists a folder or a bucket prefix,
//!   filters with include/exclude globs, keeps a manifest of (doc_id → version) in the
//!   checkpoint, and emits new and changed objects as `upsert` rows and vanished ones
//!   as `delete` rows. `watch: true` lists again every `poll_interval`.
//! - [`parquet`]: the `parquet` sink, a change log with one file per epoch.
//! - [`location`] (from the SDK): turns a local path or a URL (`file://`, `s3://`, `gs://`,
//!   `az://`) into an object store and a prefix.

pub mod files;
pub use sluice_connector_sdk::location;
pub mod parquet;

pub use files::FilesSourceConfig;
pub use parquet::ParquetSinkConfig;
