//! The built-in stages: [`parse`], [`chunk`] and [`sql`]. The stage traits live in
//! the connector SDK ([`sluice_connector_sdk::stage`]), so a stage can also live
//! in its own crate (the `embed` stage does) and be named in the registry only.
//!
//! Per-document failures become [`DeadLetter`](sluice_connector_sdk::DeadLetter)s;
//! an `Err` fails the whole pipeline.

pub mod chunk;
pub mod parse;
pub mod sql;

pub use sluice_connector_sdk::stage::{
    require_column, BufferedTransform, QueryEmbedder, StageConfig, StageContext, StageOutput, StageRunner,
    Transform,
};

pub use chunk::ChunkConfig;
pub use parse::ParseConfig;
pub use sql::SqlConfig;
