//! The `files` source: a folder of documents, listed once or watched.

mod config;
mod detect;
mod manifest;
mod source;
mod walk;

pub use config::FilesSourceConfig;
pub use detect::content_type;
pub use manifest::Manifest;
pub use source::FilesSource;
