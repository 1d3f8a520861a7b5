//! Exactly once across the whole product: the quickstart-shaped pipeline (files →
//! parse → chunk → embed → Parquet, LanceDB, pgvector, feature store with Redis)
//! under `kill -9`, and incremental re-runs, each checked against every sink
//! through the sink's own client.

#[path = "../util.rs"]
mod util;

mod corpus;
mod crash;
mod incremental;
mod outages;
mod sinks;
