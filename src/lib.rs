//! sluice: a streaming ingest engine for AI data.
//!
//! A pipeline file ([`spec`]) compiles into a validated [`plan::Plan`]: a source, an
//! ordered list of stages and one or more sinks, with the Arrow schema after every
//! stage known before anything runs. The [`runtime`] runs it as tokio tasks joined
//! by bounded channels (rows and bytes), so a slow sink slows the source and memory
//! stays flat. Batches flow as `Message::{Batch, Barrier(epoch), End}`.
//!
//! Exactly-once comes from [`checkpoint`]: the source cuts epochs with barriers,
//! every sink makes an epoch durable and acks it, and only then is the checkpoint
//! written. A restart rolls sinks back to the checkpoint and replays from the
//! source position stored in it; chunk ids are deterministic and sinks replace a
//! document's rows as a whole, so a replay changes nothing.
//!
//! - [`stages`]: `parse` (text, Markdown, HTML, PDF, JSON, JSONL), `chunk`
//!   (token-aware, tokenizes once), `sql` (DataFusion, planned once).
//! - [`dlq`]: documents that failed, with the reason; the pipeline goes on.
//! - [`inspect`]: stage taps and the DataFusion catalog behind `sluice sql`.
//! - [`daemon`]: `sluice daemon`, one supervisor per pipeline file, hot reload,
//!   and the HTTP API with Prometheus metrics.
//! - Connectors live in their own crates under `connectors/` and implement the
//!   traits in `sluice-connector-sdk`; [`spec::registry`] is the one list of them.

pub mod checkpoint;
pub mod cli;
pub mod daemon;
pub mod dlq;
pub mod error;
pub mod eval;
pub mod inspect;
pub mod migrate;
pub mod plan;
pub mod runtime;
pub mod search;
pub mod spec;
pub mod stages;
pub mod telemetry;

pub use error::{Error, Result};
