//! A Feast feature repo matching the sink's schema: `feature_store.yaml` (the
//! online store is the sink's Redis when it writes Feast's layout) and
//! `features.py` (an Entity per key column, FileSource over the offline
//! folder, FeatureView).

use std::path::Path;

use arrow::datatypes::Schema;
use sluice_connector_sdk::{ConnectorError, Result};

use crate::config::{feast_type, FeatureStoreSinkConfig, OnlineLayout, CREATED_TIMESTAMP, EVENT_TIMESTAMP};
use crate::feast_layout::entity_value_type;

/// The `online_store` block: the sink's Redis when it writes Feast's layout,
/// else a local sqlite file. A password is never written here: Feast expands
/// `${REDIS_PASSWORD}` from its environment when it loads the file.
fn online_store(config: &FeatureStoreSinkConfig) -> String {
    let Some(online) = config.online.as_ref().filter(|o| o.layout == OnlineLayout::Feast) else {
        return "online_store:\n  type: sqlite\n  path: data/online.db\n".into();
    };
    let mut conn = String::new();
    if let Ok(url) = url::Url::parse(&online.url) {
        let host = url.host_str().unwrap_or("localhost");
        conn = format!("{host}:{}", url.port().unwrap_or(6379));
        let db = url.path().trim_matches('/');
        if !db.is_empty() {
            conn.push_str(&format!(",db={db}"));
        }
        if !url.username().is_empty() {
            conn.push_str(&format!(",username={}", url.username()));
        }
        if url.password().is_some() {
            conn.push_str(",password=${REDIS_PASSWORD}");
        }
        if url.scheme() == "rediss" {
            conn.push_str(",ssl=true");
        }
    }
    let mut out = format!("online_store:\n  type: redis\n  connection_string: \"{conn}\"\n");
    if let Some(ttl) = online.ttl {
        out.push_str(&format!("  key_ttl_seconds: {}\n", ttl.0.as_secs().max(1)));
    }
    out
}

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
         {online}\
         entity_key_serialization_version: 3\n",
        online = online_store(config),
    );
    let mut fields = Vec::new();
    for f in config.features(input) {
        if let Some(t) = feast_type(f.data_type()) {
            fields.push(format!("        Field(name={}, dtype={t}),", py_str(f.name())));
        }
    }
    // Feast finds definitions by module-level names: one variable per Entity.
    let mut entities = Vec::new();
    let mut names = Vec::new();
    for (i, k) in config.entity.iter().enumerate() {
        let dt = input.field_with_name(k).ok().map(|f| f.data_type().clone());
        let ty = dt
            .as_ref()
            .and_then(entity_value_type)
            .unwrap_or("ValueType.STRING");
        entities.push(format!(
            "entity_{i} = Entity(name={n}, join_keys=[{n}], value_type={ty})",
            n = py_str(k)
        ));
        names.push(format!("entity_{i}"));
        if let Some(t) = dt.as_ref().and_then(feast_type) {
            fields.insert(i, format!("        Field(name={}, dtype={t}),", py_str(k)));
        }
    }
    let py = format!(
        r#""""Feast definitions written by sluice for sink `{name}`; rewritten on every run."""
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp

{entities}

source = FileSource(
    name={source_name},
    path={path},
    timestamp_field={event},
    created_timestamp_column={created},
)

{view} = FeatureView(
    name={view_name},
    entities=[{names}],
    ttl=timedelta(days=3650),
    schema=[
{fields}
    ],
    source=source,
)
"#,
        entities = entities.join("\n"),
        names = names.join(", "),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(online: serde_json::Value) -> FeatureStoreSinkConfig {
        serde_json::from_value(serde_json::json!({"entity": ["doc_id"], "offline": "f", "online": online}))
            .unwrap()
    }

    #[test]
    fn the_online_store_is_the_sinks_redis_and_never_holds_its_password() {
        let yaml = online_store(&config(serde_json::json!({
            "url": "rediss://app:s3cret-canary@cache.internal:6380/2", "ttl": "1h",
        })));
        assert_eq!(
            yaml,
            "online_store:\n  type: redis\n  connection_string: \
             \"cache.internal:6380,db=2,username=app,password=${REDIS_PASSWORD},ssl=true\"\n  \
             key_ttl_seconds: 3600\n"
        );
        let own = online_store(&config(serde_json::json!({
            "url": "redis://127.0.0.1/", "layout": "sluice", "prefix": "p",
        })));
        assert!(own.contains("type: sqlite"), "{own}");
    }
}
