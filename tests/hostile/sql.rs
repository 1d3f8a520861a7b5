//! `sluice sql` (and the daemon's `/v1/sql`) cannot be made to eat the
//! process: results are capped in rows and bytes, operators share a memory
//! pool, and a query stops at its time limit. Each limit is exit 2 with a
//! message that says which and how to raise it.

use crate::util::{basic_pipeline, Workspace};

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("data/a.txt", "alpha");
    ws.write("p.yaml", basic_pipeline("", "1s"));
    ws
}

fn refused(ws: &Workspace, args: &[&str], needle: &str) {
    let mut all = vec!["sql", "--pipeline", "p.yaml"];
    all.extend_from_slice(args);
    let out = ws.sluice(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: missing {needle:?} in {stderr}"
    );
}

#[test]
fn a_huge_result_is_cut_at_the_row_cap() {
    let ws = workspace();
    // The small case first: without a cap it fails fast, before the huge one.
    refused(
        &ws,
        &["--max-rows", "10", "SELECT * FROM generate_series(1, 11)"],
        "more than 10 rows",
    );
    // Two billion rows: only the cap keeps this from filling memory.
    refused(
        &ws,
        &["SELECT * FROM generate_series(1, 2000000000)"],
        "more than 100000 rows",
    );
    let ok = ws.ok(&[
        "sql",
        "--pipeline",
        "p.yaml",
        "--max-rows",
        "10",
        "SELECT * FROM generate_series(1, 10)",
    ]);
    assert!(ok.contains("| 10    |"), "{ok}");
}

#[test]
fn a_query_past_its_memory_or_time_is_stopped() {
    let ws = workspace();
    refused(
        &ws,
        &[
            "--query-memory",
            "4MiB",
            "SELECT value % 1000003 AS k, count(*) AS n FROM generate_series(1, 50000000) GROUP BY k",
        ],
        "Resources exhausted",
    );
    refused(
        &ws,
        &[
            "--query-timeout",
            "1s",
            "SELECT count(*) FROM generate_series(1, 200000000000)",
        ],
        "time limit of 1s",
    );
}

#[test]
fn explain_is_allowed_and_writes_are_not() {
    let ws = workspace();
    let plan = ws.ok(&["sql", "--pipeline", "p.yaml", "EXPLAIN SELECT count(*) FROM out"]);
    assert!(plan.contains("logical_plan"), "{plan}");
    refused(&ws, &["EXPLAIN COPY (SELECT 1) TO '/tmp/x.csv'"], "refused");
    // vector_search cannot be asked for a whole table.
    refused(
        &ws,
        &["SELECT * FROM vector_search(out, 'anything', 20000)"],
        "at most 10000 rows",
    );
}

/// A store that fails under a query is not the query's fault: exit 1 with the
/// store's own words, not "invalid query" and exit 2. It used to be a string
/// classed as a bad query whatever the cause.
#[test]
fn a_store_failing_under_a_query_is_exit_1_with_its_cause() {
    let ws = Workspace::new();
    ws.write("data/a.txt", "alpha");
    ws.write(
        "p.yaml",
        "name: gone\nsource: {type: files, path: ./data}\nstages:\n  - {name: parse, type: parse}\n  - {name: chunks, type: chunk}\n  - {name: v, type: sql, query: \"SELECT *, arrow_cast(make_array(1.0, 2.0), 'FixedSizeList(2, Float32)') AS embedding FROM input\"}\nsinks:\n  - {name: pg, type: pgvector, url: \"postgresql://sluice@127.0.0.1:1/nowhere\", table: chunks}\n",
    );
    let out = ws.sluice(&["sql", "--pipeline", "p.yaml", "SELECT count(*) FROM pg"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("PostgreSQL at postgresql://sluice@127.0.0.1:1/nowhere"),
        "{stderr}"
    );
    // The same pipeline with a bad query is still the user's: exit 2.
    refused(&ws, &["SELECT nope FROM pg"], "nope");

    // vector_search on the same store: embedded with a real model, then the
    // store fails under the search. Also exit 1, with the cause.
    let model = crate::util::repo_root().join("models/all-minilm-l6-v2");
    ws.write(
        "search.yaml",
        format!(
            "name: gone\nsource: {{type: files, path: ./data}}\nstages:\n  - {{name: parse, type: parse}}\n  - {{name: chunks, type: chunk}}\n  - {{name: embed, type: embed, model: \"{}\"}}\nsinks:\n  - {{name: pg, type: pgvector, url: \"postgresql://sluice@127.0.0.1:1/nowhere\", table: chunks}}\n",
            model.display()
        ),
    );
    let out = ws.sluice(&[
        "sql",
        "--pipeline",
        "search.yaml",
        "SELECT * FROM vector_search(pg, 'alpha', 3)",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1/nowhere"), "{stderr}");
}
