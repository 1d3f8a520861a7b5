//! The running `kafka` source: [`KafkaSource`] reads a group's partitions
//! and emits `documents` batches.
//!
//! - [`offsets`]: the consumer's context (rebalances, lag), the checkpointed
//!   position, catching the group up after a crash, and `stop_at_end`;
//! - [`decode`]: a message off the consumer, its headers, and a message as
//!   a document row (mode `documents`);
//! - [`objects`]: object events (mode `object_events`), each fetched from
//!   its store.

mod decode;
mod objects;
mod offsets;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use object_store::ObjectStore;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use sluice_connector_sdk::documents::{self, DocumentRow};
use sluice_connector_sdk::{ConnectorError, DeadLetter, Epoch, Result, Source, SourceContext};

use crate::config::{KafkaSourceConfig, SourceMode};
use decode::{recv, Received};
use offsets::{kafka, position, tpl, Position, Rebalances, TopicPartition};

/// How long a metadata or commit request may take before the run reports it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Consumes a group's partitions and emits `documents` batches.
pub struct KafkaSource {
    config: KafkaSourceConfig,
    ctx: SourceContext,
    consumer: Arc<StreamConsumer<Rebalances>>,
    revoked: Arc<Mutex<Vec<TopicPartition>>>,
    /// Received, not yet emitted. A dropped `next_batch` leaves them here.
    inbox: Vec<Received>,
    /// The next offset of each partition, over everything emitted.
    offsets: BTreeMap<TopicPartition, i64>,
    /// The next offset past the last message this process ever emitted, per
    /// partition, kept when a rebalance takes the partition away (see
    /// [`KafkaSource::already_emitted`]).
    /// By topic, then partition, so the check of each received message
    /// looks up without allocating.
    emitted: HashMap<String, HashMap<i32, i64>>,
    /// Snapshots not yet committed to the group, by epoch.
    uncommitted: BTreeMap<Epoch, BTreeMap<TopicPartition, i64>>,
    /// Object stores for object events, by bucket URL.
    stores: HashMap<String, Arc<dyn ObjectStore>>,
    /// When the batch being gathered is due, however often `next_batch` is cancelled.
    batch_deadline: Option<tokio::time::Instant>,
    /// A `stop_at_end` check under way.
    end_check: Option<tokio::task::JoinHandle<rdkafka::error::KafkaResult<bool>>>,
}

impl KafkaSource {
    pub fn new(config: KafkaSourceConfig, ctx: SourceContext) -> Result<Self> {
        let context = Rebalances::default();
        context.lag.store(-1, std::sync::atomic::Ordering::Relaxed);
        let revoked = context.revoked.clone();
        let consumer: StreamConsumer<Rebalances> =
            config.client().create_with_context(context).map_err(|e| {
                let e = crate::config::redact(&e.to_string(), &config.options);
                ConnectorError::user(format!("Kafka consumer settings: {e}"))
            })?;
        Ok(KafkaSource {
            config,
            ctx,
            consumer: Arc::new(consumer),
            revoked,
            inbox: Vec::new(),
            offsets: BTreeMap::new(),
            emitted: HashMap::new(),
            uncommitted: BTreeMap::new(),
            stores: HashMap::new(),
            batch_deadline: None,
            end_check: None,
        })
    }

    /// A message this process emitted before: an eager rebalance revokes every
    /// partition and may hand one straight back, and the consumer then reads
    /// it again from the group's committed offset, which trails what was
    /// emitted by the epochs not yet checkpointed. Those messages are already
    /// in an epoch of this run, so they are skipped, and their offset counts
    /// as read (it is committed with a later epoch, after that one).
    fn already_emitted(&mut self, m: &Received) -> bool {
        let next = self
            .emitted
            .get(m.topic.as_str())
            .and_then(|p| p.get(&m.partition));
        if next.is_some_and(|next| m.offset < *next) {
            let read = self.offsets.entry((m.topic.clone(), m.partition)).or_default();
            *read = (*read).max(m.offset + 1);
            return true;
        }
        false
    }

    /// The inbox has been emitted: its offsets are read, and remembered as
    /// emitted by this process.
    fn inbox_emitted(&mut self) {
        for m in self.inbox.drain(..) {
            let partitions = match self.emitted.get_mut(m.topic.as_str()) {
                Some(p) => p,
                None => self.emitted.entry(m.topic.clone()).or_default(),
            };
            let next = partitions.entry(m.partition).or_default();
            *next = (*next).max(m.offset + 1);
            self.offsets.insert((m.topic, m.partition), m.offset + 1);
        }
    }

    /// Run a blocking librdkafka call off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&StreamConsumer<Rebalances>) -> T + Send + 'static,
    ) -> Result<T> {
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || f(&consumer))
            .await
            .map_err(|e| ConnectorError::internal(format!("Kafka call panicked: {e}")))
    }

    /// The rows and dead letters of the inbox. The inbox is left as it is.
    async fn convert(&mut self) -> Result<(Vec<DocumentRow>, Vec<DeadLetter>)> {
        match self.config.mode {
            SourceMode::Documents => Ok(self.documents()),
            SourceMode::ObjectEvents => self.object_events().await,
        }
    }
}

#[async_trait::async_trait]
impl Source for KafkaSource {
    fn lag(&self) -> Option<u64> {
        let lag = self
            .consumer
            .context()
            .lag
            .load(std::sync::atomic::Ordering::Relaxed);
        u64::try_from(lag).ok()
    }

    async fn open(&mut self, state: Option<serde_json::Value>) -> Result<()> {
        if let Some(state) = state {
            let pos: Position = serde_json::from_value(state).map_err(|e| {
                ConnectorError::internal("checkpointed Kafka offsets do not decode").with_source(e)
            })?;
            let ours: BTreeMap<TopicPartition, i64> = pos
                .offsets
                .into_iter()
                .map(|p| ((p.topic, p.partition), p.offset))
                .collect();
            self.catch_up(ours).await?;
        }
        let topics: Vec<&str> = self.config.topics.iter().map(String::as_str).collect();
        self.consumer.subscribe(&topics).map_err(kafka("subscribing"))?;
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            self.forget_revoked();
            // Kept across cancellations: the engine drops this future at every
            // checkpoint tick, and a wait that restarted each time never ended
            // when ticks came faster than `batch_timeout` (regression test:
            // tests/backfill.rs, a Kafka backfill at a 100 ms interval).
            let timeout = self.config.batch_timeout.0;
            let deadline = *self
                .batch_deadline
                .get_or_insert_with(|| tokio::time::Instant::now() + timeout);
            while self.inbox.len() < self.config.batch_size {
                match tokio::time::timeout_at(deadline, recv(&self.consumer)).await {
                    Ok(Ok(m)) if self.already_emitted(&m) => {}
                    Ok(Ok(m)) => self.inbox.push(m),
                    Ok(Err(e)) => {
                        tracing::warn!("Kafka consumer: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(_) => break,
                }
            }
            self.batch_deadline = None;
            self.forget_revoked();
            if self.inbox.is_empty() {
                if self.config.stop_at_end && self.at_end().await? {
                    return Ok(None);
                }
                continue;
            }
            let (rows, letters) = self.convert().await?;
            // Past the last await: the step is taken.
            self.inbox_emitted();
            for letter in letters {
                self.ctx.dead_letter(letter);
            }
            if !rows.is_empty() {
                return documents::to_batch(&rows).map(Some);
            }
        }
    }

    fn snapshot(&mut self, epoch: Epoch) -> Result<serde_json::Value> {
        self.uncommitted.insert(epoch, self.offsets.clone());
        serde_json::to_value(position(&self.offsets))
            .map_err(|e| ConnectorError::internal("offsets do not encode").with_source(e))
    }

    async fn committed(&mut self, epoch: Epoch) -> Result<()> {
        self.forget_revoked();
        let Some(offsets) = self.uncommitted.remove(&epoch) else {
            return Ok(());
        };
        self.uncommitted.retain(|e, _| *e > epoch);
        // Only partitions still ours: a revoked one is its new owner's to commit.
        let assigned = self
            .consumer
            .assignment()
            .map_err(kafka("reading the assignment"))?;
        let offsets: BTreeMap<TopicPartition, i64> = offsets
            .into_iter()
            .filter(|((t, p), _)| assigned.find_partition(t, *p).is_some())
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let list = tpl(&offsets)?;
        match self.blocking(move |c| c.commit(&list, CommitMode::Sync)).await? {
            Ok(()) => tracing::debug!(epoch, partitions = offsets.len(), "offsets committed"),
            // A rebalance under way: the new owner replays from the last commit.
            Err(e) => tracing::warn!(
                epoch,
                "Kafka offset commit failed, the epoch will be replayed: {e}"
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(offset: i64) -> Received {
        Received {
            topic: "t".into(),
            partition: 0,
            offset,
            key: Some(b"k".to_vec()),
            value: Some(b"v".to_vec()),
            headers: Vec::new(),
            defect: None,
            timestamp_us: None,
        }
    }

    /// Regression: an eager rebalance revoked a partition and handed it
    /// straight back; the consumer read it again from the group's committed
    /// offset and wrote the same documents in a second epoch.
    #[tokio::test]
    async fn a_partition_handed_back_after_a_revoke_skips_what_this_process_emitted() {
        let config: KafkaSourceConfig = serde_json::from_value(serde_json::json!({
            "brokers": "127.0.0.1:1", "topics": ["t"], "group_id": "g"
        }))
        .unwrap();
        let mut source = KafkaSource::new(config, SourceContext::new("p", ".")).unwrap();
        source.inbox = (0..10).map(message).collect();
        source.inbox_emitted();
        source.revoked.lock().unwrap().push(("t".into(), 0));
        source.forget_revoked();
        assert!(
            source.offsets.is_empty(),
            "a revoked partition's offsets are forgotten"
        );
        // Handed back: the group's committed offset was 3.
        assert!(source.already_emitted(&message(3)));
        assert!(source.already_emitted(&message(9)));
        assert_eq!(
            source.offsets[&("t".to_string(), 0)],
            10,
            "skipped messages count as read"
        );
        assert!(!source.already_emitted(&message(10)), "a new message is read");
    }

    /// The metadata written without a JSON tree (no headers) says what the
    /// tree says; with headers, the tree is used and holds them.
    #[test]
    fn metadata_is_the_same_json_either_way() {
        let m = message(42);
        let fast: serde_json::Value =
            serde_json::from_str(&decode::metadata(&m, Default::default())).unwrap();
        assert_eq!(
            fast,
            serde_json::json!({"kafka_topic": "t", "kafka_partition": 0, "kafka_offset": 42})
        );
        let mut with = message(7);
        with.topic = "a\"b".into();
        with.headers.push(("h".into(), "v\"w".into()));
        let tree: serde_json::Value =
            serde_json::from_str(&decode::metadata(&with, Default::default())).unwrap();
        assert_eq!(tree["h"], "v\"w");
        assert_eq!(tree["kafka_topic"], "a\"b");
        with.headers.clear();
        let fast: serde_json::Value =
            serde_json::from_str(&decode::metadata(&with, Default::default())).unwrap();
        assert_eq!(fast["kafka_topic"], "a\"b");
        assert_eq!(fast["kafka_offset"], 7);
    }
}
