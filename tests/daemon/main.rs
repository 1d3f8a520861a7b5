//! `sluice daemon`: hot reload of one pipeline among several, a broken version
//! that leaves the old one running, deletion, pause and resume, SIGTERM; the HTTP
//! API (token rule, SQL refusals, Arrow out) and a `/metrics` scrape parsed by
//! Prometheus's own parser, against a real Kafka broker and the real model.

#[path = "../util.rs"]
mod util;

mod api;
mod console;
mod harness;
mod metrics;
mod reload;
mod tail;
mod top;
mod webdriver;
