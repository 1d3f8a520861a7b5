//! A Feast feature repo matching the sink's schema: `feature_store.yaml` and
//! `features.py` (Entity, FileSource over the offline folder, FeatureView).

use std::path::Path;

use arrow::datatypes::Schema;
use sluice_connector_sdk::{ConnectorError, Result};

use crate::config::{feast_type, FeatureStoreSinkConfig, CREATED_TIMESTAMP, EVENT_TIMESTAMP};

fn py_str(s: &str) -> String {
    format!("{s:?}")
}

/// Write the repo into `repo` for sink `name` (the FeatureView's name).
pub fn write_repo(
    repo: &Path,
    project: &str,
    name: &str,
    config: &FeatureStoreSinkConfig,
    offline_dir: &Path,
    input: &Schema,
) -> Result<()> {
    let store = format!(
        "# Written by sluice for sink `{name}`; rewritten on every run.\n\
         project: {project}\n\
         registry: data/registry.db\n\
         provider: local\n\
         offline_store:\n  type: file\n\
         online_store:\n  type: sqlite\n  path: data/online.db\n\
         entity_key_serialization_version: 3\n"
    );
    let mut fields = Vec::new();
    for f in config.features(input) {
        if let Some(t) = feast_type(f.data_type()) {
            fields.push(format!("        Field(name={}, dtype={t}),", py_str(f.name())));
        }
    }
    let keys: Vec<String> = config.entity.iter().map(|k| py_str(k)).collect();
    let py = format!(
        r#""""Feast definitions written by sluice for sink `{name}`; rewritten on every run."""
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource
from feast.types import Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp

entity = Entity(name={entity_name}, join_keys=[{keys}])

source = FileSource(
    name={source_name},
    path={path},
    timestamp_field={event},
    created_timestamp_column={created},
)

{view} = FeatureView(
    name={view_name},
    entities=[entity],
    ttl=timedelta(days=3650),
    schema=[
{fields}
    ],
    source=source,
)
"#,
        entity_name = py_str(&config.entity.join("_")),
        keys = keys.join(", "),
        source_name = py_str(&format!("{name}_source")),
        path = py_str(&offline_dir.to_string_lossy()),
        event = py_str(EVENT_TIMESTAMP),
        created = py_str(CREATED_TIMESTAMP),
        view = name.replace('-', "_"),
        view_name = py_str(name),
        fields = fields.join("\n"),
    );
    std::fs::create_dir_all(repo.join("data"))
        .and_then(|_| std::fs::write(repo.join("feature_store.yaml"), store))
        .and_then(|_| std::fs::write(repo.join("features.py"), py))
        .map_err(|e| {
            ConnectorError::user(format!("writing the Feast repo in {}", repo.display())).with_source(e)
        })
}
