//! The baseline for `benches/kafka.py`: a plain rdkafka consume loop that reads a
//! topic from the start to its end offsets and touches every payload.
//!
//!     consume_loop BROKERS TOPIC
//!
//! Prints `messages bytes seconds`.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (brokers, topic) = (&args[1], &args[2]);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("consume-loop-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let meta = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .expect("metadata");
    let mut list = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in meta.topics()[0].partitions() {
        let (_, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(30))
            .expect("watermarks");
        list.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
        ends.push(high);
    }
    let total: i64 = ends.iter().sum();
    consumer.assign(&list).expect("assign");
    let started = Instant::now();
    let (mut n, mut bytes) = (0i64, 0usize);
    while n < total {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                n += 1;
                bytes += m.payload().map_or(0, |p| p.len()) + m.key().map_or(0, |k| k.len());
            }
            Some(Err(e)) => eprintln!("consume error: {e}"),
            None => panic!("no message in 10 s after {n} of {total}"),
        }
    }
    println!("{n} {bytes} {:.3}", started.elapsed().as_secs_f64());
}
