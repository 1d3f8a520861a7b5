//! The vector and feature-store sinks against real servers (PostgreSQL + pgvector,
//! Redis, LanceDB embedded and on S3), read back through each sink's own client.

#[path = "../util.rs"]
mod util;

mod common;
mod feature_store;
mod lancedb;
mod lineage;
mod pgvector;
