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

/// The harness itself.
mod harness {
    use crate::util::ports;

    /// Private services once took a port from the ephemeral range that a
    /// connection held by the time Redis listened on it: claims stay below it,
    /// and a claimed block is never handed out again while it is held.
    #[test]
    fn port_claims_stay_below_the_ephemeral_range_and_never_overlap() {
        let claims: Vec<_> = (0..200).map(|_| ports(4)).collect();
        let mut taken = std::collections::HashSet::new();
        for c in &claims {
            assert!((20_000..32_768 - 3).contains(&c.first), "{}", c.first);
            for p in c.first..c.first + 4 {
                assert!(taken.insert(p), "port {p} handed out twice");
            }
        }
    }
}
