//! Configuration of the `feature_store` sink.

use std::path::PathBuf;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Deserialize;
use sluice_connector_sdk::{
    ConfigIssue, HumanDuration, InspectTable, PlanContext, Result, Sink, SinkConfig, SinkContext,
};

use crate::sink::FeatureStoreSink;

/// ```yaml
/// sinks:
///   - name: doc_features
///     type: feature_store
///     query: SELECT doc_id, op, count(*) AS chunk_count, max(modified_at) AS event_timestamp FROM input GROUP BY doc_id, op
///     entity: [doc_id]
///     event_timestamp: event_timestamp
///     offline: .sluice/features          # folder, relative to the pipeline file
///     online: {url: redis://127.0.0.1:6379/, ttl: 7d, max_outage: 60s}
///     feast: {repo: .sluice/feast, project: sluice}
/// ```
///
/// Online, the default layout is Feast's (the view is the sink's name, the
/// project `feast.project`), so `get_online_features` reads it; `layout:
/// sluice` with a `prefix` keeps one text hash per entity at `<prefix>:<key>`.
#[derive(Debug, Clone, Deserialize)]
pub struct FeatureStoreSinkConfig {
    pub entity: Vec<String>,
    #[serde(default = "default_event")]
    pub event_timestamp: String,
    pub offline: String,
    #[serde(default)]
    pub online: Option<OnlineSpec>,
    #[serde(default)]
    pub feast: Option<FeastSpec>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnlineLayout {
    #[default]
    Feast,
    Sluice,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OnlineSpec {
    pub url: String,
    #[serde(default)]
    pub layout: OnlineLayout,
    /// `layout: sluice` only: the hash of an entity is `<prefix>:<key>` (keys
    /// joined by `|`).
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub ttl: Option<HumanDuration>,
    /// Retry with backoff this long while Redis is unreachable, holding the epoch.
    #[serde(default = "default_outage")]
    pub max_outage: HumanDuration,
    /// Feast's layout: the Feast project the entities are keyed by, for a repo
    /// sluice does not write (default: `feast.project`, else `sluice`).
    #[serde(default)]
    pub project: Option<String>,
}

fn default_outage() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(60))
}

#[derive(Debug, Clone, Deserialize)]
pub struct FeastSpec {
    pub repo: String,
    #[serde(default = "default_project")]
    pub project: String,
}

fn default_event() -> String {
    "event_timestamp".into()
}
fn default_project() -> String {
    "sluice".into()
}

pub const EVENT_TIMESTAMP: &str = "event_timestamp";
pub const CREATED_TIMESTAMP: &str = "created_timestamp";
/// Input columns that are not features.
pub const NOT_FEATURES: &[&str] = &["op", "epoch"];

pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A feature column's type is one Feast knows.
pub fn feast_type(dt: &DataType) -> Option<&'static str> {
    Some(match dt {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => "Int32",
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "Int64",
        DataType::Float32 => "Float32",
        DataType::Float64 => "Float64",
        DataType::Utf8 | DataType::LargeUtf8 => "String",
        DataType::Boolean => "Bool",
        DataType::Timestamp(_, _) => "UnixTimestamp",
        _ => return None,
    })
}

impl OnlineSpec {
    fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if !self.url.starts_with("redis://") && !self.url.starts_with("rediss://") {
            issues.push(ConfigIssue::new(
                Some("online"),
                format!("`{}` is not a redis:// URL", self.url),
            ));
        }
        match (self.layout, &self.prefix) {
            (OnlineLayout::Sluice, None) => issues.push(
                ConfigIssue::new(Some("online"), "`layout: sluice` needs a `prefix`")
                    .with_hint("e.g. prefix: \"app:docs\"; entities are then `<prefix>:<key>`"),
            ),
            (OnlineLayout::Feast, Some(_)) => issues.push(
                ConfigIssue::new(
                    Some("online"),
                    "`prefix` applies to `layout: sluice`; Feast's layout keys an entity by its key and the Feast project",
                )
                .with_hint("drop `prefix`, or add `layout: sluice` to keep sluice's own keys"),
            ),
            _ => {}
        }
        if self.layout == OnlineLayout::Sluice && self.project.is_some() {
            issues.push(ConfigIssue::new(
                Some("online"),
                "`project` applies to Feast's layout; `layout: sluice` keys entities by `prefix`",
            ));
        }
        issues
    }
}

impl FeatureStoreSinkConfig {
    /// The Feast project: `online.project`, `feast.project`, or `sluice`.
    pub fn project(&self) -> &str {
        let online = self.online.as_ref().and_then(|o| o.project.as_deref());
        online.unwrap_or_else(|| self.feast.as_ref().map_or("sluice", |f| f.project.as_str()))
    }

    /// Feature columns: everything but the entity keys, the timestamp and `op`.
    pub fn features<'a>(&self, input: &'a Schema) -> Vec<&'a Field> {
        input
            .fields()
            .iter()
            .map(|f| f.as_ref())
            .filter(|f| {
                !self.entity.contains(f.name())
                    && f.name() != &self.event_timestamp
                    && !NOT_FEATURES.contains(&f.name().as_str())
            })
            .collect()
    }

    /// The offline files' schema: entity keys, event and created timestamps, features.
    pub fn offline_schema(&self, input: &Schema) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .entity
            .iter()
            .filter_map(|k| input.field_with_name(k).ok().cloned())
            .collect();
        fields.push(Field::new(EVENT_TIMESTAMP, timestamp_type(), false));
        fields.push(Field::new(CREATED_TIMESTAMP, timestamp_type(), false));
        fields.extend(self.features(input).into_iter().cloned());
        std::sync::Arc::new(Schema::new(fields))
    }

    pub fn offline_dir(&self, base_dir: &std::path::Path) -> PathBuf {
        base_dir.join(self.offline.strip_prefix("file://").unwrap_or(&self.offline))
    }
}

impl SinkConfig for FeatureStoreSinkConfig {
    fn validate(&self, _ctx: &PlanContext, input: &Schema) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.entity.is_empty() {
            issues.push(ConfigIssue::new(
                Some("entity"),
                "name at least one entity key column",
            ));
        }
        for k in &self.entity {
            match input.field_with_name(k).map(|f| f.data_type()) {
                Ok(DataType::Utf8 | DataType::LargeUtf8 | DataType::Int64 | DataType::Int32) => {}
                Ok(other) => issues.push(ConfigIssue::new(
                    Some("entity"),
                    format!("key `{k}` is {other}; use text or an integer"),
                )),
                Err(_) => issues.push(
                    ConfigIssue::new(Some("entity"), format!("the input has no column `{k}`"))
                        .with_hint("shape the input with this sink's `query`"),
                ),
            }
        }
        match input
            .field_with_name(&self.event_timestamp)
            .map(|f| f.data_type())
        {
            Ok(DataType::Timestamp(_, _)) => {}
            Ok(other) => issues.push(ConfigIssue::new(
                Some("event_timestamp"),
                format!("`{}` is {other}, it must be a timestamp", self.event_timestamp),
            )),
            Err(_) => issues.push(ConfigIssue::new(
                Some("event_timestamp"),
                format!("the input has no column `{}`", self.event_timestamp),
            )),
        }
        for f in self.features(input) {
            if feast_type(f.data_type()).is_none() {
                issues.push(
                    ConfigIssue::new(
                        None,
                        format!(
                            "feature `{}` is {}, which Feast cannot read",
                            f.name(),
                            f.data_type()
                        ),
                    )
                    .with_hint("cast it or leave it out in this sink's `query`"),
                );
            }
        }
        if let Some(o) = &self.online {
            issues.extend(o.validate());
            let feast = self.feast.as_ref().map(|f| f.project.as_str());
            if let (Some(online), Some(feast)) = (o.project.as_deref(), feast) {
                if online != feast {
                    issues.push(
                        ConfigIssue::new(
                            Some("online"),
                            format!("project `{online}` is not the Feast repo's `{feast}`: Feast would read nothing"),
                        )
                        .with_hint("name the project once, in `feast.project`"),
                    );
                }
            }
        }
        issues
    }

    fn inspect_table(&self, ctx: &SinkContext, input: &SchemaRef) -> Option<InspectTable> {
        let dir = self.offline_dir(&ctx.base_dir);
        std::fs::create_dir_all(&dir).ok()?;
        let dir = std::fs::canonicalize(dir).ok()?;
        Some(InspectTable::ParquetDataset {
            url: format!("file://{}/", dir.display()),
            schema: self.offline_schema(input),
            partitions: vec!["date".into()],
        })
    }

    fn build(&self, ctx: &SinkContext, input: SchemaRef) -> Result<Box<dyn Sink>> {
        let store = FeatureStoreSink::new(self.clone(), ctx, input)?;
        Ok(Box::new(sluice_connector_sdk::writer::BufferedSink::new(
            &ctx.name, store,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(online: serde_json::Value) -> Vec<String> {
        let config: FeatureStoreSinkConfig = serde_json::from_value(
            serde_json::json!({"entity": ["doc_id"], "offline": "f", "online": online}),
        )
        .unwrap();
        let input = Schema::new(vec![
            Field::new("doc_id", DataType::Utf8, false),
            Field::new(EVENT_TIMESTAMP, timestamp_type(), false),
        ]);
        (config.validate(&PlanContext::new("/"), &input).into_iter())
            .map(|i| format!("{} ({})", i.message, i.hint.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn a_prefix_belongs_to_sluices_layout_and_that_layout_needs_one() {
        let url = "redis://127.0.0.1:6379/";
        assert_eq!(issues(serde_json::json!({"url": url})), Vec::<String>::new());
        assert_eq!(
            issues(serde_json::json!({"url": url, "layout": "sluice", "prefix": "p"})),
            Vec::<String>::new()
        );
        // A pipeline written before Feast's layout was the default says how to keep its keys.
        let old = issues(serde_json::json!({"url": url, "prefix": "p"}));
        assert!(
            old.len() == 1 && old[0].contains("add `layout: sluice`"),
            "{old:?}"
        );
        let bare = issues(serde_json::json!({"url": url, "layout": "sluice"}));
        assert!(
            bare.len() == 1 && bare[0].contains("needs a `prefix`"),
            "{bare:?}"
        );
    }

    #[test]
    fn the_feast_project_is_named_once() {
        let config = |v: serde_json::Value| -> FeatureStoreSinkConfig {
            let mut c =
                serde_json::json!({"entity": ["doc_id"], "offline": "f", "online": {"url": "redis://h/"}});
            c.as_object_mut().unwrap().extend(v.as_object().unwrap().clone());
            serde_json::from_value(c).unwrap()
        };
        assert_eq!(config(serde_json::json!({})).project(), "sluice");
        let repo = serde_json::json!({"feast": {"repo": "r", "project": "shop"}});
        assert_eq!(config(repo.clone()).project(), "shop");
        // A repo sluice does not write: the project on the online block.
        let own = serde_json::json!({"online": {"url": "redis://h/", "project": "theirs"}});
        assert_eq!(config(own).project(), "theirs");
        let url = "redis://127.0.0.1:6379/";
        assert_eq!(
            issues(serde_json::json!({"url": url, "project": "a"})),
            Vec::<String>::new()
        );
        let sluice =
            issues(serde_json::json!({"url": url, "layout": "sluice", "prefix": "p", "project": "a"}));
        assert!(
            sluice.len() == 1 && sluice[0].contains("applies to Feast's layout"),
            "{sluice:?}"
        );
        let mut clash = config(repo);
        clash.online.as_mut().unwrap().project = Some("other".into());
        let input = Schema::new(vec![
            Field::new("doc_id", DataType::Utf8, false),
            Field::new(EVENT_TIMESTAMP, timestamp_type(), false),
        ]);
        let found = clash.validate(&PlanContext::new("/"), &input);
        assert!(
            found
                .iter()
                .any(|i| i.message.contains("Feast would read nothing")),
            "{found:?}"
        );
    }
}
