//! `sluice search` and `POST /v1/search` on LanceDB and pgvector: vector,
//! full-text and hybrid rankings from each store's own indexes, a `--where`
//! that the store applies before it ranks, scores and lineage on every hit.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::common::{notes, search_pipeline};
use crate::harness;
use crate::util::{self, Workspace};

/// Six one-chunk documents on unrelated subjects; one carries a rare token.
fn corpus(ws: &Workspace) {
    notes(
        ws,
        &[
        ("rivers.md", "Rivers carry sediment to the sea. Over centuries a delta grows where the water slows down at the coast."),
        ],
    );
}

fn pipeline(pg_url: &str, table: &str) -> String {
    search_pipeline(
        "searchable",
        200,
        &format!(
            "  - {{name: pg, type: pgvector, url: \"{pg_url}\", table: {table}, dimension: 384, full_text: true}}\n\
             \x20 - {{name: lance, type: lancedb, uri: ../lance, table: chunks, dimension: 384, full_text: {{column: text, language: english}}}}\n\
             \x20 - {{name: plain, type: lancedb, uri: ../lance, table: plain, dimension: 384}}"
        ),
    )
}

/// `sluice search ... --format json`, parsed.
fn search(ws: &Workspace, args: &[&str]) -> Value {
    let mut all = vec![
        "--state",
        "state",
        "search",
        "--pipeline",
        "pipelines/p.yaml",
        "--format",
        "json",
    ];
    all.extend_from_slice(args);
    serde_json::from_str(&ws.ok(&all)).unwrap()
}

/// The file names of the hits' documents, in rank order.
fn docs(found: &Value) -> Vec<String> {
    found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let id = h["row"]["doc_id"].as_str().unwrap();
            id.rsplit('/').next().unwrap().to_string()
        })
        .collect()
}

#[test]
fn search_ranks_by_vector_text_and_both_with_a_filter_the_store_applies_through_cli_and_api() {
    let pg_url = util::services().pg;
    let table = util::unique("search");
    let ws = Workspace::new();
    corpus(&ws);
    ws.write("pipelines/p.yaml", pipeline(&pg_url, &table));
    ws.ok(&["--state", "state", "run", "pipelines/p.yaml"]);

    for sink in ["pg", "lance"] {
        // A paraphrase with no word of the document: the vector ranking finds
        // it, the text ranking finds nothing, the hybrid keeps the vector's.
        let q = ["--sink", sink, "-k", "3", "sleepy felines"];
        let vector = search(&ws, &[&["--mode", "vector"][..], &q].concat());
        assert_eq!(docs(&vector)[0], "cats.md", "{sink}: {vector:#}");
        assert_eq!(docs(&vector).len(), 3, "{sink}");
        let hit = &vector["hits"][0];
        assert!(hit["distance"].as_f64().unwrap() < 1.0, "{hit}");
        assert_eq!(
            hit["row"]["pipeline_name"], "searchable",
            "lineage on the hit: {hit}"
        );
        assert_eq!(hit["row"]["model_id"], "all-minilm-l6-v2", "{hit}");
        assert!(hit["row"].get("embedding").is_none(), "no vector in the answer");
        let text = search(&ws, &[&["--mode", "text"][..], &q].concat());
        assert_eq!(docs(&text), Vec::<String>::new(), "{sink}: {text:#}");
        let hybrid = search(&ws, &[&["--mode", "hybrid"][..], &q].concat());
        assert_eq!(docs(&hybrid)[0], "cats.md", "{sink}: {hybrid:#}");

        // A rare token: only the text ranking is exact about it, and it
        // returns just the rows that hold it, best first, with the store's score.
        let text = search(&ws, &["--sink", sink, "--mode", "text", "qzx4471"]);
        assert_eq!(docs(&text), ["firmware.md"], "{sink}: {text:#}");
        assert!(text["hits"][0]["text_score"].as_f64().unwrap() > 0.0, "{text:#}");
        // English stemming: "bakes" finds "bake".
        let text = search(&ws, &["--sink", sink, "--mode", "text", "bakes"]);
        assert_eq!(docs(&text), ["bread.md"], "{sink}: {text:#}");
        // The default mode with a full-text index is hybrid: both rankings fused.
        let hybrid = search(&ws, &["--sink", sink, "-k", "6", "qzx4471 firmware routers"]);
        assert_eq!(hybrid["mode"], "hybrid");
        assert_eq!(docs(&hybrid)[0], "firmware.md", "{sink}: {hybrid:#}");
        let top = &hybrid["hits"][0];
        assert!(
            top["distance"].is_number() && top["text_score"].is_number(),
            "{top}"
        );
        // 1/61 + 1/61: first in both rankings.
        assert!(
            (top["score"].as_f64().unwrap() - 2.0 / 61.0).abs() < 1e-9,
            "{top}"
        );

        // The filter goes to the store: with k = 1, the best row among those
        // that pass comes back, where filtering the top 1 afterwards would
        // leave nothing.
        let cats = vector["hits"][0]["row"]["doc_id"].as_str().unwrap().to_string();
        let folder = cats.strip_suffix("cats.md").unwrap();
        let only = format!("doc_id IN ('{folder}dogs.md', '{folder}bonds.md') AND chunk_index = 0");
        for mode in ["vector", "text", "hybrid"] {
            let args = ["--sink", sink, "--mode", mode, "-k", "1", "--where", &only];
            let filtered = search(&ws, &[&args[..], &["sleepy felines bonds"]].concat());
            assert_eq!(docs(&filtered).len(), 1, "{sink} {mode}: {filtered:#}");
            assert!(
                ["dogs.md", "bonds.md"].contains(&docs(&filtered)[0].as_str()),
                "{sink} {mode}: {filtered:#}"
            );
        }
        let not_cats = format!("doc_id <> '{cats}'");
        let args = [
            "--sink", sink, "--mode", "vector", "-k", "10", "--where", &not_cats,
        ];
        let everything_but_cats = search(&ws, &[&args[..], &["sleepy felines"]].concat());
        let found: BTreeSet<String> = docs(&everything_but_cats).into_iter().collect();
        assert_eq!(found.len(), 5, "{sink}: every other document: {found:?}");
        assert!(!found.contains("cats.md"));
    }

    refusals(&ws);
    api(&ws);
}

/// What a user can get wrong is exit 2 with the reason, before any search.
fn refusals(ws: &Workspace) {
    let base = ["--state", "state", "search", "--pipeline", "pipelines/p.yaml"];
    for (args, says) in [
        (
            vec!["cats"],
            "several searchable sinks; name one with --sink: pg, lance, plain",
        ),
        (vec!["--sink", "nope", "cats"], "`nope` is not a searchable sink"),
        (
            vec!["--sink", "plain", "--mode", "text", "cats"],
            "keeps no full-text index",
        ),
        (
            vec!["--sink", "pg", "--where", "nope = 1", "cats"],
            "no column `nope`",
        ),
        (
            vec!["--sink", "pg", "--where", "doc_id = 'a'; DROP TABLE x", "cats"],
            "unexpected `;`",
        ),
        (
            vec!["--sink", "lance", "--where", "lower(doc_id) = 'a'", "cats"],
            "expected a column",
        ),
        (vec!["--sink", "pg", "-k", "0", "cats"], "k must be 1 to 1000"),
        (vec!["--sink", "pg", "   "], "the query text is empty"),
    ] {
        let out = ws.sluice(&[&base[..], &args].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Text a store would choke on is only text.
    let out = ws.ok(&[
        &base[..],
        &[
            "--sink",
            "pg",
            "--mode",
            "text",
            "--where",
            "doc_id <> 'it''s \\ a '' test'",
            "'); DROP TABLE x; -- & | !",
        ],
    ]
    .concat());
    assert!(out.contains("text search of `pg`"), "{out}");
    // The table for a person.
    let out = ws.ok(&[&base[..], &["--sink", "plain", "-k", "2", "sleepy felines"]].concat());
    assert!(
        out.starts_with("vector search of `plain` (pipeline `searchable`): 2 hits"),
        "{out}"
    );
    assert!(out.contains("cats.md"), "{out}");
}

/// `POST /v1/search` answers what the CLI does.
fn api(ws: &Workspace) {
    let d = harness::start(ws.dir.path(), &[], &[]);
    d.wait("searchable", 60, "running", |p| p["state"] == "running");
    for sink in ["pg", "lance"] {
        let body = json!({
            "pipeline": "searchable", "query": "sleepy felines", "sink": sink,
            "k": 2, "mode": "vector", "where": "doc_id NOT LIKE '%/dogs.md'",
        });
        let (status, _, answer) = d.post("/v1/search", &body);
        let found: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["sink"], sink);
        assert_eq!(docs(&found)[0], "cats.md", "{found:#}");
        assert_eq!(docs(&found).len(), 2);
        assert!(!docs(&found).contains(&"dogs.md".to_string()));
    }
    for (body, status, says) in [
        (
            json!({"pipeline": "searchable", "query": "x", "sink": "pg", "where": "nope = 1"}),
            400,
            "no column `nope`",
        ),
        (
            json!({"pipeline": "searchable", "query": "x", "sink": "pg", "kk": 3}),
            400,
            "unknown field `kk`",
        ),
        (json!({"pipeline": "nope", "query": "x"}), 404, "nope"),
        (json!({"query": "x"}), 400, "no pipeline"),
    ] {
        let (got, _, answer) = d.post("/v1/search", &body);
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer.contains(says), "{body}: {answer}");
    }
}

/// The pgvector sink keeps one stored tsvector column (named after its
/// expression) with a GIN index; a new language replaces it, and taking
/// `full_text` off drops it. Read with tokio-postgres.
#[test]
fn pgvector_keeps_one_full_text_column_with_its_index_and_drops_a_stale_one() {
    let pg_url = util::services().pg;
    let table = util::unique("fts");
    let ws = Workspace::new();
    crate::common::notes(&ws, &[]);
    let rt = crate::common::runtime();
    let columns = || -> Vec<(String, bool)> {
        rt.block_on(async {
            crate::common::pg(&pg_url)
                .await
                .query(
                    "SELECT a.attname, EXISTS (SELECT 1 FROM pg_indexes i WHERE i.tablename = $1 \
                       AND i.indexdef LIKE '%USING gin (' || a.attname || ')%') \
                     FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND NOT a.attisdropped \
                       AND a.attname LIKE 'sluice_fts_%'",
                    &[&table],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        })
    };
    let run = |full_text: &str| {
        let sink = format!(
            "  - {{name: pg, type: pgvector, url: \"{pg_url}\", table: {table}, dimension: 384{full_text}}}"
        );
        ws.write("pipelines/p.yaml", search_pipeline("fts", 200, &sink));
        ws.ok(&["--state", "state", "run", "pipelines/p.yaml"]);
    };
    run(", full_text: true");
    let english = columns();
    assert_eq!(english.len(), 1, "{english:?}");
    assert!(english[0].1, "a GIN index on {english:?}");
    run(", full_text: {language: french}");
    let french = columns();
    assert_eq!(french.len(), 1, "{french:?}");
    assert!(
        french[0].1 && french[0].0 != english[0].0,
        "{french:?} after {english:?}"
    );
    let found = search(&ws, &["--mode", "text", "boulangerie bread"]);
    assert_eq!(docs(&found), ["bread.md"], "{found:#}");
    run("");
    assert_eq!(columns(), vec![], "full_text taken off");
}
