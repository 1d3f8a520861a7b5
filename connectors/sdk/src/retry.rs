//! Riding out an outage: exponential backoff (100 ms doubling to 5 s) while a
//! server is unreachable, up to an outage budget (`max_outage`). Past the budget
//! the error names the service and says the epoch stays uncommitted, so the
//! pipeline stops cleanly and the next start replays it.

use std::time::{Duration, Instant};

use crate::{ConnectorError, Result};

pub struct Retry {
    started: Instant,
    delay: Duration,
    budget: Duration,
}

impl Retry {
    pub fn new(budget: Duration) -> Self {
        Retry {
            started: Instant::now(),
            delay: Duration::from_millis(100),
            budget,
        }
    }

    /// Sleep before the next attempt, or give up with the error to report. Only a
    /// `retryable` error is retried; `service` names the server, e.g. `Redis at ...`.
    pub async fn wait(&mut self, e: ConnectorError, sink: &str, service: &str) -> Result<()> {
        // A zero budget: no outage is ridden out, and the error is the store's own.
        if !e.retryable || self.budget.is_zero() {
            return Err(e);
        }
        if self.started.elapsed() >= self.budget {
            return Err(ConnectorError::external(format!(
                "{service} unreachable for {:?} (max_outage); the epoch stays uncommitted",
                self.budget
            ))
            .with_source(e)
            .retryable(false));
        }
        tracing::warn!(sink, "retrying in {:?}: {e}", self.delay);
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
        Ok(())
    }
}
