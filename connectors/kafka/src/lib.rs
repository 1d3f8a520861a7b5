//! sluice's Kafka connectors, on rdkafka (librdkafka).
//!
//! - [`KafkaSourceConfig`], the `kafka` source. In `mode: documents` a message's key
//!   is the doc_id, its value the content, its headers metadata, and a null value
//!   (a tombstone) deletes the document. In `mode: object_events` a message is an
//!   S3 event notification or `{"url": ...}`; the object is fetched through
//!   `sluice-object-store` and ingested (Kafka-triggered ingest).
//! - Offsets: each epoch's snapshot holds the next offset of every partition it
//!   read. The offsets are committed to the consumer group only in
//!   `Source::committed`, after every sink has made the epoch durable, so the
//!   group's offsets are never ahead of the sinks. Processes sharing a `group_id`
//!   split the partitions; a partition that moves to another process is replayed
//!   from its committed offset, and the sinks' idempotent writes absorb the
//!   repeat.
//! - [`KafkaSinkConfig`], the `kafka` sink: rows as JSON, keyed, through the
//!   idempotent producer; an epoch commits once every message is acknowledged.

mod config;
mod emit;
mod events;
mod sink;
mod source;

pub use config::{KafkaSinkConfig, KafkaSourceConfig, SourceMode};
pub use emit::{emit_object_events, event_target};
pub use events::{decode_event, ObjectEvent};
