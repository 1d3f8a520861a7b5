//! The three kinds of task a pipeline runs: the source driver, a stage driver and
//! a sink driver. Each loops over its input channel and forwards messages in order.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesOrdered, StreamExt};
use sluice_connector_sdk::{ConnectorError, DeadLetter, Epoch, Message, Sink, Source, SourceContext};
use tokio::sync::{mpsc, watch};

use super::channel::{Receiver, Sender};
use crate::checkpoint::CoordinatorMsg;
use crate::dlq::DlqMsg;
use crate::stages::{BufferedTransform, StageOutput, StageRunner, Transform};
use crate::telemetry::metrics::StageMetrics;
use crate::telemetry::PipelineMetrics;
use crate::{Error, Result};

/// Send to every output; a closed output means its task failed, which the
/// supervisor reports, so this only stops.
pub(super) async fn broadcast(outputs: &[Sender], msg: Message) -> Result<()> {
    for out in outputs {
        out.send(msg.clone())
            .await
            .map_err(|_| Error::Internal("a downstream task stopped".into()))?;
    }
    Ok(())
}

pub struct SourceTask {
    pub source: Box<dyn Source>,
    pub ctx: SourceContext,
    pub outputs: Vec<Sender>,
    pub dlq: mpsc::Sender<DlqMsg>,
    pub coordinator: mpsc::Sender<CoordinatorMsg>,
    pub committed: watch::Receiver<Epoch>,
    pub shutdown: watch::Receiver<bool>,
    pub interval: Duration,
    /// Cut an epoch early once it carries this many bytes.
    pub max_bytes: u64,
    pub first_epoch: Epoch,
    pub metrics: Arc<PipelineMetrics>,
}

impl SourceTask {
    async fn drain_letters(&mut self, epoch: Epoch) -> bool {
        let letters: Vec<DeadLetter> =
            std::mem::take(&mut *self.ctx.dead_letters.lock().expect("dead letters"));
        if letters.is_empty() {
            return false;
        }
        let _ = self.dlq.send(DlqMsg::Letters { epoch, letters }).await;
        true
    }

    /// Tell the dead-letter store which documents this batch carries, so it can
    /// resolve their open letters if no stage gives up on them.
    async fn report_seen(&mut self, epoch: Epoch, batch: &arrow::record_batch::RecordBatch) {
        use arrow::array::AsArray;
        use sluice_connector_sdk::documents::{DOC_ID, VERSION};
        let (Some(ids), Some(versions)) = (batch.column_by_name(DOC_ID), batch.column_by_name(VERSION))
        else {
            return;
        };
        let (Some(ids), Some(versions)) = (ids.as_string_opt::<i32>(), versions.as_string_opt::<i32>())
        else {
            return;
        };
        let docs = ids
            .iter()
            .zip(versions.iter())
            .filter_map(|(d, v)| Some((d?.to_string(), v.unwrap_or_default().to_string())))
            .collect();
        let _ = self.dlq.send(DlqMsg::Seen { epoch, docs }).await;
    }

    /// Cut `epoch`: snapshot the position, tell the coordinator, send the barrier.
    async fn cut(&mut self, epoch: Epoch) -> Result<()> {
        self.metrics.open_epoch.set(epoch + 1);
        let state = self
            .source
            .snapshot(epoch)
            .map_err(|e| Error::connector("source", e))?;
        let _ = self.coordinator.send(CoordinatorMsg::Cut { epoch, state }).await;
        let _ = self.dlq.send(DlqMsg::Barrier { producer: 0, epoch }).await;
        broadcast(&self.outputs, Message::Barrier(epoch)).await
    }

    pub async fn run(mut self) -> Result<()> {
        let mut epoch = self.first_epoch;
        self.metrics.open_epoch.set(epoch);
        let mut dirty = false;
        let mut epoch_bytes = 0u64;
        let start = tokio::time::Instant::now() + self.interval;
        let mut tick = tokio::time::interval_at(start, self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *self.shutdown.borrow() {
                tracing::info!("shutdown requested: writing a final checkpoint");
                break;
            }
            tokio::select! {
                biased;
                Ok(()) = self.shutdown.changed() => continue,
                Ok(()) = self.committed.changed() => {
                    let e = *self.committed.borrow_and_update();
                    self.source.committed(e).await.map_err(|err| Error::connector("source", err))?;
                }
                _ = tick.tick() => {
                    self.metrics.source_lag.set(self.source.lag());
                    if dirty {
                        self.cut(epoch).await?;
                        epoch += 1;
                        dirty = false;
                        epoch_bytes = 0;
                    }
                }
                next = self.source.next_batch() => {
                    let next = next.map_err(|e| Error::connector("source", e))?;
                    if let Some(progress) = self.source.progress() {
                        let m = &self.metrics;
                        m.items_total.set(progress.items_total);
                        m.items_done.set(progress.items_done);
                        m.bytes_total.set(progress.bytes_total);
                        m.bytes_done.set(progress.bytes_done);
                    }
                    dirty |= self.drain_letters(epoch).await;
                    match next {
                        Some(batch) => {
                            self.report_seen(epoch, &batch).await;
                            self.metrics.source_rows.add(batch.num_rows() as u64);
                            self.metrics.source_batches.add(1);
                            let bytes = batch.get_array_memory_size() as u64;
                            self.metrics.source_bytes.add(bytes);
                            epoch_bytes += bytes;
                            if let Some(point) = self.metrics.tails.point(crate::telemetry::tail::SOURCE) {
                                point.offer(&batch);
                            }
                            broadcast(&self.outputs, Message::Batch(batch)).await?;
                            dirty = true;
                            if epoch_bytes >= self.max_bytes {
                                self.cut(epoch).await?;
                                epoch += 1;
                                dirty = false;
                                epoch_bytes = 0;
                            }
                        }
                        None => break,
                    }
                }
            }
        }
        dirty |= self.drain_letters(epoch).await;
        let last = if dirty {
            self.cut(epoch).await?;
            epoch
        } else {
            epoch - 1
        };
        let _ = self.dlq.send(DlqMsg::End { producer: 0 }).await;
        broadcast(&self.outputs, Message::End).await?;
        // Let the coordinator end once the sinks are done (or one has failed).
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.coordinator, closed));
        // Tell the source when the last epoch is durable (Kafka commits its
        // offsets then). If a sink fails, the coordinator ends and so does this.
        while *self.committed.borrow_and_update() < last {
            if self.committed.changed().await.is_err() {
                return Ok(());
            }
        }
        let e = *self.committed.borrow();
        self.source
            .committed(e)
            .await
            .map_err(|err| Error::connector("source", err))
    }
}

pub struct StageTask {
    pub name: String,
    pub producer: usize,
    /// Taken when the task starts.
    pub runner: Option<StageRunner>,
    pub parallelism: usize,
    /// Downstream, then taps, then the audit table (if any): batches go to
    /// the first `data_outputs`, audit rows to the rest, barriers to all.
    pub outputs: Vec<Sender>,
    pub data_outputs: usize,
    pub dlq: mpsc::Sender<DlqMsg>,
    pub first_epoch: Epoch,
    pub metrics: Arc<PipelineMetrics>,
    pub index: usize,
}

type Running = tokio::task::JoinHandle<Result<StageOutput>>;

impl StageTask {
    fn stats(&self) -> &StageMetrics {
        &self.metrics.stages[self.index]
    }

    fn stats_handle(&self) -> Arc<StageMetrics> {
        self.metrics.stages[self.index].clone()
    }

    fn task_failed(&self, e: tokio::task::JoinError) -> Error {
        Error::stage(
            &self.name,
            ConnectorError::internal("its task failed").with_source(e),
        )
    }

    async fn emit(
        &self,
        epoch: Epoch,
        done: std::result::Result<Result<StageOutput>, tokio::task::JoinError>,
    ) -> Result<()> {
        let out = done.map_err(|e| self.task_failed(e))??;
        self.emit_output(epoch, out).await
    }

    async fn emit_output(&self, epoch: Epoch, out: StageOutput) -> Result<()> {
        if let Some(last) = out.dead_letters.last() {
            self.stats().dead_letters.add(out.dead_letters.len() as u64);
            self.stats()
                .set_last_error(&crate::telemetry::secrets::scrub(&last.error));
            let _ = self
                .dlq
                .send(DlqMsg::Letters {
                    epoch,
                    letters: out.dead_letters,
                })
                .await;
        }
        self.stats().rows_out.add(out.batch.num_rows() as u64);
        self.stats()
            .bytes_out
            .add(out.batch.get_array_memory_size() as u64);
        if out.batch.num_rows() > 0 {
            if let Some(point) = self.metrics.tails.point(&self.name) {
                point.offer(&out.batch);
            }
            broadcast(&self.outputs[..self.data_outputs], Message::Batch(out.batch)).await?;
        }
        if let Some(rows) = out.audit.filter(|_| self.outputs.len() > self.data_outputs) {
            let rows = crate::inspect::audit::stamp(&rows, &self.name, epoch)?;
            broadcast(&self.outputs[self.data_outputs..], Message::Batch(rows)).await?;
        }
        Ok(())
    }

    async fn drain(&self, epoch: Epoch, running: &mut FuturesOrdered<Running>) -> Result<()> {
        while let Some(done) = running.next().await {
            self.emit(epoch, done).await?;
        }
        Ok(())
    }

    pub async fn run(mut self, input: Receiver) -> Result<()> {
        match self.runner.take() {
            Some(StageRunner::PerBatch(t)) => self.run_per_batch(t, input).await,
            Some(StageRunner::Buffered(b)) => self.run_buffered(b, input).await,
            None => Err(Error::Internal(format!("stage `{}` started twice", self.name))),
        }
    }

    /// Up to `parallelism` batches run at once on the blocking pool; results are
    /// emitted in input order, and all of them before a barrier is forwarded.
    async fn run_per_batch(self, transform: Arc<dyn Transform>, mut input: Receiver) -> Result<()> {
        let mut running: FuturesOrdered<Running> = FuturesOrdered::new();
        let mut epoch = self.first_epoch;
        let this = self;
        loop {
            tokio::select! {
                biased;
                Some(done) = running.next(), if !running.is_empty() => this.emit(epoch, done).await?,
                msg = input.recv(), if running.len() < this.parallelism => match msg {
                    Some(Message::Batch(batch)) => {
                        this.stats().rows_in.add(batch.num_rows() as u64);
                        this.stats().batches.add(1);
                        let t = transform.clone();
                        let stats = this.stats_handle();
                        running.push_back(tokio::task::spawn_blocking(move || {
                            let started = std::time::Instant::now();
                            let out = t.apply(batch);
                            stats.busy_us.add(started.elapsed().as_micros() as u64);
                            out.map_err(|e| Error::stage(&stats.name, e))
                        }));
                    }
                    Some(Message::Barrier(e)) => {
                        this.drain(epoch, &mut running).await?;
                        let _ = this.dlq.send(DlqMsg::Barrier { producer: this.producer, epoch: e }).await;
                        broadcast(&this.outputs, Message::Barrier(e)).await?;
                        epoch = e + 1;
                    }
                    Some(Message::End) | None => {
                        this.drain(epoch, &mut running).await?;
                        let _ = this.dlq.send(DlqMsg::End { producer: this.producer }).await;
                        return broadcast(&this.outputs, Message::End).await;
                    }
                },
            }
        }
    }
}

impl StageTask {
    /// Run one call of a buffered stage on the blocking pool and emit what it
    /// completed. The stage moves into the blocking task and back.
    async fn step(
        &self,
        stage: Box<dyn BufferedTransform>,
        batch: Option<arrow::record_batch::RecordBatch>,
        epoch: Epoch,
    ) -> Result<Box<dyn BufferedTransform>> {
        let stats = self.stats_handle();
        let (stage, outs) = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let mut stage = stage;
            let outs = match batch {
                Some(b) => stage.push(b),
                None => stage.flush(),
            };
            stats.busy_us.add(started.elapsed().as_micros() as u64);
            (stage, outs)
        })
        .await
        .map_err(|e| self.task_failed(e))?;
        for out in outs.map_err(|e| Error::stage(&self.name, e))? {
            self.emit_output(epoch, out).await?;
        }
        Ok(stage)
    }

    /// One call at a time; rows held longer than `max_wait` are flushed, and a
    /// barrier flushes everything before it is forwarded.
    async fn run_buffered(self, mut stage: Box<dyn BufferedTransform>, mut input: Receiver) -> Result<()> {
        let mut epoch = self.first_epoch;
        let max_wait = stage.max_wait();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = timer => {
                    stage = self.step(stage, None, epoch).await?;
                    deadline = None;
                }
                msg = input.recv() => match msg {
                    Some(Message::Batch(batch)) => {
                        self.stats().rows_in.add(batch.num_rows() as u64);
                        self.stats().batches.add(1);
                        stage = self.step(stage, Some(batch), epoch).await?;
                        deadline = match (stage.has_pending(), deadline) {
                            (false, _) => None,
                            (true, None) => Some(tokio::time::Instant::now() + max_wait),
                            (true, d) => d,
                        };
                    }
                    Some(Message::Barrier(e)) => {
                        stage = self.step(stage, None, epoch).await?;
                        if let Some(own) = self.stats().own() {
                            own.end_epoch();
                        }
                        deadline = None;
                        let _ = self.dlq.send(DlqMsg::Barrier { producer: self.producer, epoch: e }).await;
                        broadcast(&self.outputs, Message::Barrier(e)).await?;
                        epoch = e + 1;
                    }
                    Some(Message::End) | None => {
                        self.step(stage, None, epoch).await?;
                        let _ = self.dlq.send(DlqMsg::End { producer: self.producer }).await;
                        return broadcast(&self.outputs, Message::End).await;
                    }
                },
            }
        }
    }
}

/// Where a sink's refused documents are found, and where they go.
pub type Letters = Arc<std::sync::Mutex<Vec<DeadLetter>>>;

pub struct SinkLetters {
    pub letters: Letters,
    pub tx: mpsc::Sender<DlqMsg>,
    /// This sink's producer number at the dead-letter store.
    pub producer: usize,
}

pub struct SinkTask {
    pub name: String,
    pub id: usize,
    pub sink: Box<dyn Sink>,
    pub input: Receiver,
    pub coordinator: mpsc::Sender<CoordinatorMsg>,
    pub first_epoch: Epoch,
    pub metrics: Arc<PipelineMetrics>,
    /// The last checkpointed epoch, passed on to the sink before each commit.
    pub checkpointed: watch::Receiver<Epoch>,
    /// A sink's link to the dead-letter store (taps have none).
    pub dlq: Option<SinkLetters>,
    /// Where live views watch what this sink receives (taps have none).
    pub tail: Option<Arc<crate::telemetry::tail::TailPoint>>,
}

impl SinkTask {
    /// Write batches into the open epoch; on a barrier commit it, then ack.
    pub async fn run(mut self) -> Result<()> {
        let mut epoch = self.first_epoch;
        let what = format!("sink `{}`", self.name);
        while let Some(msg) = self.input.recv().await {
            match msg {
                Message::Batch(batch) => {
                    let rows = batch.num_rows() as u64;
                    if let Some(point) = self.tail.as_ref() {
                        point.offer(&batch);
                    }
                    self.sink
                        .write(epoch, batch)
                        .await
                        .map_err(|e| Error::connector(&what, e))?;
                    if let Some((_, c)) = self.metrics.sinks.get(self.id) {
                        c.add(rows);
                    }
                }
                Message::Barrier(e) => {
                    if self.checkpointed.has_changed().unwrap_or(false) {
                        let done = *self.checkpointed.borrow_and_update();
                        self.sink
                            .checkpointed(done)
                            .await
                            .map_err(|err| Error::connector(&what, err))?;
                    }
                    self.sink
                        .commit(e)
                        .await
                        .map_err(|err| Error::connector(&what, err))?;
                    self.file_letters(e).await;
                    let _ = self
                        .coordinator
                        .send(CoordinatorMsg::Ack {
                            epoch: e,
                            id: self.id,
                        })
                        .await;
                    epoch = e + 1;
                }
                Message::End => break,
            }
        }
        if let Some(dlq) = &self.dlq {
            let _ = dlq
                .tx
                .send(DlqMsg::End {
                    producer: dlq.producer,
                })
                .await;
        }
        if epoch > self.first_epoch {
            self.await_last_checkpoint(epoch - 1)
                .await
                .map_err(|e| Error::connector(&what, e))?;
        }
        self.sink.close().await.map_err(|e| Error::connector(&what, e))
    }

    /// After committing `epoch`: the documents the sink's store refused, then
    /// the barrier, to the dead-letter store (which files them under `epoch`).
    async fn file_letters(&mut self, epoch: Epoch) {
        let Some(dlq) = &self.dlq else { return };
        let letters = std::mem::take(&mut *dlq.letters.lock().expect("sink dead letters"));
        if !letters.is_empty() {
            let _ = dlq.tx.send(DlqMsg::Letters { epoch, letters }).await;
        }
        let _ = dlq
            .tx
            .send(DlqMsg::Barrier {
                producer: dlq.producer,
                epoch,
            })
            .await;
    }

    /// At the end, wait (briefly) for the checkpoint of the last epoch this sink
    /// committed and pass it on, so the sink drops its undo state now rather
    /// than at the next `open`. The ack sender goes first: the coordinator ends
    /// once every participant is done, and the wait with it.
    async fn await_last_checkpoint(&mut self, last: Epoch) -> sluice_connector_sdk::Result<()> {
        let (ack, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.coordinator, ack));
        let wait = self.checkpointed.wait_for(|e| *e >= last);
        let reached = matches!(
            tokio::time::timeout(Duration::from_secs(10), wait).await,
            Ok(Ok(_))
        );
        if reached {
            self.sink.checkpointed(last).await?;
        }
        Ok(())
    }
}
