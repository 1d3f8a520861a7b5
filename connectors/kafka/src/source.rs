//! The running `kafka` source.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use futures::future::BoxFuture;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sluice_connector_sdk::documents::{self, DocumentRow};
use sluice_connector_sdk::location::{resolve_with, StoreOptions};
use sluice_connector_sdk::{ConnectorError, DeadLetter, Epoch, Result, Source, SourceContext};

use crate::config::{KafkaSourceConfig, SourceMode};
use crate::events::{decode_event, ObjectEvent};

/// How long a metadata or commit request may take before the run reports it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

type TopicPartition = (String, i32);

/// Records the partitions a rebalance takes away, for the source to forget.
#[derive(Default)]
struct Rebalances {
    revoked: Arc<Mutex<Vec<TopicPartition>>>,
    /// Total consumer lag from librdkafka's latest statistics (-1: unknown).
    lag: Arc<std::sync::atomic::AtomicI64>,
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

/// A message taken off the consumer and not yet emitted.
struct Received {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
    /// Why the message cannot be read (it becomes a dead letter).
    defect: Option<String>,
    timestamp_us: Option<i64>,
}

/// A header whose name is not UTF-8: the message is refused.
#[derive(Debug, thiserror::Error)]
#[error("header {index} has a name that is not UTF-8 ({shown:?})")]
struct BadHeader {
    index: usize,
    shown: String,
}

/// The message's headers, values read as lossy UTF-8. rdkafka's own accessor
/// panics on a header name that is not UTF-8 (it unwraps `CStr::to_str`), so
/// they are read through librdkafka here, and such a message is refused.
fn read_headers(
    m: &rdkafka::message::BorrowedMessage<'_>,
) -> std::result::Result<Vec<(String, String)>, BadHeader> {
    use rdkafka::bindings as rd;
    let mut list: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `m.ptr()` is the live message `m` borrows; librdkafka sets `list`
    // to its header list (owned by the message) or leaves it null.
    let err = unsafe { rd::rd_kafka_message_headers(m.ptr(), &mut list) };
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || list.is_null() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for idx in 0.. {
        let mut name: *const std::ffi::c_char = std::ptr::null();
        let mut value: *const std::ffi::c_void = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: `list` is valid while `m` is; the out-pointers get views into it.
        let err = unsafe { rd::rd_kafka_header_get_all(list, idx, &mut name, &mut value, &mut size) };
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            break;
        }
        // SAFETY: librdkafka's header names are NUL-terminated.
        let name = unsafe { std::ffi::CStr::from_ptr(name) };
        let Ok(name) = name.to_str() else {
            let shown = String::from_utf8_lossy(name.to_bytes()).into_owned();
            return Err(BadHeader { index: idx, shown });
        };
        let value = if value.is_null() {
            String::new()
        } else {
            // SAFETY: `value` points at `size` bytes of the header's value.
            let bytes = unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) };
            String::from_utf8_lossy(bytes).into_owned()
        };
        out.push((name.to_string(), value));
    }
    Ok(out)
}

impl Received {
    fn of(m: &rdkafka::message::BorrowedMessage<'_>) -> Self {
        let (headers, defect) = match read_headers(m) {
            Ok(h) => (h, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        Received {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
            defect,
            // Microseconds, as `modified_at` keeps them; a time too far out
            // to convert is left unknown rather than wrapped around.
            timestamp_us: m.timestamp().to_millis().and_then(|t| t.checked_mul(1000)),
        }
    }

    /// Where the message is, for errors and dead letters.
    fn at(&self) -> String {
        format!(
            "topic {} partition {} offset {}",
            self.topic, self.partition, self.offset
        )
    }

    /// The doc_id of a dead letter for a message that names no document.
    fn fallback_id(&self) -> String {
        format!("kafka://{}/{}/{}", self.topic, self.partition, self.offset)
    }

    fn version(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }

    fn letter(&self, doc_id: String, error: String) -> DeadLetter {
        DeadLetter {
            doc_id,
            version: self.version(),
            stage: "source".into(),
            error: format!("{error} ({})", self.at()),
        }
    }
}

/// The checkpointed position: the next offset of every partition read.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Position {
    offsets: Vec<PartitionOffset>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PartitionOffset {
    topic: String,
    partition: i32,
    offset: i64,
}

fn position(offsets: &BTreeMap<TopicPartition, i64>) -> Position {
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

fn tpl(offsets: &BTreeMap<TopicPartition, i64>) -> Result<TopicPartitionList> {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .map_err(kafka("building an offset list"))?;
    }
    Ok(list)
}

fn kafka(what: &'static str) -> impl Fn(rdkafka::error::KafkaError) -> ConnectorError {
    move |e| ConnectorError::external(format!("Kafka: {what}")).with_source(e)
}

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
            uncommitted: BTreeMap::new(),
            stores: HashMap::new(),
            batch_deadline: None,
            end_check: None,
        })
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

    /// Drop what a rebalance took away: its messages in the inbox and its
    /// offsets, which are now another consumer's to commit.
    fn forget_revoked(&mut self) {
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
    async fn at_end(&mut self) -> Result<bool> {
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

    /// The rows and dead letters of the inbox. The inbox is left as it is.
    async fn convert(&mut self) -> Result<(Vec<DocumentRow>, Vec<DeadLetter>)> {
        match self.config.mode {
            SourceMode::Documents => Ok(self.documents()),
            SourceMode::ObjectEvents => self.object_events().await,
        }
    }

    fn documents(&self) -> (Vec<DocumentRow>, Vec<DeadLetter>) {
        let mut rows = Vec::with_capacity(self.inbox.len());
        let mut letters = Vec::new();
        for m in &self.inbox {
            if let Some(defect) = &m.defect {
                letters.push(m.letter(m.fallback_id(), defect.clone()));
                continue;
            }
            let doc_id = match m.key.as_deref().map(std::str::from_utf8) {
                Some(Ok(k)) if !k.is_empty() => k.to_string(),
                Some(Ok(_)) | None => {
                    letters.push(m.letter(
                        m.fallback_id(),
                        "message has no key (the key is the doc_id)".into(),
                    ));
                    continue;
                }
                Some(Err(_)) => {
                    letters.push(m.letter(m.fallback_id(), "message key is not UTF-8".into()));
                    continue;
                }
            };
            let Some(value) = &m.value else {
                rows.push(DocumentRow::delete(doc_id, m.version()));
                continue;
            };
            if value.len() as u64 > self.config.max_message_size.0 {
                let error = format!("value is {} bytes, over max_message_size", value.len());
                letters.push(m.letter(doc_id, error));
                continue;
            }
            let header_type = m
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.clone());
            let head = &value[..value.len().min(512)];
            rows.push(DocumentRow {
                content_type: Some(
                    header_type
                        .unwrap_or_else(|| sluice_connector_sdk::detect::content_type(&doc_id, head).into()),
                ),
                metadata: Some(metadata(m, serde_json::Map::new())),
                modified_at: m.timestamp_us,
                version: m.version(),
                content: Some(value.clone()),
                doc_id,
            });
        }
        (rows, letters)
    }

    /// The object store holding `url` (`s3://bucket/key`), and the key's path.
    fn store_for(&mut self, url: &str) -> Result<(Arc<dyn ObjectStore>, object_store::path::Path)> {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let root = format!("{scheme}://{bucket}/");
        if !self.stores.contains_key(&root) {
            let opts = StoreOptions {
                options: self.config.storage_options.clone(),
                max_outage: None,
            };
            let location = resolve_with(&root, &self.ctx.base_dir, false, &opts)?;
            self.stores.insert(root.clone(), location.store);
        }
        let path = object_store::path::Path::parse(key)
            .map_err(|e| ConnectorError::user(format!("`{url}`: bad key: {e}")))?;
        Ok((self.stores[&root].clone(), path))
    }

    async fn object_events(&mut self) -> Result<(Vec<DocumentRow>, Vec<DeadLetter>)> {
        /// One output slot per event, in message order.
        enum Slot {
            Row(DocumentRow),
            Fetch { msg: usize, url: String },
        }
        let mut slots = Vec::new();
        let mut letters = Vec::new();
        let mut fetches = Vec::new();
        for i in 0..self.inbox.len() {
            let m = &self.inbox[i];
            if let Some(defect) = &m.defect {
                letters.push(m.letter(m.fallback_id(), defect.clone()));
                continue;
            }
            let events = match m.value.as_deref().map(decode_event) {
                Some(Ok(events)) => events,
                Some(Err(e)) => {
                    letters.push(m.letter(m.fallback_id(), format!("bad object event: {e}")));
                    continue;
                }
                None => {
                    letters.push(m.letter(m.fallback_id(), "an object event needs a value".into()));
                    continue;
                }
            };
            let version = m.version();
            for event in events {
                match event {
                    ObjectEvent::Delete { url } => {
                        slots.push(Slot::Row(DocumentRow::delete(url, version.clone())))
                    }
                    ObjectEvent::Upsert { url } => match crate::events::permitted(&url, &self.config.allow)
                        .map_err(|e| ConnectorError::user(e.to_string()))
                        .and_then(|()| self.store_for(&url))
                    {
                        Ok((store, path)) => {
                            fetches.push((store, path));
                            slots.push(Slot::Fetch { msg: i, url });
                        }
                        Err(e) => letters.push(self.inbox[i].letter(url, e.to_string())),
                    },
                }
            }
        }
        let results = fetch_all(
            fetches,
            self.config.max_message_size.0,
            self.config.read_concurrency,
        )
        .await;
        let mut results = results.into_iter();
        let mut rows = Vec::with_capacity(slots.len());
        for slot in slots {
            let (msg, url) = match slot {
                Slot::Row(row) => {
                    rows.push(row);
                    continue;
                }
                Slot::Fetch { msg, url } => (msg, url),
            };
            let m = &self.inbox[msg];
            match results.next().expect("one result per fetch") {
                Ok((meta, Some(content))) => {
                    let mut extra = serde_json::Map::new();
                    extra.insert("size".into(), meta.size.into());
                    if let Some(tag) = &meta.e_tag {
                        extra.insert("etag".into(), tag.trim_matches('"').into());
                    }
                    rows.push(DocumentRow {
                        content_type: Some(
                            sluice_connector_sdk::detect::content_type(
                                &url,
                                &content[..content.len().min(512)],
                            )
                            .into(),
                        ),
                        version: meta
                            .e_tag
                            .as_deref()
                            .map(|t| t.trim_matches('"').to_string())
                            .unwrap_or_else(|| m.version()),
                        modified_at: Some(meta.last_modified.timestamp_micros()),
                        metadata: Some(metadata(m, extra)),
                        content: Some(content),
                        doc_id: url,
                    });
                }
                Ok((meta, None)) => letters.push(m.letter(
                    url,
                    format!("object is {} bytes, over max_message_size", meta.size),
                )),
                Err(object_store::Error::NotFound { .. }) => {
                    letters.push(m.letter(url.clone(), format!("object {url} not found")))
                }
                Err(
                    e @ (object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }),
                ) => letters.push(m.letter(url, format!("cannot read the object: {e}"))),
                Err(e) => {
                    return Err(
                        ConnectorError::external(format!("fetching {url} ({})", m.at())).with_source(e)
                    );
                }
            }
        }
        Ok((rows, letters))
    }
}

type Fetched = object_store::Result<(object_store::ObjectMeta, Option<Vec<u8>>)>;

/// Fetch every object, `concurrency` at a time, in order; an object over `max`
/// bytes comes back without its content. (Boxed: the future must be provably
/// `Send` for `async_trait`.)
fn fetch_all(
    fetches: Vec<(Arc<dyn ObjectStore>, object_store::path::Path)>,
    max: u64,
    concurrency: usize,
) -> BoxFuture<'static, Vec<Fetched>> {
    Box::pin(
        futures::stream::iter(fetches)
            .map(move |(store, path)| async move {
                let got = store.get(&path).await?;
                let meta = got.meta.clone();
                if meta.size > max {
                    return Ok((meta, None));
                }
                Ok((meta, Some(got.bytes().await?.to_vec())))
            })
            .buffered(concurrency.max(1))
            .collect(),
    )
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
    for tp in parts {
        let (low, high) = c.fetch_watermarks(&tp.0, tp.1, REQUEST_TIMEOUT)?;
        let read = emitted.get(&tp).copied().or(match committed.get(&tp) {
            Some(Offset::Offset(o)) => Some(*o),
            _ => None,
        });
        if read.unwrap_or(low) < high {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The next message, owned. (Boxed: the borrowed message stream must be provably
/// `Send` for `async_trait`.)
fn recv(consumer: &StreamConsumer<Rebalances>) -> BoxFuture<'_, rdkafka::error::KafkaResult<Received>> {
    Box::pin(async move { consumer.recv().await.map(|m| Received::of(&m)) })
}

/// The message's headers and Kafka coordinates (plus `extra`), as a JSON object.
fn metadata(m: &Received, mut extra: serde_json::Map<String, serde_json::Value>) -> String {
    for (k, v) in &m.headers {
        extra.insert(k.clone(), v.clone().into());
    }
    extra.insert("kafka_topic".into(), m.topic.clone().into());
    extra.insert("kafka_partition".into(), m.partition.into());
    extra.insert("kafka_offset".into(), m.offset.into());
    serde_json::Value::Object(extra).to_string()
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
            for m in self.inbox.drain(..) {
                self.offsets.insert((m.topic, m.partition), m.offset + 1);
            }
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

impl KafkaSource {
    /// After a crash between the checkpoint and the offset commit, the group's
    /// offsets trail the checkpoint: move them up to it, so the epoch the sinks
    /// already hold is not read again. Offsets are only ever moved forward.
    async fn catch_up(&self, ours: BTreeMap<TopicPartition, i64>) -> Result<()> {
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
