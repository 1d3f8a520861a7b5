//! Decoding: a message taken off the consumer (headers read through
//! librdkafka), and, in mode `documents`, a message as a document row.

use futures::future::BoxFuture;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use sluice_connector_sdk::documents::DocumentRow;
use sluice_connector_sdk::DeadLetter;

use super::offsets::Rebalances;
use super::KafkaSource;

/// A message taken off the consumer and not yet emitted.
pub(super) struct Received {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) key: Option<Vec<u8>>,
    pub(super) value: Option<Vec<u8>>,
    pub(super) headers: Vec<(String, String)>,
    /// Why the message cannot be read (it becomes a dead letter).
    pub(super) defect: Option<String>,
    pub(super) timestamp_us: Option<i64>,
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
    pub(super) fn of(m: &rdkafka::message::BorrowedMessage<'_>) -> Self {
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
    pub(super) fn at(&self) -> String {
        format!(
            "topic {} partition {} offset {}",
            self.topic, self.partition, self.offset
        )
    }

    /// The doc_id of a dead letter for a message that names no document.
    pub(super) fn fallback_id(&self) -> String {
        format!("kafka://{}/{}/{}", self.topic, self.partition, self.offset)
    }

    pub(super) fn version(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }

    pub(super) fn letter(&self, doc_id: String, error: String) -> DeadLetter {
        DeadLetter {
            doc_id,
            version: self.version(),
            stage: "source".into(),
            error: format!("{error} ({})", self.at()),
        }
    }
}

/// The next message, owned. (Boxed: the borrowed message stream must be provably
/// `Send` for `async_trait`.)
pub(super) fn recv(
    consumer: &StreamConsumer<Rebalances>,
) -> BoxFuture<'_, rdkafka::error::KafkaResult<Received>> {
    Box::pin(async move { consumer.recv().await.map(|m| Received::of(&m)) })
}

/// The message's headers and Kafka coordinates (plus `extra`), as a JSON object.
pub(super) fn metadata(m: &Received, mut extra: serde_json::Map<String, serde_json::Value>) -> String {
    if extra.is_empty() && m.headers.is_empty() {
        return coordinates(m);
    }
    for (k, v) in &m.headers {
        extra.insert(k.clone(), v.clone().into());
    }
    extra.insert("kafka_topic".into(), m.topic.clone().into());
    extra.insert("kafka_partition".into(), m.partition.into());
    extra.insert("kafka_offset".into(), m.offset.into());
    serde_json::Value::Object(extra).to_string()
}

/// [`metadata`] of a message with no headers, written without building a
/// JSON tree (the common case, once per message).
fn coordinates(m: &Received) -> String {
    use std::fmt::Write;
    let topic = serde_json::Value::from(m.topic.as_str()).to_string();
    let mut out = String::with_capacity(topic.len() + 64);
    let _ = write!(
        out,
        "{{\"kafka_topic\":{topic},\"kafka_partition\":{},\"kafka_offset\":{}}}",
        m.partition, m.offset
    );
    out
}

impl KafkaSource {
    /// The inbox as document rows (each value moved out, not copied) and the
    /// letters of the messages that are not documents.
    pub(super) fn documents(&mut self) -> (Vec<DocumentRow>, Vec<DeadLetter>) {
        let mut rows = Vec::with_capacity(self.inbox.len());
        let mut letters = Vec::new();
        let max = self.config.max_message_size.0;
        for m in &mut self.inbox {
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
            let Some(value) = m.value.take() else {
                rows.push(DocumentRow::delete(doc_id, m.version()));
                continue;
            };
            if value.len() as u64 > max {
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
                content: Some(value),
                doc_id,
            });
        }
        (rows, letters)
    }
}
