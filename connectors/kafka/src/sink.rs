//! The running `kafka` sink: one JSON message per row, keyed.

use std::collections::VecDeque;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use sluice_connector_sdk::{ConnectorError, Epoch, Result, Sink, SinkContext};

use crate::config::KafkaSinkConfig;

pub struct KafkaSink {
    config: KafkaSinkConfig,
    key: String,
    producer: FutureProducer,
    /// Deliveries not yet acknowledged, oldest first.
    in_flight: VecDeque<DeliveryFuture>,
    name: String,
}

impl KafkaSink {
    pub fn new(config: KafkaSinkConfig, ctx: &SinkContext, input: SchemaRef) -> Result<Self> {
        let producer: FutureProducer = config.client().create().map_err(|e| {
            let e = crate::config::redact(&e.to_string(), &config.options);
            ConnectorError::user(format!("Kafka producer settings: {e}"))
        })?;
        Ok(KafkaSink {
            key: config.key_column(&input),
            config,
            producer,
            in_flight: VecDeque::new(),
            name: ctx.name.clone(),
        })
    }

    /// Wait for the oldest delivery; its failure fails the epoch.
    async fn settle_one(&mut self) -> Result<()> {
        let Some(delivery) = self.in_flight.pop_front() else {
            return Ok(());
        };
        match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(ConnectorError::external(format!(
                "Kafka did not take a message for topic `{}`",
                self.config.topic
            ))
            .with_source(e)),
            Err(_) => Err(ConnectorError::internal("Kafka producer dropped a delivery")),
        }
    }
}

/// Each row as a JSON object (arrow's JSON encoding: nulls left out, binary as hex).
fn json_rows(batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut buf);
        writer.write(batch)?;
        writer.finish()?;
    }
    Ok(buf
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// The key of each row: the key column, or for a row where it is null (a delete
/// row has no chunk_id) the row's doc_id.
fn message_keys(batch: &RecordBatch, column: &arrow::array::ArrayRef) -> Result<Vec<String>> {
    let opts = FormatOptions::default();
    let keys = ArrayFormatter::try_new(column.as_ref(), &opts)?;
    let doc_ids = batch.column_by_name("doc_id");
    let fallback = doc_ids
        .map(|d| ArrayFormatter::try_new(d.as_ref(), &opts))
        .transpose()?;
    Ok((0..batch.num_rows())
        .map(|i| match (column.is_null(i), &fallback) {
            (true, Some(f)) => f.value(i).to_string(),
            _ => keys.value(i).to_string(),
        })
        .collect())
}

#[async_trait::async_trait]
impl Sink for KafkaSink {
    async fn open(&mut self, _committed: Epoch) -> Result<()> {
        // Nothing to roll back: a topic is an append-only log. A replayed epoch
        // is produced again under the same keys.
        Ok(())
    }

    async fn write(&mut self, _epoch: Epoch, batch: RecordBatch) -> Result<()> {
        let rows = json_rows(&batch)?;
        let column = batch
            .column_by_name(&self.key)
            .ok_or_else(|| ConnectorError::internal(format!("no key column `{}`", self.key)))?;
        let keys = message_keys(&batch, column)?;
        let topic = self.config.topic.clone();
        for (row, key) in rows.iter().zip(keys) {
            let mut record = FutureRecord::to(&topic).key(&key).payload(row);
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        self.in_flight.push_back(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // Backpressure: the producer's queue is full.
                        record = back;
                        if self.in_flight.is_empty() {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        } else {
                            self.settle_one().await?;
                        }
                    }
                    Err((e, _)) => {
                        return Err(
                            ConnectorError::external(format!("producing to `{}`", self.config.topic))
                                .with_source(e),
                        )
                    }
                }
            }
        }
        Ok(())
    }

    async fn commit(&mut self, epoch: Epoch) -> Result<()> {
        let n = self.in_flight.len();
        while !self.in_flight.is_empty() {
            self.settle_one().await?;
        }
        tracing::debug!(
            sink = self.name,
            epoch,
            messages = n,
            "epoch acknowledged by Kafka"
        );
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(30)))
            .await
            .map_err(|e| ConnectorError::internal(e.to_string()))?
            .map_err(|e| ConnectorError::external("flushing the Kafka producer").with_source(e))
    }
}
