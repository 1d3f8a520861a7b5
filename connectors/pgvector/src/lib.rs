//! The `pgvector` sink: chunks and their embeddings into a PostgreSQL table with a
//! `vector(dim)` column, through tokio-postgres and the `pgvector` crate.
//!
//! - [`config`]: the YAML block, validated against the plan (the dimension too).
//! - [`columns`]: which Arrow columns become which PostgreSQL columns.
//! - [`sink`]: per epoch, one transaction: delete by doc_id, then a binary COPY.
//! - [`read`]: the table for `sluice sql` and `vector_search`.
//! - [`tables`]: a model migration's shadow dropped, a view switched.
//! - [`tls`]: `tls: require`, with the web PKI roots and an optional `ca_file`.
//!
//! The table, the extension and an HNSW index are created when missing. At
//! start-up an existing table's vector dimension is checked against the plan.

pub mod columns;
pub mod config;
pub mod read;
pub mod sink;
pub mod tables;
pub mod tls;

pub use config::PgVectorSinkConfig;
