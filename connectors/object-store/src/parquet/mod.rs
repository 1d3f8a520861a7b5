//! The `parquet` sink: a change log with one Parquet file per epoch.
//!
//! Every row keeps its `op` and `version` and gains an `epoch` column, so readers
//! can rebuild the current state (the newest epoch of each document, deletes left
//! out) or read the whole history.

mod config;
mod sink;

pub use config::ParquetSinkConfig;
pub use sink::{ParquetSink, EPOCH_COLUMN};

#[cfg(test)]
mod tests;
