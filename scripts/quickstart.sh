#!/usr/bin/env bash
# Set up, build, run the quickstart pipeline on the bundled corpus, and query
# every stage with SQL.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bash scripts/setup.sh
say "building sluice (the first build compiles Arrow, DataFusion and LanceDB: see the README for how long)"
# Only the binary. The test command builds the tests on top of this build
# without recompiling it: no dev-dependency changes a feature of a crate the
# binary uses (tests/quickstart.rs holds that).
cargo build --workspace --bins ${SLUICE_BUILD_FLAGS:-}
SLUICE="$CARGO_TARGET_DIR/debug/sluice"
P=pipelines/quickstart.yaml
"$SLUICE" validate "$P"
say "running $P"
"$SLUICE" run "$P"
say "what each stage produced"
"$SLUICE" sql --pipeline "$P" "SELECT content_type, count(*) AS documents, sum(length(text)) AS chars FROM guard GROUP BY content_type ORDER BY content_type"
"$SLUICE" sql --pipeline "$P" "SELECT count(*) AS chunks, avg(token_count) AS avg_tokens, max(token_count) AS max_tokens FROM chunks"
"$SLUICE" sql --pipeline "$P" "SELECT from_pdf, count(*) AS chunks FROM enriched GROUP BY from_pdf"
"$SLUICE" sql --pipeline "$P" "SELECT title, chunk_index, substr(text, 1, 60) AS text FROM chunk_store WHERE title IS NOT NULL ORDER BY title, chunk_index LIMIT 5"
"$SLUICE" sql --pipeline "$P" "SELECT count(*) AS chunks, min(array_length(embedding)) AS dim FROM enriched"
"$SLUICE" sql --pipeline "$P" "SELECT content_type, count(*) AS docs, sum(chunk_count) AS chunks, sum(token_count) AS tokens FROM doc_features GROUP BY content_type ORDER BY content_type"
"$SLUICE" sql --pipeline "$P" "SELECT title, substr(text, 1, 50) AS text, round(_distance, 3) AS distance FROM vector_search(vectors, 'how does backpressure work', 3)"
"$SLUICE" dlq list --pipeline "$P"
say "what the guard found (values are never shown): PII redacted, an injection attempt flagged"
"$SLUICE" guard report --pipeline "$P"
say "how well search answers 36 hand-written questions (pipelines/quickstart-questions.jsonl)"
"$SLUICE" eval --pipeline "$P" --questions pipelines/quickstart-questions.jsonl
say "done: try  $SLUICE search --pipeline $P \"what happens after a crash\""
