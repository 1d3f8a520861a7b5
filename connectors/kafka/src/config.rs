//! Configuration of the `kafka` source and sink.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::datatypes::{Schema, SchemaRef};
use rdkafka::ClientConfig;
use serde::Deserialize;
use sluice_connector_sdk::{
    ByteSize, ConfigIssue, ConnectorError, HumanDuration, PlanContext, Result, Sink, SinkConfig, SinkContext,
    Source, SourceConfig, SourceContext,
};

use crate::sink::KafkaSink;
use crate::source::KafkaSource;

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceMode {
    /// Key = doc_id, value = content, headers = metadata, null value = delete.
    Documents,
    /// The value names an object (S3 event notification or `{"url": ...}`); the
    /// object is fetched and ingested.
    ObjectEvents,
}

/// ```yaml
/// source:
///   type: kafka
///   brokers: 127.0.0.1:9092
///   topics: [docs]
///   group_id: sluice-docs     # processes with the same group split the partitions
///   mode: documents           # or object_events
///   start: earliest           # where a group without committed offsets begins: earliest | latest
///   stop_at_end: false        # true: finish once caught up with the end offsets (a bounded run)
///   batch_size: 256           # messages per batch at most
///   batch_timeout: 100ms      # emit a partial batch after this long
///   max_message_size: 64MB    # larger values go to the dead-letter store
///   options: {}               # librdkafka properties, e.g. security.protocol
///   # object_events only:
///   allow: [s3://bucket/incoming/]  # required: only objects under these URL
///                             # prefixes are fetched; any other is a dead letter
///   storage_options: {}       # as the files source's, for fetching the objects
///   read_concurrency: 8
/// ```
#[derive(Debug, Clone, Deserialize)]
pub struct KafkaSourceConfig {
    pub brokers: String,
    pub topics: Vec<String>,
    pub group_id: String,
    #[serde(default = "default_mode")]
    pub mode: SourceMode,
    #[serde(default = "default_start")]
    pub start: String,
    #[serde(default)]
    pub stop_at_end: bool,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_batch_timeout")]
    pub batch_timeout: HumanDuration,
    #[serde(default = "default_max_message_size")]
    pub max_message_size: ByteSize,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub storage_options: BTreeMap<String, String>,
    #[serde(default = "default_read_concurrency")]
    pub read_concurrency: usize,
    /// object_events: the URL prefixes objects may be fetched from.
    #[serde(default)]
    pub allow: Vec<String>,
}

fn default_mode() -> SourceMode {
    SourceMode::Documents
}
fn default_start() -> String {
    "earliest".into()
}
fn default_batch_size() -> usize {
    256
}
fn default_batch_timeout() -> HumanDuration {
    HumanDuration(Duration::from_millis(100))
}
fn default_max_message_size() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_read_concurrency() -> usize {
    8
}

/// A librdkafka client config: brokers, then the user's options over ours.
pub(crate) fn client_config(
    brokers: &str,
    ours: &[(&str, &str)],
    theirs: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in ours {
        c.set(*k, *v);
    }
    for (k, v) in theirs {
        c.set(k, v);
    }
    c
}

/// `message` with every option value taken out: librdkafka echoes a value it
/// refuses, and options carry passwords (`sasl.password: ${KAFKA_PASSWORD}`).
pub(crate) fn redact(message: &str, options: &BTreeMap<String, String>) -> String {
    let mut values: Vec<&str> = options
        .values()
        .map(String::as_str)
        .filter(|v| v.len() >= 3)
        .collect();
    // Longest first, so a value that contains another is taken out whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values
        .into_iter()
        .fold(message.to_string(), |m, v| m.replace(v, "<redacted>"))
}

/// Check options by building a client (librdkafka validates every property).
fn check_options<T: rdkafka::config::FromClientConfig>(
    c: &ClientConfig,
    options: &BTreeMap<String, String>,
) -> Option<ConfigIssue> {
    c.create::<T>().err().map(|e| {
        ConfigIssue::new(
            Some("options"),
            format!(
                "librdkafka refuses the client settings: {}",
                redact(&e.to_string(), options)
            ),
        )
        .with_hint("options are librdkafka properties, see its CONFIGURATION.md")
    })
}

impl KafkaSourceConfig {
    pub(crate) fn client(&self) -> ClientConfig {
        client_config(
            &self.brokers,
            &[
                ("group.id", &self.group_id),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", &self.start),
                ("enable.partition.eof", "false"),
                ("session.timeout.ms", "10000"),
                // Consumer lag for the metrics (KafkaSource::lag).
                ("statistics.interval.ms", "5000"),
            ],
            &self.options,
        )
    }
}

impl SourceConfig for KafkaSourceConfig {
    /// Its own consumer group (`<group_id>-backfill`), to the end of every
    /// partition; `--from-beginning` starts a new group at the earliest offset.
    fn backfill(&self, options: &sluice_connector_sdk::BackfillOptions) -> Result<Box<dyn SourceConfig>> {
        if options.prefix.is_some() || options.since_ms.is_some() || options.until_ms.is_some() {
            return Err(ConnectorError::user(
                "--prefix, --since and --until apply to files sources; a Kafka backfill reads whole partitions",
            ));
        }
        let mut bounded = self.clone();
        bounded.group_id = format!("{}-backfill", self.group_id);
        bounded.stop_at_end = true;
        if options.from_beginning {
            bounded.start = "earliest".into();
        }
        if let Some(n) = options.concurrency {
            bounded.read_concurrency = n.max(1);
        }
        Ok(Box::new(bounded))
    }

    fn validate(&self, _ctx: &PlanContext) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.topics.is_empty() {
            issues.push(ConfigIssue::new(Some("topics"), "name at least one topic"));
        }
        if self.group_id.trim().is_empty() {
            issues.push(ConfigIssue::new(Some("group_id"), "must not be empty"));
        }
        if !["earliest", "latest"].contains(&self.start.as_str()) {
            issues.push(ConfigIssue::new(
                Some("start"),
                format!("`{}`: use earliest or latest", self.start),
            ));
        }
        for (key, n) in [
            ("batch_size", self.batch_size),
            ("read_concurrency", self.read_concurrency),
        ] {
            if n == 0 {
                issues.push(ConfigIssue::new(Some(key), "must be at least 1"));
            }
        }
        if self.mode == SourceMode::Documents && !self.storage_options.is_empty() {
            issues.push(ConfigIssue::new(
                Some("storage_options"),
                "storage_options are for mode: object_events",
            ));
        }
        match self.mode {
            SourceMode::ObjectEvents if self.allow.is_empty() => issues.push(
                ConfigIssue::new(
                    None,
                    "mode: object_events needs `allow`: the URL prefixes objects may be fetched from",
                )
                .with_hint("e.g. `allow: [s3://my-bucket/incoming/]`; an event naming anything else is a dead letter"),
            ),
            SourceMode::ObjectEvents => {
                for prefix in &self.allow {
                    if let Err(e) = crate::events::check_prefix(prefix) {
                        issues.push(ConfigIssue::new(Some("allow"), e.to_string()));
                    }
                }
            }
            SourceMode::Documents if !self.allow.is_empty() => {
                issues.push(ConfigIssue::new(Some("allow"), "allow is for mode: object_events"))
            }
            SourceMode::Documents => {}
        }
        issues.extend(check_options::<rdkafka::consumer::BaseConsumer>(
            &self.client(),
            &self.options,
        ));
        issues
    }

    fn build(&self, ctx: &SourceContext) -> Result<Box<dyn Source>> {
        Ok(Box::new(KafkaSource::new(self.clone(), ctx.clone())?))
    }

    fn shares_sinks(&self) -> bool {
        true
    }
}

/// ```yaml
/// sinks:
///   - name: downstream
///     type: kafka
///     brokers: 127.0.0.1:9092
///     topic: chunks
///     key: chunk_id        # the column that keys each message; default chunk_id, else doc_id
///     options: {}          # librdkafka producer properties
/// ```
///
/// Each row becomes one JSON object. The producer is idempotent (no duplicates
/// from its own retries); an epoch commits once every message is acknowledged by
/// all in-sync replicas. A replayed epoch is produced again with the same keys,
/// so readers of a compacted topic, or readers that keep the last value per key,
/// see each row once.
#[derive(Debug, Clone, Deserialize)]
pub struct KafkaSinkConfig {
    pub brokers: String,
    pub topic: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl KafkaSinkConfig {
    /// The key column for `input`.
    pub(crate) fn key_column(&self, input: &Schema) -> String {
        self.key.clone().unwrap_or_else(|| {
            if input.field_with_name("chunk_id").is_ok() {
                "chunk_id".into()
            } else {
                "doc_id".into()
            }
        })
    }

    pub(crate) fn client(&self) -> ClientConfig {
        client_config(
            &self.brokers,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("message.timeout.ms", "120000"),
            ],
            &self.options,
        )
    }
}

impl SinkConfig for KafkaSinkConfig {
    fn validate(&self, _ctx: &PlanContext, input: &Schema) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.topic.trim().is_empty() {
            issues.push(ConfigIssue::new(Some("topic"), "must not be empty"));
        }
        let key = self.key_column(input);
        if input.field_with_name(&key).is_err() {
            let names: Vec<_> = input.fields().iter().map(|f| f.name().as_str()).collect();
            issues.push(ConfigIssue::new(
                Some("key"),
                format!("the input has no column `{key}`; it has {}", names.join(", ")),
            ));
        }
        issues.extend(check_options::<rdkafka::producer::BaseProducer>(
            &self.client(),
            &self.options,
        ));
        issues
    }

    fn build(&self, ctx: &SinkContext, input: SchemaRef) -> Result<Box<dyn Sink>> {
        Ok(Box::new(KafkaSink::new(self.clone(), ctx, input)?))
    }
}
