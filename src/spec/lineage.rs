//! The lineage a plan stamps on the rows of the sinks that keep it: the
//! pipeline's name, its version (a hash of the source and the stages as
//! written, with what each stage says of itself, so a new model file changes
//! it too), then each stage's own entries.

use sluice_connector_sdk::lineage::{Lineage, PIPELINE_NAME, PIPELINE_VERSION};

use super::yaml::{Node, Value};
use crate::plan::PlannedStage;

/// The lineage of pipeline `name` compiled from `root`.
pub fn of_plan(name: &str, root: &Node, stages: &[PlannedStage]) -> Lineage {
    let facts: Vec<(String, String)> = stages.iter().flat_map(|s| s.config.lineage()).collect();
    let mut text = String::new();
    for key in ["source", "stages"] {
        if let Some((_, node)) = root.get(key) {
            text.push_str(key);
            text.push('=');
            canonical(node, &mut text);
            text.push('\n');
        }
    }
    for (k, v) in &facts {
        text.push_str(&format!("{k}={v}\n"));
    }
    let version = blake3::hash(text.as_bytes()).to_hex()[..16].to_string();
    let mut columns = vec![
        (PIPELINE_NAME.to_string(), name.to_string()),
        (PIPELINE_VERSION.to_string(), version),
    ];
    columns.extend(facts);
    Lineage { columns }
}

/// `node` as text that does not depend on layout, comments or key order.
fn canonical(node: &Node, out: &mut String) {
    match &node.value {
        Value::Scalar { text, .. } => {
            out.push_str(&format!("{text:?}"));
        }
        Value::Seq(items) => {
            out.push('[');
            for item in items {
                canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let mut sorted: Vec<(String, String)> = entries
                .iter()
                .map(|(k, v)| {
                    let mut key = String::new();
                    canonical(k, &mut key);
                    let mut value = String::new();
                    canonical(v, &mut value);
                    (key, value)
                })
                .collect();
            sorted.sort();
            out.push('{');
            for (k, v) in sorted {
                out.push_str(&format!("{k}:{v},"));
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(yaml: &str) -> String {
        let root = crate::spec::yaml::parse(yaml).unwrap();
        of_plan("p", &root, &[])
            .get(PIPELINE_VERSION)
            .unwrap()
            .to_string()
    }

    #[test]
    fn the_version_follows_the_source_and_stages_not_layout_or_sinks() {
        let a =
            version("source: {type: files, path: ./a}\nstages: [{type: chunk, max_tokens: 64}]\nsinks: []\n");
        let same = version(
            "# a comment\nstages:\n  - max_tokens: 64\n    type: chunk\nsource:\n  path: ./a\n  type: files\nsinks: [{type: parquet, path: x}]\n",
        );
        let other = version("source: {type: files, path: ./a}\nstages: [{type: chunk, max_tokens: 65}]\n");
        assert_eq!(a, same);
        assert_ne!(a, other);
    }
}
