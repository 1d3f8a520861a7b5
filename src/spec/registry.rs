//! The explicit list of every source, stage and sink type a pipeline can name.
//! Adding a component means adding one line here (with its cargo feature):
//! the `registry!` macro makes the lookup and the list of names from it.

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

/// One lookup function and the list of its type names, from one line per
/// component: `"name" => path::ToConfig, feature "cargo-feature";` (or no
/// feature for a built-in). A component whose feature is off is still known,
/// so the error can say which feature to build with.
macro_rules! registry {
    (
        $(#[$doc:meta])* $types:ident, $lookup:ident, $trait:path, $boxed:ident {
            $( $name:literal => $config:path $(, feature $feature:literal)? ; )*
        }
    ) => {
        $(#[$doc])*
        pub const $types: &[&str] = &[$($name),*];

        #[allow(unused_variables, unreachable_code)]
        pub fn $lookup(kind: &str, node: &Node, issues: &mut Vec<Issue>) -> Lookup<Box<dyn $trait>> {
            match kind {
                $(
                    $name => {
                        $(
                            #[cfg(not(feature = $feature))]
                            return Lookup::NotBuilt(NotBuilt($feature));
                            #[cfg(feature = $feature)]
                        )?
                        return Lookup::Found($boxed::<$config>(node, issues));
                    }
                )*
                _ => Lookup::Unknown,
            }
        }
    };
}

registry! {
    /// Every source type, built in or not.
    SOURCE_TYPES, source, SourceConfig, boxed_source {
        "files" => sluice_object_store::FilesSourceConfig, feature "object-store";
        "kafka" => sluice_kafka::KafkaSourceConfig, feature "kafka";
    }
}

registry! {
    /// Every stage type, built in or not.
    STAGE_TYPES, stage, StageConfig, boxed_stage {
        "parse" => ParseConfig;
        "chunk" => ChunkConfig;
        "embed" => sluice_embed::EmbedConfig, feature "embed";
        "guard" => sluice_guard::GuardConfig, feature "guard";
        "sql" => SqlConfig;
    }
}

registry! {
    /// Every sink type, built in or not.
    SINK_TYPES, sink, SinkConfig, boxed_sink {
        "parquet" => sluice_object_store::ParquetSinkConfig, feature "object-store";
        "pgvector" => sluice_pgvector::PgVectorSinkConfig, feature "pgvector";
        "lancedb" => sluice_lancedb::LanceDbSinkConfig, feature "lancedb";
        "feature_store" => sluice_feature_store::FeatureStoreSinkConfig, feature "feature-store";
        "kafka" => sluice_kafka::KafkaSinkConfig, feature "kafka";
    }
}

#[allow(dead_code)]
fn boxed_source<T: SourceConfig + serde::de::DeserializeOwned + 'static>(
    node: &Node,
    issues: &mut Vec<Issue>,
) -> Option<Box<dyn SourceConfig>> {
    // Partly decoded configs are still validated, so every bad key is reported;
    // the plan is dropped anyway once there is an issue.
    decode_partial::<T>(node, issues).map(|c| Box::new(c.value) as Box<dyn SourceConfig>)
}

#[allow(dead_code)]
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

/// The object-event target for `sluice backfill --emit-to SCHEME://...`, by
/// the URL's scheme (see `sluice_connector_sdk::events`).
#[cfg_attr(not(feature = "kafka"), allow(unused_variables))]
pub fn event_target(scheme: &str) -> Lookup<sluice_connector_sdk::events::EventTargetFactory> {
    match scheme {
        #[cfg(feature = "kafka")]
        "kafka" => Lookup::Found(Some(sluice_kafka::event_target)),
        #[cfg(not(feature = "kafka"))]
        "kafka" => Lookup::NotBuilt(NotBuilt("kafka")),
        _ => Lookup::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Every `.rs` file under `dir`.
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The component crates of the workspace (connectors and stages, all but
    /// the SDK), as Rust names.
    fn component_crates(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let folders = ["connectors", "stages"].map(|d| std::fs::read_dir(root.join(d)).unwrap());
        for entry in folders.into_iter().flatten() {
            let manifest = std::fs::read_to_string(entry.unwrap().path().join("Cargo.toml")).unwrap();
            let name = manifest
                .lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .and_then(|l| l.strip_suffix('"'))
                .unwrap()
                .replace('-', "_");
            if name != "sluice_connector_sdk" {
                out.push(name);
            }
        }
        assert!(
            out.len() >= 6 && out.iter().any(|c| c == "sluice_embed"),
            "{out:?}"
        );
        out
    }

    /// The engine knows components only through this registry and their
    /// capabilities: no file under `src/` but this one names a component
    /// crate (a connector, or a stage in its own crate), and none names the
    /// embed stage (cargo features aside).
    #[test]
    fn only_the_registry_names_a_component() {
        let root = &std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        );
        let crates = component_crates(root);
        let mut files = Vec::new();
        sources(&root.join("src"), &mut files);
        let mut found = Vec::new();
        for file in files {
            let rel = file
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if rel == "src/spec/registry.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let names_crate = crates.iter().any(|c| line.contains(&format!("{c}::")));
                let names_embed = !line.contains("cfg(feature")
                    && ["\"embed\"", "embed::", ".embed.", "EmbedConfig", "EmbedMetrics"]
                        .iter()
                        .any(|p| line.contains(p));
                if names_crate || names_embed {
                    found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
                }
            }
        }
        assert!(
            found.is_empty(),
            "named outside the registry:\n{}",
            found.join("\n")
        );
    }
}
