//! One buffered, retrying sink for a store that writes an epoch at a time.
//!
//! A vector or feature store implements [`EpochWriter`]: set up and roll back
//! ([`EpochWriter::open`]), make an epoch's rows ready once
//! ([`EpochWriter::prepare`]), write them ([`EpochWriter::write`],
//! idempotent), and what follows a durable write ([`EpochWriter::written`]:
//! dead letters, an index). [`BufferedSink`] does the rest, the same way for
//! every store:
//! - it holds the epoch's batches until `commit`;
//! - an error that a retry may fix (a lost connection, a server restarting)
//!   is retried with backoff up to the store's `max_outage`
//!   ([`crate::retry::Retry`]), after [`EpochWriter::reset`] drops the
//!   connection so the next attempt makes a new one;
//! - past the budget, or on an error no retry fixes, the commit fails, the
//!   epoch stays uncommitted, and the next start replays it.
//!
//! The writer's role (stream, backfill, shared consumer group) is
//! [`SinkContext::role`](crate::SinkContext): whether `open` rolls back, and
//! which epoch rows carry.

use std::time::Duration;

use arrow::record_batch::RecordBatch;

use crate::retry::Retry;
use crate::{Epoch, Result, Sink};

/// What a store does; [`BufferedSink`] buffers, retries and reconnects.
#[async_trait::async_trait]
pub trait EpochWriter: Send {
    /// An epoch's rows made ready to write (the last version of each document,
    /// refused rows set aside): computed once, written as often as it takes.
    type Prepared: Send + Sync;

    /// The server, for errors: `PostgreSQL at db:5432`.
    fn service(&self) -> String;

    /// How long an outage is ridden out before the run stops; zero: not at all.
    fn max_outage(&self) -> Duration;

    /// Connect, set the store up, and (when the role rolls back) undo this
    /// writer's epochs after `committed`. Called again after a failure.
    async fn open(&mut self, committed: Epoch) -> Result<()>;

    /// Make `rows`, everything written for `epoch`, ready to write.
    fn prepare(&mut self, epoch: Epoch, rows: &[RecordBatch]) -> Result<Self::Prepared>;

    /// Write a prepared epoch, durably. After any failure it is called again
    /// with the same rows, so it must be idempotent (delete then insert,
    /// compare-and-set).
    async fn write(&mut self, epoch: Epoch, rows: &Self::Prepared) -> Result<()>;

    /// A call failed: drop the connection, so the next attempt makes a new one.
    async fn reset(&mut self) {}

    /// The epoch is durable: file its dead letters, maintain an index.
    async fn written(&mut self, _epoch: Epoch, _rows: Self::Prepared) -> Result<()> {
        Ok(())
    }

    /// See [`Sink::checkpointed`].
    async fn checkpointed(&mut self, _epoch: Epoch) -> Result<()> {
        Ok(())
    }
}

/// A [`Sink`] over an [`EpochWriter`]: the buffering, retry and reconnect
/// every store shares.
pub struct BufferedSink<W> {
    name: String,
    writer: W,
    pending: Vec<RecordBatch>,
}

impl<W: EpochWriter> BufferedSink<W> {
    /// `name` is the sink's, for logs.
    pub fn new(name: impl Into<String>, writer: W) -> Self {
        BufferedSink {
            name: name.into(),
            writer,
            pending: Vec::new(),
        }
    }

    /// The store, for what it offers besides writes.
    pub fn writer_mut(&mut self) -> &mut W {
        &mut self.writer
    }

    async fn failed(&mut self, retry: &mut Retry, e: crate::ConnectorError) -> Result<()> {
        self.writer.reset().await;
        let service = self.writer.service();
        retry.wait(e, &self.name, &service).await
    }
}

#[async_trait::async_trait]
impl<W: EpochWriter> Sink for BufferedSink<W> {
    async fn open(&mut self, committed: Epoch) -> Result<()> {
        let mut retry = Retry::new(self.writer.max_outage());
        while let Err(e) = self.writer.open(committed).await {
            self.failed(&mut retry, e).await?;
        }
        Ok(())
    }

    async fn write(&mut self, _epoch: Epoch, batch: RecordBatch) -> Result<()> {
        self.pending.push(batch);
        Ok(())
    }

    async fn commit(&mut self, epoch: Epoch) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = self.writer.prepare(epoch, &self.pending)?;
        let mut retry = Retry::new(self.writer.max_outage());
        while let Err(e) = self.writer.write(epoch, &rows).await {
            self.failed(&mut retry, e).await?;
        }
        self.pending.clear();
        self.writer.written(epoch, rows).await
    }

    async fn checkpointed(&mut self, epoch: Epoch) -> Result<()> {
        self.writer.checkpointed(epoch).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int32Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::ConnectorError;

    /// A store that fails its first `failures` writes with `error`, and
    /// records every call.
    struct Flaky {
        failures: usize,
        error: fn() -> ConnectorError,
        calls: Vec<String>,
        outage: Duration,
    }

    #[async_trait::async_trait]
    impl EpochWriter for Flaky {
        type Prepared = usize;
        fn service(&self) -> String {
            "Flaky at nowhere".into()
        }
        fn max_outage(&self) -> Duration {
            self.outage
        }
        async fn open(&mut self, committed: Epoch) -> Result<()> {
            self.calls.push(format!("open {committed}"));
            Ok(())
        }
        fn prepare(&mut self, epoch: Epoch, rows: &[RecordBatch]) -> Result<usize> {
            self.calls.push(format!("prepare {epoch}"));
            Ok(rows.iter().map(|b| b.num_rows()).sum())
        }
        async fn write(&mut self, epoch: Epoch, rows: &usize) -> Result<()> {
            self.calls.push(format!("write {epoch} {rows}"));
            if self.failures > 0 {
                self.failures -= 1;
                return Err((self.error)());
            }
            Ok(())
        }
        async fn reset(&mut self) {
            self.calls.push("reset".into());
        }
        async fn written(&mut self, epoch: Epoch, rows: usize) -> Result<()> {
            self.calls.push(format!("written {epoch} {rows}"));
            Ok(())
        }
    }

    fn batch(n: i32) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from_iter_values(0..n))]).unwrap()
    }

    fn sink(failures: usize, error: fn() -> ConnectorError, outage: Duration) -> BufferedSink<Flaky> {
        BufferedSink::new(
            "t",
            Flaky {
                failures,
                error,
                calls: Vec::new(),
                outage,
            },
        )
    }

    #[tokio::test]
    async fn an_outage_is_ridden_out_by_writing_the_same_epoch_again_on_a_new_connection() {
        let mut s = sink(
            2,
            || ConnectorError::external("connection lost"),
            Duration::from_secs(60),
        );
        s.open(0).await.unwrap();
        s.write(1, batch(2)).await.unwrap();
        s.write(1, batch(3)).await.unwrap();
        s.commit(1).await.unwrap();
        // Nothing held after a commit: the next epoch writes only its own rows.
        s.write(2, batch(1)).await.unwrap();
        s.commit(2).await.unwrap();
        s.commit(3).await.unwrap();
        assert_eq!(
            s.writer_mut().calls,
            [
                "open 0",
                "prepare 1",
                "write 1 5",
                "reset",
                "write 1 5",
                "reset",
                "write 1 5",
                "written 1 5",
                "prepare 2",
                "write 2 1",
                "written 2 1",
            ]
        );
    }

    #[tokio::test]
    async fn an_error_no_retry_fixes_fails_the_commit_at_once_and_keeps_its_kind() {
        let mut s = sink(
            1,
            || ConnectorError::user("table has another dimension"),
            Duration::from_secs(60),
        );
        s.write(1, batch(2)).await.unwrap();
        let e = s.commit(1).await.unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::User);
        assert_eq!(s.writer_mut().calls, ["prepare 1", "write 1 2", "reset"]);
    }

    #[tokio::test]
    async fn past_max_outage_the_commit_fails_naming_the_service() {
        let mut s = sink(
            usize::MAX,
            || ConnectorError::external("refused"),
            Duration::from_millis(250),
        );
        s.write(1, batch(2)).await.unwrap();
        let e = s.commit(1).await.unwrap_err().to_string();
        assert!(
            e.contains("Flaky at nowhere unreachable for 250ms (max_outage)"),
            "{e}"
        );
        assert!(!s.writer_mut().calls.iter().any(|c| c.starts_with("written")));
    }

    #[tokio::test]
    async fn with_no_outage_budget_the_stores_own_error_comes_back() {
        let mut s = sink(1, || ConnectorError::external("disk full"), Duration::ZERO);
        s.write(1, batch(2)).await.unwrap();
        let e = s.commit(1).await.unwrap_err().to_string();
        assert_eq!(e, "external error: disk full");
    }
}
