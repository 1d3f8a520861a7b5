//! Object events for a fleet: `sluice backfill --emit-to kafka://TOPIC` lists a
//! bucket into a topic, and daemons on `mode: object_events` ingest the objects.

use std::collections::BTreeMap;

use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_connector_sdk::events::{EmitOptions, EventTarget};
use sluice_connector_sdk::{ConnectorError, Result};

use crate::config::client_config;

/// Produce one `{"url": URL}` event per URL, keyed by the URL, through the
/// idempotent producer; returns once the broker has acknowledged every one.
/// `options` are librdkafka producer properties over ours.
pub async fn emit_object_events(
    brokers: &str,
    topic: &str,
    urls: &[String],
    options: &BTreeMap<String, String>,
) -> Result<usize> {
    let producer: FutureProducer = client_config(
        brokers,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("message.timeout.ms", "120000"),
        ],
        options,
    )
    .create()
    .map_err(|e| ConnectorError::user("Kafka producer settings").with_source(e))?;
    // In rounds, so a listing of millions never overfills the producer's queue.
    for round in urls.chunks(10_000) {
        let mut deliveries = Vec::with_capacity(round.len());
        for url in round {
            let value = serde_json::json!({ "url": url }).to_string();
            let record = FutureRecord::to(topic).key(url.as_str()).payload(&value);
            let delivery = producer.send_result(record).map_err(|(e, _)| {
                ConnectorError::external(format!("queueing an event for `{topic}`")).with_source(e)
            })?;
            deliveries.push(delivery);
        }
        for d in deliveries {
            match d.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    return Err(ConnectorError::external(format!(
                        "Kafka did not take an event for `{topic}`"
                    ))
                    .with_source(e))
                }
                Err(_) => return Err(ConnectorError::internal("Kafka producer dropped a delivery")),
            }
        }
    }
    Ok(urls.len())
}

/// `kafka://TOPIC` or `kafka://BROKERS/TOPIC`, as an [`EventTarget`].
pub struct TopicTarget {
    brokers: String,
    topic: String,
    properties: BTreeMap<String, String>,
}

/// The [`EventTarget`] for `kafka://` (`rest` is what follows the scheme).
pub fn event_target(rest: &str, options: &EmitOptions) -> Result<Box<dyn EventTarget>> {
    let (brokers, topic) = match rest.rsplit_once('/') {
        Some((b, t)) => (b.to_string(), t.to_string()),
        None => (
            options.servers.clone().ok_or_else(|| {
                ConnectorError::user(format!(
                    "kafka://{rest} names no brokers: use kafka://BROKERS/TOPIC, --brokers or SLUICE_KAFKA_BROKERS"
                ))
            })?,
            rest.to_string(),
        ),
    };
    if topic.is_empty() || brokers.is_empty() {
        return Err(ConnectorError::user(format!(
            "kafka://{rest}: expected kafka://TOPIC or kafka://BROKERS/TOPIC"
        )));
    }
    Ok(Box::new(TopicTarget {
        brokers,
        topic,
        properties: options.properties.clone(),
    }))
}

#[async_trait::async_trait]
impl EventTarget for TopicTarget {
    async fn emit(&self, urls: &[String]) -> Result<usize> {
        emit_object_events(&self.brokers, &self.topic, urls, &self.properties).await
    }

    fn describe(&self) -> String {
        format!("{} on {}", self.topic, self.brokers)
    }
}
