//! Kafka messages that used to stop the source: a header name that is not
//! UTF-8 (rdkafka's accessor panics on it) and a CreateTime too far out to
//! convert to microseconds. The first is a dead letter with topic, partition
//! and offset; the second is ingested without a time. Produced to the real
//! broker, read back through `sluice sql`.

use std::time::Duration;

use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use serde_json::json;

use crate::util::{kafka_tool, produce, services, unique, Workspace};

/// Produce one message whose header name is `name`, any bytes. No client API
/// takes such a name (rdkafka's and confluent-kafka's want text), so the header
/// is added through librdkafka itself.
fn produce_raw_header(brokers: &str, topic: &str, key: &str, value: &str, name: &[u8]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("batch.num.messages", "1")
        .set("linger.ms", "0")
        .set("enable.idempotence", "false")
        .create()
        .unwrap();
    let headers = OwnedHeaders::new();
    let raw = headers.as_borrowed() as *const rdkafka::message::BorrowedHeaders
        as *mut rdkafka::bindings::rd_kafka_headers_t;
    // SAFETY: `raw` is the header list `headers` owns; librdkafka copies the
    // name and value into it.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_header_add(
            raw,
            name.as_ptr().cast(),
            name.len() as isize,
            b"v".as_ptr().cast(),
            1,
        )
    };
    assert_eq!(
        err,
        rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
    );
    producer
        .send(BaseRecord::to(topic).key(key).payload(value).headers(headers))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
}

#[test]
fn odd_messages_do_not_stop_the_kafka_source() {
    let svc = services();
    let topic = unique("odd");
    kafka_tool(&svc.kafka, &["create", &topic, "1"], "");
    produce(
        &svc.kafka,
        &topic,
        &[json!({"key": "good", "value": "A good message.", "headers": {"lang": "en"}})],
    );
    produce_raw_header(
        &svc.kafka,
        &topic,
        "bad-header",
        "Its header name is not UTF-8.",
        b"\xffname",
    );
    produce(
        &svc.kafka,
        &topic,
        &[
            json!({"key": "far-future", "value": "Its CreateTime overflows microseconds.", "timestamp": 9_223_372_036_854_775_000i64}),
            json!({"key": "after", "value": "The message after them."}),
        ],
    );
    let ws = Workspace::new();
    ws.write(
        "p.yaml",
        format!(
            "name: odd\nsource: {{type: kafka, brokers: \"{}\", topics: [{topic}], group_id: {}, stop_at_end: true}}\nstages:\n  - {{name: parse, type: parse, tap: true}}\nsinks:\n  - {{name: out, type: parquet, path: ./out}}\n",
            svc.kafka,
            unique("g")
        ),
    );
    let summary = ws.ok(&["run", "p.yaml"]);
    assert!(summary.contains("1 dead letters"), "{summary}");
    let docs = ws.query("p.yaml", "SELECT doc_id, modified_at FROM out ORDER BY doc_id");
    let ids: Vec<&str> = docs.iter().map(|r| r["doc_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["after", "far-future", "good"]);
    let far = docs.iter().find(|r| r["doc_id"] == "far-future").unwrap();
    assert!(far.get("modified_at").is_none_or(|v| v.is_null()), "{far}");
    let letters = ws.query("p.yaml", "SELECT error FROM dead_letters");
    let error = letters[0]["error"].as_str().unwrap();
    assert!(
        error.contains("not UTF-8") && error.contains("offset 1"),
        "{error}"
    );
}
