//! The explicit list of every source, stage and sink type a pipeline can name.
//! Adding a connector means adding one line here (behind its cargo feature).

use sluice_connector_sdk::{SinkConfig, SourceConfig};

use super::de::{decode, decode_partial, Issue};
use super::yaml::Node;
use crate::stages::{ChunkConfig, ParseConfig, SqlConfig, StageConfig};

/// A type name that is known but whose cargo feature was left out of this build.
pub struct NotBuilt(pub &'static str);

pub enum Lookup<T> {
    Found(Option<T>),
    NotBuilt(NotBuilt),
    Unknown,
}

/// Every source type, built in or not.
pub const SOURCE_TYPES: &[&str] = &["files", "kafka"];
/// Every stage type.
pub const STAGE_TYPES: &[&str] = &["parse", "chunk", "embed", "sql"];
/// Every sink type, built in or not.
pub const SINK_TYPES: &[&str] = &["parquet", "pgvector", "lancedb", "feature_store", "kafka"];

#[cfg_attr(not(feature = "object-store"), allow(dead_code))]
fn boxed_source<T: SourceConfig + serde::de::DeserializeOwned + 'static>(
    node: &Node,
    issues: &mut Vec<Issue>,
) -> Option<Box<dyn SourceConfig>> {
    // Partly decoded configs are still validated, so every bad key is reported;
    // the plan is dropped anyway once there is an issue.
    decode_partial::<T>(node, issues).map(|c| Box::new(c.value) as Box<dyn SourceConfig>)
}

#[cfg_attr(not(feature = "object-store"), allow(dead_code))]
fn boxed_sink<T: SinkConfig + serde::de::DeserializeOwned + 'static>(
    node: &Node,
    issues: &mut Vec<Issue>,
) -> Option<Box<dyn SinkConfig>> {
    decode_partial::<T>(node, issues).map(|c| Box::new(c.value) as Box<dyn SinkConfig>)
}

fn boxed_stage<T: StageConfig + serde::de::DeserializeOwned + 'static>(
    node: &Node,
    issues: &mut Vec<Issue>,
) -> Option<Box<dyn StageConfig>> {
    decode::<T>(node, issues).map(|c| Box::new(c) as Box<dyn StageConfig>)
}

#[cfg_attr(not(feature = "object-store"), allow(unused_variables))]
pub fn source(kind: &str, node: &Node, issues: &mut Vec<Issue>) -> Lookup<Box<dyn SourceConfig>> {
    match kind {
        #[cfg(feature = "object-store")]
        "files" => Lookup::Found(boxed_source::<sluice_object_store::FilesSourceConfig>(
            node, issues,
        )),
        #[cfg(not(feature = "object-store"))]
        "files" => Lookup::NotBuilt(NotBuilt("object-store")),
        #[cfg(feature = "kafka")]
        "kafka" => Lookup::Found(boxed_source::<sluice_kafka::KafkaSourceConfig>(node, issues)),
        #[cfg(not(feature = "kafka"))]
        "kafka" => Lookup::NotBuilt(NotBuilt("kafka")),
        _ => Lookup::Unknown,
    }
}

pub fn stage(kind: &str, node: &Node, issues: &mut Vec<Issue>) -> Lookup<Box<dyn StageConfig>> {
    match kind {
        "parse" => Lookup::Found(boxed_stage::<ParseConfig>(node, issues)),
        "chunk" => Lookup::Found(boxed_stage::<ChunkConfig>(node, issues)),
        "sql" => Lookup::Found(boxed_stage::<SqlConfig>(node, issues)),
        #[cfg(feature = "embed")]
        "embed" => Lookup::Found(boxed_stage::<crate::stages::embed::EmbedConfig>(node, issues)),
        #[cfg(not(feature = "embed"))]
        "embed" => Lookup::NotBuilt(NotBuilt("embed")),
        _ => Lookup::Unknown,
    }
}

#[cfg_attr(not(feature = "object-store"), allow(unused_variables))]
pub fn sink(kind: &str, node: &Node, issues: &mut Vec<Issue>) -> Lookup<Box<dyn SinkConfig>> {
    match kind {
        #[cfg(feature = "object-store")]
        "parquet" => Lookup::Found(boxed_sink::<sluice_object_store::ParquetSinkConfig>(node, issues)),
        #[cfg(not(feature = "object-store"))]
        "parquet" => Lookup::NotBuilt(NotBuilt("object-store")),
        #[cfg(feature = "pgvector")]
        "pgvector" => Lookup::Found(boxed_sink::<sluice_pgvector::PgVectorSinkConfig>(node, issues)),
        #[cfg(not(feature = "pgvector"))]
        "pgvector" => Lookup::NotBuilt(NotBuilt("pgvector")),
        #[cfg(feature = "lancedb")]
        "lancedb" => Lookup::Found(boxed_sink::<sluice_lancedb::LanceDbSinkConfig>(node, issues)),
        #[cfg(not(feature = "lancedb"))]
        "lancedb" => Lookup::NotBuilt(NotBuilt("lancedb")),
        #[cfg(feature = "feature-store")]
        "feature_store" => Lookup::Found(boxed_sink::<sluice_feature_store::FeatureStoreSinkConfig>(
            node, issues,
        )),
        #[cfg(not(feature = "feature-store"))]
        "feature_store" => Lookup::NotBuilt(NotBuilt("feature-store")),
        #[cfg(feature = "kafka")]
        "kafka" => Lookup::Found(boxed_sink::<sluice_kafka::KafkaSinkConfig>(node, issues)),
        #[cfg(not(feature = "kafka"))]
        "kafka" => Lookup::NotBuilt(NotBuilt("kafka")),
        _ => Lookup::Unknown,
    }
}
