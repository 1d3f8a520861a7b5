//! Lineage on every vector: each row a vector sink writes carries the
//! pipeline, its version, the chunker's settings and the model, read back
//! through each store's own client; a change of chunking, and of model, shows
//! in SQL.

use std::collections::BTreeSet;

use crate::common::*;
use crate::util::{self, Workspace};

const COLUMNS: &str = "pipeline_name, pipeline_version, chunk_settings, model_id, model_fingerprint";

/// The distinct lineage tuples of a pgvector table, read with tokio-postgres.
fn pg_lineage(rt: &tokio::runtime::Runtime, url: &str, table: &str) -> BTreeSet<Vec<String>> {
    rt.block_on(async {
        pg(url)
            .await
            .query(&format!("SELECT DISTINCT {COLUMNS} FROM {table}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (0..5).map(|i| r.get::<_, String>(i)).collect())
            .collect()
    })
}

/// The distinct lineage tuples of the LanceDB table, read with the lancedb crate.
fn lance_lineage(rt: &tokio::runtime::Runtime, uri: &str) -> BTreeSet<Vec<String>> {
    use arrow::array::AsArray;
    let names: Vec<&str> = COLUMNS.split(", ").collect();
    let mut out = BTreeSet::new();
    for b in lance_select(rt, uri, &[], &names) {
        for row in 0..b.num_rows() {
            out.insert(
                names
                    .iter()
                    .map(|n| {
                        b.column_by_name(n)
                            .unwrap()
                            .as_string::<i32>()
                            .value(row)
                            .to_string()
                    })
                    .collect(),
            );
        }
    }
    out
}

/// What the compiled plan says its rows carry.
fn planned(ws: &Workspace) -> Vec<String> {
    let plan = sluice::spec::load_file(&ws.path("p.yaml")).unwrap();
    COLUMNS
        .split(", ")
        .map(|c| {
            plan.lineage
                .get(c)
                .unwrap_or_else(|| panic!("no {c}"))
                .to_string()
        })
        .collect()
}

#[test]
fn every_vector_row_carries_its_lineage_and_a_new_chunking_or_model_shows_in_sql() {
    let pg_url = util::services().pg;
    let table = util::unique("lineage");
    let ws = Workspace::new();
    corpus(&ws);
    let sinks = format!(
        "  - {{name: vectors, type: pgvector, url: \"{pg_url}\", table: {table}, dimension: 384}}\n  - {{name: lance, type: lancedb, uri: ./lance, table: chunks, dimension: 384}}"
    );
    ws.write("p.yaml", pipeline(&sinks));
    ws.ok(&["run", "p.yaml"]);
    let rt = runtime();
    let first = planned(&ws);
    // The pipeline's name, a 16-hex version, the chunker's hash, the model's
    // folder and its fingerprint (the one the embed stage computes).
    assert_eq!(first[0], "sinks");
    assert_eq!(first[1].len(), 16, "{first:?}");
    assert_eq!(first[3], "all-minilm-l6-v2");
    let model = sluice_embed::EmbedConfig::new(model())
        .load(&sluice_connector_sdk::PlanContext::new(ws.dir.path()))
        .unwrap();
    assert_eq!(first[4], model.fingerprint);
    assert_eq!(pg_lineage(&rt, &pg_url, &table), BTreeSet::from([first.clone()]));
    assert_eq!(
        lance_lineage(&rt, &ws.path("lance").to_string_lossy()),
        BTreeSet::from([first.clone()])
    );
    lineage_command(&ws, &first);

    // New chunk settings and an edited document: only the edited document is
    // chunked again, so its rows carry the new version and chunker hash, and
    // the change shows in SQL beside the rows the old settings made.
    ws.write(
        "p.yaml",
        pipeline(&sinks).replace("max_tokens: 48", "max_tokens: 40"),
    );
    edit(&ws);
    ws.ok(&["run", "p.yaml"]);
    let second = planned(&ws);
    assert_ne!(second[1], first[1], "the version follows the chunk settings");
    assert_ne!(second[2], first[2]);
    assert_eq!(second[4], first[4], "same model");
    let both = BTreeSet::from([first.clone(), second.clone()]);
    assert_eq!(pg_lineage(&rt, &pg_url, &table), both);
    assert_eq!(lance_lineage(&rt, &ws.path("lance").to_string_lossy()), both);
    for sink in ["vectors", "lance"] {
        let groups = ws.query(
            "p.yaml",
            &format!("SELECT chunk_settings, count(*) AS n FROM {sink} GROUP BY chunk_settings ORDER BY n"),
        );
        assert_eq!(groups.len(), 2, "{sink}: {groups:?}");
        assert_eq!(
            groups[0]["chunk_settings"],
            second[2].as_str(),
            "{sink}: {groups:?}"
        );
    }

    // A new model (the fp32 graph of the same weights) and one edited
    // document: its rows carry the new model's fingerprint, the rest keep the
    // old one, and SQL tells them apart.
    let fp32 = crate::common::model().replace("all-minilm-l6-v2", "all-minilm-l6-v2-fp32");
    ws.write(
        "p.yaml",
        pipeline(&sinks)
            .replace("max_tokens: 48", "max_tokens: 40")
            .replace(&crate::common::model(), &fp32),
    );
    ws.write("data/doc0.md", "# Document 0\n\nRewritten under the new model.\n");
    ws.ok(&["run", "p.yaml"]);
    let third = planned(&ws);
    assert_eq!(third[3], "all-minilm-l6-v2-fp32");
    assert_ne!(third[4], second[4], "a new model, a new fingerprint");
    assert_ne!(third[1], second[1], "the version follows the model");
    for sink in ["vectors", "lance"] {
        let groups = ws.query(
            "p.yaml",
            &format!(
                "SELECT model_fingerprint, count(DISTINCT doc_id) AS docs FROM {sink} GROUP BY model_fingerprint ORDER BY docs"
            ),
        );
        assert_eq!(groups.len(), 2, "{sink}: {groups:?}");
        assert_eq!(
            groups[0]["model_fingerprint"],
            third[4].as_str(),
            "{sink}: {groups:?}"
        );
        assert_eq!(groups[0]["docs"], 1, "only the edited document: {groups:?}");
        assert_eq!(
            groups[1]["model_fingerprint"],
            second[4].as_str(),
            "{sink}: {groups:?}"
        );
    }
}

/// `sluice lineage` finds a chunk in every sink, with its document, its
/// epoch and the lineage the vector sinks stamped; a malformed id is refused
/// before any query, and an unknown one says no sink holds it.
fn lineage_command(ws: &Workspace, lineage: &[String]) {
    let expected = expected(ws);
    let (chunk, doc) = expected.iter().next().unwrap();
    let out = ws.ok(&["lineage", "--pipeline", "p.yaml", "--format", "json", chunk]);
    let found: serde_json::Value = serde_json::from_str(&out).unwrap();
    let holders: BTreeSet<&str> = found["held_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["sink"].as_str().unwrap())
        .collect();
    assert_eq!(holders, BTreeSet::from(["out", "vectors", "lance"]), "{found}");
    for h in found["held_by"].as_array().unwrap() {
        assert_eq!(h["row"]["doc_id"], doc.as_str(), "{h}");
        if h["sink"] != "out" {
            assert_eq!(h["row"]["model_fingerprint"], lineage[4].as_str(), "{h}");
            assert_eq!(h["row"]["pipeline_version"], lineage[1].as_str(), "{h}");
            assert!(h["row"]["epoch"].as_u64().unwrap() >= 1, "{h}");
        }
    }
    let text = ws.ok(&["lineage", "--pipeline", "p.yaml", chunk]);
    assert!(text.contains(&format!("source     {doc}")), "{text}");
    assert!(text.contains("model      all-minilm-l6-v2"), "{text}");
    assert!(text.contains("(the file as it is now)"), "{text}");

    for (id, says) in [
        ("' OR 1=1 --", "is not a chunk id"),
        (
            "0123456789abcdef0123456789abcdef",
            "no sink of `sinks` holds chunk",
        ),
    ] {
        let out = ws.sluice(&["lineage", "--pipeline", "p.yaml", id]);
        assert_eq!(out.status.code(), Some(2), "{id}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{id}: {err}");
    }
}
