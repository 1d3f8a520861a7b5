//! The integration tests that need no folder of their own, in one binary.
//! Each file was its own test binary, and each binary links the whole
//! stack: 15 of them cost about 190 CPU-s to build (benches/README.md, Build).

#[path = "../util.rs"]
mod util;

#[path = "../backfill.rs"]
mod backfill;
#[path = "../backpressure.rs"]
mod backpressure;
#[path = "../chunk_props.rs"]
mod chunk_props;
#[path = "../compose.rs"]
mod compose;
#[path = "../dlq.rs"]
mod dlq;
#[path = "../docker.rs"]
mod docker;
#[path = "../embed.rs"]
mod embed;
#[path = "../examples.rs"]
mod examples;
#[path = "../kafka.rs"]
mod kafka;
#[path = "../malformed.rs"]
mod malformed;
#[path = "../pipeline.rs"]
mod pipeline;
#[path = "../quickstart.rs"]
mod quickstart;
#[path = "../s3_source.rs"]
mod s3_source;
#[path = "../sink_contract.rs"]
mod sink_contract;
#[path = "../validate.rs"]
mod validate;
#[path = "../watch.rs"]
mod watch;
