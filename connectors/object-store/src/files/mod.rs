//! The `files` source: a folder of documents, listed once or watched.

mod config;
mod manifest;
mod source;
mod walk;

pub use config::FilesSourceConfig;
pub use manifest::Manifest;
pub use sluice_connector_sdk::detect::content_type;
pub use source::FilesSource;
