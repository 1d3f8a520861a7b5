//! Where `sluice backfill --emit-to SCHEME://...` sends object events
//! (`{"url": ...}`), so that a fleet of daemons ingests a listing between
//! them. A connector that can carry them offers an [`EventTarget`] for its URL
//! scheme through the engine's registry.

use std::collections::BTreeMap;

use crate::Result;

/// What the command line gives a target besides its URL.
#[derive(Debug, Clone, Default)]
pub struct EmitOptions {
    /// The servers to use when the URL names none (`--brokers`).
    pub servers: Option<String>,
    /// Client properties over the connector's own (`--kafka-option K=V`).
    pub properties: BTreeMap<String, String>,
}

/// A queue that object events can be sent to.
#[async_trait::async_trait]
pub trait EventTarget: Send + Sync {
    /// Send one event per URL; returns once every one is acknowledged, with
    /// how many were sent.
    async fn emit(&self, urls: &[String]) -> Result<usize>;

    /// Where the events go, for the summary line (`docs on 127.0.0.1:9092`).
    fn describe(&self) -> String;
}

/// Makes a target from the part of the URL after `scheme://`.
pub type EventTargetFactory = fn(rest: &str, options: &EmitOptions) -> Result<Box<dyn EventTarget>>;
