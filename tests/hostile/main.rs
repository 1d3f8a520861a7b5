//! Hostile and odd input, two processes on one state, forged browser requests:
//! each case here was a real failure once (a panic, a stopped pipeline, a
//! shared checkpoint, a file read from outside the source folder). Every test
//! drives the real binary or the real loader and checks what a user would see.

#[path = "../util.rs"]
mod util;

#[path = "../daemon/harness.rs"]
#[allow(dead_code)]
mod harness;

mod api;
mod config;
mod files;
mod kafka;
mod parsers;
mod secrets;
mod sinks;
mod sql;
mod state;
