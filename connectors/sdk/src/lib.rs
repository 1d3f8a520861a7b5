//! The contract between the sluice engine and its connectors.
//!
//! A pipeline moves Arrow [`RecordBatch`](arrow::record_batch::RecordBatch)es from one
//! [`Source`] through stages into one or more [`Sink`]s. The engine drives both sides;
//! connectors only implement these traits and never reach into engine internals.
//!
//! - [`Message`]: what flows on every hop: batches, `Barrier(epoch)` and `End`.
//! - [`Source`] / [`SourceConfig`]: a source produces batches and snapshots its position
//!   when the engine cuts an epoch.
//! - [`Sink`] / [`SinkConfig`]: a sink writes batches and makes an epoch durable on
//!   `commit`. On open it rolls back anything newer than the last checkpoint.
//! - [`ConnectorError`]: says whose fault a failure is and whether a retry can help.
//! - [`documents`]: the column names and schema of the `documents` batch, and
//!   `to_batch` for sources that build one from rows.
//! - [`epoch_log`]: one Parquet file per epoch with atomic publish and rollback; the
//!   Parquet sink, stage taps and the dead-letter store all write through it.
//! - [`replace`]: the rows a document-replacing sink writes for an epoch, and an
//!   epoch's net effect per document for a change log.
//! - [`refuse`]: bisecting a write that a store refused for one record's content,
//!   so only that document becomes a dead letter.
//! - [`events`]: object events a connector can carry for `sluice backfill --emit-to`.
//! - [`location`]: a local path or a URL (`file://`, `s3://`, `gs://`, `az://`)
//!   as an object store and a prefix; [`detect`]: a document's content type.
//! - [`read`]: what a sink's store answers besides writes (its rows for SQL,
//!   vector and full-text search with a filter pushed into the store), so the
//!   engine reads and searches every store the same way.
//! - [`lineage`]: what made a row (pipeline version, chunker, model),
//!   stamped on every row of a sink that keeps it.
//! - [`vectors`]: the embedding column's type, and building one from vectors.
//! - [`writer`]: one buffered, retrying sink ([`writer::BufferedSink`]) for a
//!   store that implements only its set-up, rollback and epoch write
//!   ([`writer::EpochWriter`]).
//! - [`stage`]: the stage traits ([`stage::StageConfig`], [`stage::Transform`],
//!   [`stage::BufferedTransform`]), so a stage can live in its own crate;
//!   [`metrics`]: a stage's counters and the series it adds of its own.
//! - [`testkit`] (for connectors' tests): checks every sink must pass (replay
//!   is idempotent, rollback works). Always compiled, not behind a feature: a
//!   feature that only tests turn on would make the test build recompile the
//!   SDK and every crate above it after the quickstart's build of the binary.

pub mod backfill;
pub mod config;
pub mod detect;
pub mod documents;
pub mod epoch_log;
pub mod error;
pub mod events;
pub mod lineage;
pub mod location;
pub mod message;
pub mod metrics;
pub mod read;
pub mod refuse;
pub mod replace;
pub mod retry;
pub mod sink;
pub mod source;
pub mod stage;
pub mod testkit;
pub mod units;
pub mod vectors;
pub mod writer;

pub use backfill::{BackfillOptions, ListedObject};
pub use config::{ConfigIssue, InspectTable, Metric, PlanContext, SinkConfig, SourceConfig};
pub use error::{ConnectorError, ErrorKind, Result};
pub use message::{Epoch, Message};
pub use sink::{Sink, SinkContext, SinkRole};
pub use source::{DeadLetter, Source, SourceContext, SourceProgress};
pub use units::{ByteSize, HumanDuration};
