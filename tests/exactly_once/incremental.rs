//! Incremental re-runs: change 1% of the documents, delete 1%, add 1%. Only those
//! are parsed, chunked and (for chunks whose text changed) embedded again, and
//! the deletes reach every sink.

use crate::corpus::{name, seed, Corpus};
use crate::sinks::{assert_sinks_hold, parquet_rows, pipeline, reference, Target};
use crate::util::Workspace;

/// `N chunks embedded, M from cache` from the run summary.
fn embedded(summary: &str) -> (u64, u64) {
    let line = summary.lines().find(|l| l.contains("chunks embedded")).unwrap();
    let num = |after: &str| -> u64 {
        let head = line.split(after).next().unwrap();
        head.split_whitespace().last().unwrap().parse().unwrap()
    };
    (num(" chunks embedded"), num(" from cache"))
}

fn documents(summary: &str) -> u64 {
    let head = summary.split(" documents").next().unwrap();
    head.split_whitespace().last().unwrap().parse().unwrap()
}

#[test]
fn a_rerun_redoes_only_what_changed_and_deletes_reach_every_sink() {
    let docs = 300;
    let mut rng = seed("SLUICE_INCREMENTAL_SEED", 0x1_0c2e);
    let target = Target::new("incr");
    let ws = Workspace::new();
    let mut corpus = Corpus::new(docs);
    corpus.write_all(&ws);
    ws.write("p.yaml", pipeline(&target));
    let first = ws.ok(&["run", "p.yaml"]);
    assert_eq!(documents(&first), docs as u64, "{first}");
    let before = parquet_rows(&ws);
    let parsed = ws.count("p.yaml", "SELECT count(*) FROM parse");
    let chunked = ws.count("p.yaml", "SELECT count(*) FROM chunks");
    assert_eq!(parsed, docs as u64);

    let [changed, deleted, added] = corpus.mutate(&ws, &mut rng, docs / 100);
    let second = ws.ok(&["run", "p.yaml"]);
    let touched = (changed.len() + deleted.len() + added.len()) as u64;
    // Only the 3% reach the stages: the source's manifest skips the rest.
    assert_eq!(documents(&second), touched, "{second}");
    assert_eq!(ws.count("p.yaml", "SELECT count(*) FROM parse"), parsed + touched);
    let after = parquet_rows(&ws);
    let new_chunks: Vec<_> = after
        .iter()
        .filter(|r| changed.iter().chain(&added).any(|d| r.0 == name(*d)))
        .collect();
    // Each delete travels as one row; each changed or added document's chunks are new rows.
    assert_eq!(
        ws.count("p.yaml", "SELECT count(*) FROM chunks"),
        chunked + new_chunks.len() as u64 + deleted.len() as u64
    );
    // Only chunks whose text is new go through the model; the rest come from the cache.
    let fresh = new_chunks
        .iter()
        .filter(|r| !before.iter().any(|b| b.2 == r.2))
        .count() as u64;
    let (computed, cached) = embedded(&second);
    assert_eq!(
        (computed, cached),
        (fresh, new_chunks.len() as u64 - fresh),
        "{second}"
    );
    assert!(cached > 0 && computed > 0, "{second}");

    for d in &deleted {
        assert!(!after.iter().any(|r| r.0 == name(*d)));
    }
    assert_sinks_hold(&ws, &target, &reference(&ws));
}
