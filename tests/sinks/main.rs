//! The vector and feature-store sinks against real servers (PostgreSQL + pgvector,
//! Redis, LanceDB embedded and on S3), read back through each sink's own client;
//! search over the vector sinks through the CLI and the daemon's API.

#[path = "../util.rs"]
mod util;

mod common;
mod eval;
mod feature_store;
mod guard;
#[path = "../daemon/harness.rs"]
#[allow(dead_code)]
mod harness;
mod lancedb;
mod lineage;
mod migrate;
mod pgvector;
mod search;
