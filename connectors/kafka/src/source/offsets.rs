//! The consumer and its offsets: the context that hears rebalances and lag,
//! the position a checkpoint holds, catching the group's offsets up to it
//! after a crash, and whether every partition is read to its end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sluice_connector_sdk::{ConnectorError, Result};

use super::{KafkaSource, REQUEST_TIMEOUT};

pub(super) type TopicPartition = (String, i32);

/// Records the partitions a rebalance takes away, for the source to forget.
#[derive(Default)]
pub(super) struct Rebalances {
    pub(super) revoked: Arc<Mutex<Vec<TopicPartition>>>,
    /// Total consumer lag from librdkafka's latest statistics (-1: unknown).
    pub(super) lag: Arc<std::sync::atomic::AtomicI64>,
}

impl ClientContext for Rebalances {
    /// Every `statistics.interval.ms`: the sum of the assigned partitions' lag.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let lags = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag);
        let (mut total, mut any) = (0i64, false);
        for lag in lags {
            total += lag;
            any = true;
        }
        self.lag
            .store(if any { total } else { 0 }, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let mut revoked = self.revoked.lock().expect("rebalance state poisoned");
                for e in tpl.elements() {
                    revoked.push((e.topic().to_string(), e.partition()));
                }
                tracing::info!(partitions = tpl.count(), "partitions revoked");
            }
            Rebalance::Assign(tpl) => tracing::info!(partitions = tpl.count(), "partitions assigned"),
            Rebalance::Error(e) => tracing::warn!("rebalance failed: {e}"),
        }
    }
}

/// The checkpointed position: the next offset of every partition read.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Position {
    pub(super) offsets: Vec<PartitionOffset>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PartitionOffset {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) offset: i64,
}

pub(super) fn position(offsets: &BTreeMap<TopicPartition, i64>) -> Position {
    Position {
        offsets: offsets
            .iter()
            .map(|((topic, partition), offset)| PartitionOffset {
                topic: topic.clone(),
                partition: *partition,
                offset: *offset,
            })
            .collect(),
    }
}

pub(super) fn tpl(offsets: &BTreeMap<TopicPartition, i64>) -> Result<TopicPartitionList> {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .map_err(kafka("building an offset list"))?;
    }
    Ok(list)
}

pub(super) fn kafka(what: &'static str) -> impl Fn(rdkafka::error::KafkaError) -> ConnectorError {
    move |e| ConnectorError::external(format!("Kafka: {what}")).with_source(e)
}

/// Whether every partition of `assignment` has been read (emitted, or committed
/// by the group) up to its high watermark.
fn caught_up(
    c: &StreamConsumer<Rebalances>,
    assignment: TopicPartitionList,
    emitted: &BTreeMap<TopicPartition, i64>,
) -> rdkafka::error::KafkaResult<bool> {
    let parts: Vec<TopicPartition> = assignment
        .elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect();
    let committed = c.committed_offsets(assignment, REQUEST_TIMEOUT)?.to_topic_map();
    let read = |tp: &TopicPartition| {
        emitted.get(tp).copied().or(match committed.get(tp) {
            Some(Offset::Offset(o)) => Some(*o),
            _ => None,
        })
    };
    // The watermarks the fetcher last saw first: asking the broker waits
    // behind the consumer's own long poll (up to fetch.wait.max.ms, per
    // partition), which made every end check cost seconds.
    let mut unknown = Vec::new();
    for tp in parts {
        match cached_watermarks(c, &tp) {
            Some((low, high)) if read(&tp).unwrap_or(low) < high => return Ok(false),
            Some(_) => {}
            None => unknown.push(tp),
        }
    }
    for tp in unknown {
        let (low, high) = c.fetch_watermarks(&tp.0, tp.1, REQUEST_TIMEOUT)?;
        if read(&tp).unwrap_or(low) < high {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The low and high watermarks of a partition as of the fetcher's last
/// response, without asking the broker; None while unknown.
fn cached_watermarks(c: &StreamConsumer<Rebalances>, tp: &TopicPartition) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(tp.0.as_str()).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer lives as long as `c`; the topic is a
    // NUL-terminated copy; librdkafka writes the two offsets it is given.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            c.client().native_ptr(),
            topic.as_ptr(),
            tp.1,
            &mut low,
            &mut high,
        )
    };
    let ok = err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
    (ok && low >= 0 && high >= 0).then_some((low, high))
}

impl KafkaSource {
    /// Drop what a rebalance took away: its messages in the inbox and its
    /// offsets, which are now another consumer's to commit.
    pub(super) fn forget_revoked(&mut self) {
        let revoked = std::mem::take(&mut *self.revoked.lock().expect("rebalance state poisoned"));
        for tp in revoked {
            self.offsets.remove(&tp);
            for snapshot in self.uncommitted.values_mut() {
                snapshot.remove(&tp);
            }
            self.inbox
                .retain(|m| (m.topic.as_str(), m.partition) != (tp.0.as_str(), tp.1));
        }
    }

    /// Every assigned partition has been read up to its end offset. The check is
    /// a blocking task kept in `self`: when `next_batch` is cancelled (by a
    /// checkpoint tick, say), the next call awaits the same check, so it always
    /// completes.
    pub(super) async fn at_end(&mut self) -> Result<bool> {
        if self.end_check.is_none() {
            let assignment = self
                .consumer
                .assignment()
                .map_err(kafka("reading the assignment"))?;
            if assignment.count() == 0 {
                return Ok(false);
            }
            let emitted = self.offsets.clone();
            let consumer = self.consumer.clone();
            self.end_check = Some(tokio::task::spawn_blocking(move || {
                caught_up(&consumer, assignment, &emitted)
            }));
        }
        let check = self.end_check.as_mut().expect("set above");
        let done = check.await;
        self.end_check = None;
        done.map_err(|e| ConnectorError::internal(format!("Kafka call panicked: {e}")))?
            .map_err(kafka("reading end offsets"))
    }

    /// After a crash between the checkpoint and the offset commit, the group's
    /// offsets trail the checkpoint: move them up to it, so the epoch the sinks
    /// already hold is not read again. Offsets are only ever moved forward.
    pub(super) async fn catch_up(&self, ours: BTreeMap<TopicPartition, i64>) -> Result<()> {
        if ours.is_empty() {
            return Ok(());
        }
        let list = tpl(&ours)?;
        let result = self
            .blocking(move |c| -> rdkafka::error::KafkaResult<usize> {
                let committed = c.committed_offsets(list, REQUEST_TIMEOUT)?.to_topic_map();
                let ahead: BTreeMap<TopicPartition, i64> = ours
                    .into_iter()
                    .filter(|(tp, o)| match committed.get(tp) {
                        Some(Offset::Offset(c)) => o > c,
                        _ => true,
                    })
                    .collect();
                if !ahead.is_empty() {
                    let list = tpl(&ahead)
                        .map_err(|_| rdkafka::error::KafkaError::Subscription("offset list".into()))?;
                    c.commit(&list, CommitMode::Sync)?;
                }
                Ok(ahead.len())
            })
            .await?;
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!(partitions = n, "moved the group's offsets up to the checkpoint"),
            Err(e) => tracing::warn!("could not move the group's offsets to the checkpoint: {e}"),
        }
        Ok(())
    }
}
