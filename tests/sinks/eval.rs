//! `sluice eval`: figures equal to the ones worked out by hand on a tiny
//! corpus, the modes differing where they should (a rare exact term that only
//! text search finds, a paraphrase that only vector search finds), the
//! history across pipeline versions, and the daemon exporting the last run.

use serde_json::Value;

use crate::common::{notes, search_pipeline};
use crate::harness;
use crate::util::Workspace;

/// The notes, and two with codes near the rare one.
fn corpus(ws: &Workspace) {
    notes(
        ws,
        &[
        ("switches.md", "Build qzx4417 for the switches was rolled back after the update failed on older hardware."),
        ("wireless.md", "Build qzx7441 adds support for new wireless channels and fixes a memory leak."),
        ("signing.md", "Firmware images are signed, so that routers refuse an update that comes from an unknown source."),
        ],
    );
}

fn pipeline(max_tokens: u32) -> String {
    search_pipeline(
        "evaluated",
        max_tokens,
        "  - {name: lance, type: lancedb, uri: ../lance, table: chunks, dimension: 384, full_text: true}",
    )
}

/// `sluice eval` of the test pipeline, then `more`.
fn eval_args<'a>(more: &[&'a str]) -> Vec<&'a str> {
    let base = ["--state", "state", "eval", "--pipeline", "pipelines/p.yaml"];
    [&base[..], more].concat()
}

const QUESTIONS: &str = r#"# worked by hand for text search at k = 1 and 3
{"question": "qzx4471", "relevant": ["firmware.md"]}
{"question": "bake bread", "relevant": ["bread.md", {"contains": "existing  BONDS falls"}]}
{"question": "sleepy felines", "relevant": ["cats.md"]}
{"question": "dough oven interest", "relevant": ["bonds.md"]}
"#;

fn eval(ws: &Workspace, args: &[&str]) -> Value {
    let mut all = eval_args(&["--questions", "q.jsonl", "--format", "json"]);
    all.extend_from_slice(args);
    serde_json::from_str(&ws.ok(&all)).unwrap()
}

fn close(got: &Value, want: f64, what: &str) {
    let got = got.as_f64().unwrap_or_else(|| panic!("{what}: {got}"));
    assert!((got - want).abs() < 1e-6, "{what}: {got} != {want}");
}

/// The mode's figures at `k`.
fn at<'a>(report: &'a Value, mode: &str, k: u64) -> &'a Value {
    report["modes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mode"] == mode)
        .unwrap_or_else(|| panic!("no {mode}: {report:#}"))["at_k"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["k"] == k)
        .unwrap()
}

/// Where the first relevant hit of `question` came in `mode`.
fn first_relevant(report: &Value, mode: &str, question: &str) -> Value {
    report["modes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mode"] == mode)
        .unwrap()["questions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["question"] == question)
        .unwrap()["first_relevant"]
        .clone()
}

#[test]
fn eval_figures_match_the_hand_worked_ones_and_the_modes_differ_where_they_should() {
    let ws = Workspace::new();
    corpus(&ws);
    ws.write("pipelines/p.yaml", pipeline(200));
    ws.write("q.jsonl", QUESTIONS);
    ws.ok(&["--state", "state", "run", "pipelines/p.yaml"]);

    let report = eval(&ws, &["-k", "3,1"]);
    assert_eq!(report["questions"], 4);
    // Text search (each store's own index, deterministic here):
    //   qzx4471 → [firmware]: 1 of 1 found at rank 1.
    //   bake bread → [bread]: 1 of 2 found at rank 1; nDCG@3 = 1 / (1 + 1/log2 3).
    //   sleepy felines → no word in any document: nothing.
    //   dough oven interest → [bread, bonds]: bonds at rank 2; nDCG@3 = 1/log2 3.
    let inv = 1.0 / 3f64.log2();
    let t1 = at(&report, "text", 1);
    close(&t1["recall"], (1.0 + 0.5) / 4.0, "text recall@1");
    close(&t1["mrr"], (1.0 + 1.0) / 4.0, "text mrr@1");
    close(&t1["ndcg"], (1.0 + 1.0) / 4.0, "text ndcg@1");
    let t3 = at(&report, "text", 3);
    close(&t3["recall"], (1.0 + 0.5 + 1.0) / 4.0, "text recall@3");
    close(&t3["mrr"], (1.0 + 1.0 + 0.5) / 4.0, "text mrr@3");
    close(&t3["ndcg"], (1.0 + 1.0 / (1.0 + inv) + inv) / 4.0, "text ndcg@3");

    // The rare exact term: text search finds the one note with the code;
    // vector search cannot tell it from the notes with near-identical codes
    // (it puts it third). The paraphrase: the other way round.
    assert_eq!(first_relevant(&report, "text", "qzx4471"), 1);
    assert_ne!(first_relevant(&report, "vector", "qzx4471"), 1, "{report:#}");
    assert_eq!(first_relevant(&report, "vector", "sleepy felines"), 1);
    assert_eq!(first_relevant(&report, "text", "sleepy felines"), Value::Null);
    assert_eq!(first_relevant(&report, "hybrid", "sleepy felines"), 1);
    for mode in ["vector", "text", "hybrid"] {
        let l = &report["modes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mode"] == mode)
            .unwrap()["latency_ms"];
        assert!(
            l["p50"].as_f64().unwrap() > 0.0 && l["p95"].as_f64() >= l["p50"].as_f64(),
            "{l}"
        );
    }

    // The table for a person.
    let table = ws.ok(&eval_args(&[
        "--questions",
        "q.jsonl",
        "--mode",
        "text",
        "-k",
        "1,3",
    ]));
    assert!(table.contains("4 questions from q.jsonl"), "{table}");
    assert!(table.contains("text       3   0.625   0.625   0.561"), "{table}");

    history_and_metrics(&ws, &report);
}

/// Each run is kept with the version and model it measured; a new version
/// shows as such; the daemon exports the last run.
fn history_and_metrics(ws: &Workspace, first: &Value) {
    ws.write("pipelines/p.yaml", pipeline(120));
    ws.ok(&["--state", "state", "run", "pipelines/p.yaml"]);
    let second = eval(ws, &["--mode", "text", "-k", "1,3"]);
    assert_ne!(second["pipeline_version"], first["pipeline_version"]);
    assert_eq!(second["model_fingerprint"], first["model_fingerprint"]);
    let history: Value =
        serde_json::from_str(&ws.ok(&eval_args(&["--history", "--format", "json"]))).unwrap();
    let runs = history.as_array().unwrap();
    // Two runs before (the table's too) and this one, oldest first.
    assert_eq!(runs.len(), 3, "{history:#}");
    assert_eq!(runs[0]["pipeline_version"], first["pipeline_version"]);
    assert_eq!(runs[2]["pipeline_version"], second["pipeline_version"]);
    assert!(
        runs[0]["modes"][0].get("questions").is_none(),
        "no per-question detail kept"
    );
    let table = ws.ok(&eval_args(&["--history"]));
    assert_eq!(table.lines().count(), 1 + 3 + 1 + 1, "{table}");
    assert!(
        table.contains(second["pipeline_version"].as_str().unwrap()),
        "{table}"
    );

    let d = harness::start(ws.dir.path(), &[], &[]);
    // Its bounded source has nothing new: the run may end before the first poll.
    d.wait("evaluated", 60, "started", |p| {
        p["state"] == "running" || p["state"] == "finished"
    });
    let (status, metrics) = d.get("/metrics");
    assert_eq!(status, 200);
    let line = |name: &str, labels: &str| {
        let prefix = format!("{name}{{pipeline=\"evaluated\",sink=\"lance\",{labels}}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
            .parse::<f64>()
            .unwrap()
    };
    let want = at(&second, "text", 3)["recall"].as_f64().unwrap();
    assert!((line("sluice_eval_recall", "mode=\"text\",k=\"3\"") - want).abs() < 1e-9);
    assert!(line("sluice_eval_latency_p95_seconds", "mode=\"text\"") > 0.0);
}

#[test]
fn a_bad_question_file_is_refused_with_each_line() {
    let ws = Workspace::new();
    corpus(&ws);
    ws.write("pipelines/p.yaml", pipeline(200));
    ws.write("q.jsonl", "{\"question\": \"q\", \"relevant\": []}\nnot json\n");
    let out = ws.sluice(&eval_args(&["--questions", "q.jsonl"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("line 1: `relevant` is empty") && err.contains("line 2:"),
        "{err}"
    );
    ws.write("q.jsonl", QUESTIONS);
    let out = ws.sluice(&eval_args(&["--questions", "q.jsonl", "-k", "0"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--k takes cutoffs from 1 to 1000"));
}
