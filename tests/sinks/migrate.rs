//! `sluice migrate`: a vector sink moved to the fp32 MiniLM while a stream
//! writes, searched without a gap through the promote, rolled back to the
//! old answers; a copy killed with SIGKILL resumes; pgvector's served view
//! follows promote and rollback in one transaction, a gate that does not
//! hold refuses, and abort drops the shadow.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{lance_select_from, notes, pg, runtime};
use crate::util::{self, Workspace};

fn second_model() -> String {
    util::repo_root()
        .join("models/all-minilm-l6-v2-fp32")
        .to_string_lossy()
        .into_owned()
}

/// A pipeline over `../data` (watched when `watch`) into `sink`.
fn pipeline(sink: &str, watch: bool) -> String {
    let watch = if watch {
        ", watch: true, poll_interval: 100ms"
    } else {
        ""
    };
    format!(
        r#"name: moving
checkpoint:
  interval: 500ms
source: {{type: files, path: ../data{watch}}}
stages:
  - {{name: parse, type: parse}}
  - {{name: chunks, type: chunk, max_tokens: 200, strategy: markdown}}
  - {{name: embed, type: embed, model: {model}}}
sinks:
{sink}
"#,
        model = crate::common::model()
    )
}

const LANCE: &str =
    "  - {name: vectors, type: lancedb, uri: ../lance, table: chunks, dimension: 384, full_text: true}";

const QUESTIONS: &str = r#"{"question": "bake bread in an oven", "relevant": ["bread.md"]}
{"question": "purring pets on windowsills", "relevant": ["cats.md"]}
{"question": "central banks raise rates", "relevant": ["bonds.md"]}
{"question": "firmware for the routers", "relevant": ["firmware.md"]}
{"question": "a long walk every morning", "relevant": ["dogs.md"]}
"#;

fn args<'a>(more: &[&'a str]) -> Vec<&'a str> {
    [&["--state", "state"][..], more].concat()
}

fn migrate<'a>(verb: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    args(&[&["migrate", verb, "--pipeline", "pipelines/p.yaml"][..], more].concat())
}

fn record(ws: &Workspace) -> Value {
    let bytes = std::fs::read(ws.path("state/moving/migrate/vectors.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn status(ws: &Workspace) -> Value {
    serde_json::from_str(&ws.ok(&migrate("status", &["--format", "json"]))).unwrap()
}

/// `sluice search` as JSON; `None` when it failed.
fn search(dir: &std::path::Path, query: &str, filter: Option<&str>) -> Option<Value> {
    let mut a = args(&[
        "search",
        "--pipeline",
        "pipelines/p.yaml",
        "--mode",
        "vector",
        "-k",
        "3",
        "--format",
        "json",
    ]);
    if let Some(f) = filter {
        a.extend(["--where", f]);
    }
    a.push(query);
    let out = util::sluice_in(dir, &a);
    if !out.status.success() {
        eprintln!("search failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn hits(found: &Value) -> &Vec<Value> {
    found["hits"].as_array().unwrap()
}

fn fingerprints(found: &Value) -> BTreeSet<String> {
    hits(found)
        .iter()
        .map(|h| h["row"]["model_fingerprint"].as_str().unwrap().to_string())
        .collect()
}

/// One row of a LanceDB table, read with the `lancedb` crate.
struct Row {
    chunk_id: String,
    fingerprint: String,
    text: String,
    vector: Vec<f32>,
}

/// Every row of LanceDB table `table`.
fn lance_table(uri: &std::path::Path, table: &str) -> Vec<Row> {
    use arrow::array::{AsArray, Float32Array};
    let columns = ["chunk_id", "model_fingerprint", "text", "embedding"];
    let batches = lance_select_from(&runtime(), uri.to_str().unwrap(), &[], table, &columns);
    let mut out = Vec::new();
    for b in batches {
        let text = arrow::compute::cast(b.column(2), &arrow::datatypes::DataType::Utf8).unwrap();
        let (ids, fps, text) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
            text.as_string::<i32>(),
        );
        let vectors = b.column(3).as_fixed_size_list();
        for i in 0..b.num_rows() {
            let v = vectors.value(i);
            out.push(Row {
                chunk_id: ids.value(i).to_string(),
                fingerprint: fps.value(i).to_string(),
                text: text.value(i).to_string(),
                vector: v
                    .as_any()
                    .downcast_ref::<Float32Array>()
                    .unwrap()
                    .values()
                    .to_vec(),
            });
        }
    }
    out
}

/// (chunk_id, model_fingerprint) of every row of LanceDB table `table`.
fn lance_rows(uri: &std::path::Path, table: &str) -> Vec<(String, String)> {
    lance_table(uri, table)
        .into_iter()
        .map(|r| (r.chunk_id, r.fingerprint))
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Every row's vector is `model`'s embedding of its text, and not `other`'s.
fn made_by(rows: &[Row], model: &str, other: &str) {
    use sluice_connector_sdk::stage::QueryEmbedder;
    let load = |dir: &str| {
        sluice_embed::EmbedConfig::new(dir)
            .load(&sluice_connector_sdk::PlanContext::new("/"))
            .unwrap()
    };
    let (model, other) = (load(model), load(other));
    for r in rows {
        let (want, not) = (
            model.embed_query(&r.text).unwrap(),
            other.embed_query(&r.text).unwrap(),
        );
        let c = cosine(&r.vector, &want);
        assert!(c > 0.99999, "{}: cosine {c} to its model's vector", r.chunk_id);
        assert!(
            cosine(&r.vector, &not) < c,
            "{}: as near the other model's",
            r.chunk_id
        );
    }
}

fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Background work until `stop` is set.
fn in_background<T: Send + 'static>(
    stop: &Arc<AtomicBool>,
    mut step: impl FnMut(usize) -> T + Send + 'static,
) -> std::thread::JoinHandle<Vec<T>> {
    let stop = stop.clone();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            out.push(step(i));
            i += 1;
        }
        out
    })
}

#[test]
fn a_migration_while_a_stream_writes_serves_the_live_chunks_with_the_new_model_and_rolls_back() {
    let ws = Workspace::new();
    notes(&ws, &[]);
    ws.write("pipelines/p.yaml", pipeline(LANCE, true));
    ws.write("q.jsonl", QUESTIONS);
    let stream = ws.spawn(&args(&["run", "pipelines/p.yaml"]), Stdio::piped());
    let docs = || {
        ws.count(
            "pipelines/p.yaml",
            "SELECT count(DISTINCT doc_id) AS n FROM vectors",
        )
    };
    wait_until("the notes in the live table", 60, || docs() == 5);
    let originals = Some("doc_id NOT LIKE '%live%'");
    let before = search(ws.dir.path(), "bake bread", originals).unwrap();

    // The stream goes on: a new note every 150 ms, an older one removed now and then.
    let stop_writing = Arc::new(AtomicBool::new(false));
    let data = ws.path("data");
    let writer = in_background(&stop_writing, move |i| {
        std::fs::write(
            data.join(format!("live{i}.md")),
            format!("# Live {i}\n\nWeather report {i}: rain, then sun over the hills.\n"),
        )
        .unwrap();
        if i % 4 == 3 {
            std::fs::remove_file(data.join(format!("live{}.md", i - 2))).unwrap();
        }
        std::thread::sleep(Duration::from_millis(150));
    });
    // Searches all along, through the start and the promote.
    let stop_searching = Arc::new(AtomicBool::new(false));
    let dir = ws.dir.path().to_path_buf();
    let searcher = in_background(&stop_searching, move |_| search(&dir, "bake bread", None));

    let started = ws.ok(&migrate(
        "start",
        &["--model", &second_model(), "--docs-per-epoch", "2"],
    ));
    assert!(
        started.contains("holds all") || started.contains("still differ"),
        "{started}"
    );
    let rec = record(&ws);
    let (old_fp, new_fp) = (
        rec["from_fingerprint"].as_str().unwrap().to_string(),
        rec["fingerprint"].as_str().unwrap().to_string(),
    );
    let shadow = rec["shadow_table"].as_str().unwrap().to_string();
    assert_ne!(old_fp, new_fp);

    // A gate that cannot hold refuses (exit 3) and changes nothing.
    let refused = ws.sluice(&migrate(
        "promote",
        &["--questions", "q.jsonl", "--require", "recall@1 > 1"],
    ));
    assert_eq!(
        refused.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stdout).contains("FAILS: recall@1 > 1"));
    assert_eq!(record(&ws)["served"], "live");

    let promoted = ws.ok(&migrate(
        "promote",
        &["--questions", "q.jsonl", "--require", "recall@3 >= live"],
    ));
    assert!(promoted.contains("holds: recall@3 >= live"), "{promoted}");
    assert_eq!(record(&ws)["served"], "shadow");
    std::thread::sleep(Duration::from_secs(2));
    stop_writing.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap().len();
    assert!(written > 10, "the stream wrote only {written} notes");
    // Only the stream writes the shadow after the promote: it catches up.
    wait_until("the shadow catching up with the stream", 60, || {
        status(&ws)["caught_up"] == true
    });
    stop_searching.store(true, Ordering::Relaxed);
    let answers = searcher.join().unwrap();

    // No search failed or came back empty; some were answered by each model.
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().is_some_and(|a| hits(a).len() == 3)),
        "{answers:?}"
    );
    let seen: BTreeSet<String> = answers.iter().flatten().flat_map(fingerprints).collect();
    assert_eq!(
        seen,
        BTreeSet::from([old_fp.clone(), new_fp.clone()]),
        "the loop ran through the promote"
    );

    // The served table holds exactly the live chunks, all made by the new model.
    let lance = ws.path("lance");
    let live = lance_rows(&lance, "chunks");
    let served = lance_rows(&lance, &shadow);
    let ids = |rows: &[(String, String)]| rows.iter().map(|(c, _)| c.clone()).collect::<BTreeSet<_>>();
    assert_eq!(ids(&served), ids(&live));
    assert_eq!(served.len(), ids(&served).len(), "a chunk written twice");
    assert!(live.len() > 5, "{live:?}");
    assert!(served.iter().all(|(_, fp)| *fp == new_fp));
    assert!(live.iter().all(|(_, fp)| *fp == old_fp));
    // And the vectors are the new model's (copied or streamed alike).
    made_by(
        &lance_table(&lance, &shadow),
        &second_model(),
        &crate::common::model(),
    );
    made_by(
        &lance_table(&lance, "chunks"),
        &crate::common::model(),
        &second_model(),
    );
    assert_eq!(
        fingerprints(&search(ws.dir.path(), "bake bread", originals).unwrap()),
        BTreeSet::from([new_fp])
    );

    // Rollback: the old table's answers, exactly.
    ws.ok(&migrate("rollback", &[]));
    let after = search(ws.dir.path(), "bake bread", originals).unwrap();
    let pairs = |f: &Value| {
        hits(f)
            .iter()
            .map(|h| (h["row"]["chunk_id"].clone(), h["distance"].as_f64().unwrap()))
            .collect::<Vec<_>>()
    };
    let (b, a) = (pairs(&before), pairs(&after));
    assert_eq!(
        b.iter().map(|p| &p.0).collect::<Vec<_>>(),
        a.iter().map(|p| &p.0).collect::<Vec<_>>()
    );
    assert!(
        b.iter().zip(&a).all(|(x, y)| (x.1 - y.1).abs() < 1e-5),
        "{b:?} vs {a:?}"
    );
    assert_eq!(fingerprints(&after), BTreeSet::from([old_fp]));

    Command::new("kill")
        .args(["-INT", &stream.id().to_string()])
        .status()
        .unwrap();
    let out = stream.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("a model migration changed what this pipeline writes"),
        "{stderr}"
    );
}

#[test]
fn a_copy_killed_with_sigkill_resumes_where_the_shadow_stands() {
    let ws = Workspace::new();
    for i in 0..40 {
        ws.write(
            &format!("data/n{i:02}.md"),
            format!(
                "# Note {i}\n\nNote number {i} is about topic {} and nothing else.\n",
                i * 7
            ),
        );
    }
    ws.write("pipelines/p.yaml", pipeline(LANCE, false));
    ws.ok(&args(&["run", "pipelines/p.yaml"]));

    let mut copy = ws.spawn(
        &migrate("start", &["--model", &second_model(), "--docs-per-epoch", "1"]),
        Stdio::null(),
    );
    let path = ws.path("state/moving/migrate/vectors.json");
    let copied = || {
        std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|r| r["progress"]["docs_copied"].as_u64())
            .unwrap_or(0)
    };
    wait_until("8 documents copied", 120, || copied() >= 8);
    copy.kill().unwrap();
    copy.wait().unwrap();
    let at_kill = record(&ws)["progress"].clone();
    assert!(
        at_kill["docs_copied"].as_u64() < at_kill["docs_to_copy"].as_u64(),
        "killed too late: {at_kill}"
    );

    let out = ws.sluice(&migrate("start", &["--model", &second_model()]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resuming the migration"), "{stderr}");
    // Its first pass started from what the killed one had written.
    let rec = record(&ws);
    let line = stderr.lines().find(|l| l.starts_with("shadow `")).unwrap();
    let done = line.split(": ").nth(1).and_then(|r| r.split(' ').next());
    let done: u64 = done.unwrap().parse().unwrap();
    assert!(done >= 8, "{line}");

    let st = status(&ws);
    assert_eq!(st["caught_up"], true, "{st:#}");
    let lance = ws.path("lance");
    let shadow = lance_rows(&lance, rec["shadow_table"].as_str().unwrap());
    let ids: BTreeSet<&String> = shadow.iter().map(|(c, _)| c).collect();
    assert_eq!(shadow.len(), 40);
    assert_eq!(ids.len(), 40, "a chunk written twice");
    let live: BTreeSet<String> = lance_rows(&lance, "chunks").into_iter().map(|(c, _)| c).collect();
    assert_eq!(ids.into_iter().cloned().collect::<BTreeSet<_>>(), live);

    // A migration whose sink was renamed away stops every command with a
    // clear error naming the way out, and abort still ends it.
    let renamed = LANCE.replace("name: vectors", "name: renamed");
    ws.write("pipelines/p.yaml", pipeline(&renamed, false));
    let stuck = ws.sluice(&args(&["run", "pipelines/p.yaml"]));
    let why = String::from_utf8_lossy(&stuck.stderr);
    assert_eq!(stuck.status.code(), Some(2), "{why}");
    assert!(why.contains("sluice migrate abort --sink vectors"), "{why}");
    let out = ws.ok(&migrate("abort", &["--sink", "vectors"]));
    assert!(out.contains("is left in its store"), "{out}");
    ws.ok(&args(&["run", "pipelines/p.yaml"]));
}

#[test]
fn pgvector_serves_a_view_switched_in_one_transaction_a_failing_gate_refuses_and_abort_drops_the_shadow() {
    let pg_url = util::services().pg;
    let table = util::unique("moving");
    let ws = Workspace::new();
    notes(&ws, &[]);
    let sink =
        format!("  - {{name: vectors, type: pgvector, url: \"{pg_url}\", table: {table}, dimension: 384}}");
    ws.write("pipelines/p.yaml", pipeline(&sink, false));
    ws.write("q.jsonl", QUESTIONS);
    ws.ok(&args(&["run", "pipelines/p.yaml"]));

    // The model the sink already has is refused.
    let same = ws.sluice(&migrate("start", &["--model", &crate::common::model()]));
    assert_eq!(
        same.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let none = ws.sluice(&migrate("status", &[]));
    assert_eq!(none.status.code(), Some(2));

    ws.ok(&migrate("start", &["--model", &second_model()]));
    let rec = record(&ws);
    let (old_fp, new_fp) = (
        rec["from_fingerprint"].as_str().unwrap(),
        rec["fingerprint"].as_str().unwrap(),
    );
    let shadow = rec["shadow_table"].as_str().unwrap().to_string();
    let view = format!("{table}_served");
    let rt = runtime();
    let served_fp = || {
        rt.block_on(async {
            let c = pg(&pg_url).await;
            let rows = c
                .query(
                    &format!("SELECT DISTINCT model_fingerprint, count(*) OVER () FROM \"{view}\""),
                    &[],
                )
                .await
                .unwrap();
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<BTreeSet<_>>()
        })
    };
    assert_eq!(served_fp(), BTreeSet::from([old_fp.to_string()]));

    // --require needs questions; a gate that does not hold refuses.
    assert_eq!(
        ws.sluice(&migrate("promote", &["--require", "recall@1 >= live"]))
            .status
            .code(),
        Some(2)
    );
    let refused = ws.sluice(&migrate(
        "promote",
        &["--questions", "q.jsonl", "--require", "mrr@1 > 1.5"],
    ));
    assert_eq!(refused.status.code(), Some(3));
    assert_eq!(served_fp(), BTreeSet::from([old_fp.to_string()]));

    let promoted = ws.ok(&migrate("promote", &["--questions", "q.jsonl"]));
    assert!(promoted.contains("→"), "the side-by-side table: {promoted}");
    assert_eq!(served_fp(), BTreeSet::from([new_fp.to_string()]));
    let found = search(ws.dir.path(), "bake bread", None).unwrap();
    assert_eq!(fingerprints(&found), BTreeSet::from([new_fp.to_string()]));
    assert!(hits(&found)[0]["row"]["doc_id"]
        .as_str()
        .unwrap()
        .ends_with("bread.md"));
    // Abort would drop the table being served.
    assert_eq!(ws.sluice(&migrate("abort", &[])).status.code(), Some(2));

    ws.ok(&migrate("rollback", &[]));
    assert_eq!(served_fp(), BTreeSet::from([old_fp.to_string()]));
    ws.ok(&migrate("abort", &[]));
    let exists = rt.block_on(async {
        let c = pg(&pg_url).await;
        c.query_one(&format!("SELECT to_regclass('\"{shadow}\"') IS NOT NULL"), &[])
            .await
            .unwrap()
            .get::<_, bool>(0)
    });
    assert!(!exists, "the shadow table is dropped");
    assert!(!ws.path("state/moving/migrate/vectors.json").exists());
    let found = search(ws.dir.path(), "bake bread", None).unwrap();
    assert_eq!(fingerprints(&found), BTreeSet::from([old_fp.to_string()]));
}

/// The daemon reloads a pipeline when a migration starts, so its stream
/// writes the shadow; `POST /v1/search` runs without a gap through the promote.
#[test]
fn the_daemon_writes_the_shadow_once_a_migration_starts_and_its_api_searches_through_the_promote() {
    let ws = Workspace::new();
    notes(&ws, &[]);
    ws.write("pipelines/p.yaml", pipeline(LANCE, true));
    let d = crate::harness::start(ws.dir.path(), &[], &[]);
    d.wait("moving", 60, "running", |p| p["state"] == "running");
    let body = serde_json::json!({"pipeline": "moving", "query": "bake bread", "k": 3, "mode": "vector"});
    let ask = || {
        let (status, _, answer) = d.post("/v1/search", &body);
        (
            status,
            serde_json::from_slice::<Value>(&answer).unwrap_or(Value::Null),
        )
    };
    wait_until("the notes searchable", 60, || {
        let (status, found) = ask();
        status == 200 && hits(&found).len() == 3
    });

    let stop = AtomicBool::new(false);
    let answers = std::thread::scope(|scope| {
        let looped = scope.spawn(|| {
            let mut out = Vec::new();
            // Bounded, so a failure below (which never sets `stop`) still ends
            // the scope instead of hanging the test.
            let deadline = Instant::now() + Duration::from_secs(180);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                out.push(ask());
            }
            out
        });
        ws.ok(&migrate("start", &["--model", &second_model()]));
        // Written after the copy: only the daemon's stream can put it in the shadow.
        ws.write("data/tulips.md", "# Note\n\nTulips bloom in spring gardens.\n");
        wait_until("the stream writing both tables", 60, || {
            let st = status(&ws);
            st["caught_up"] == true && st["chunks_total"] == 6
        });
        ws.ok(&migrate("promote", &[]));
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        looped.join().unwrap()
    });
    assert!(
        answers.iter().all(|(s, f)| *s == 200 && hits(f).len() == 3),
        "{answers:?}"
    );
    let seen: BTreeSet<String> = answers.iter().flat_map(|(_, f)| fingerprints(f)).collect();
    let rec = record(&ws);
    let expected = [&rec["from_fingerprint"], &rec["fingerprint"]].map(|v| v.as_str().unwrap().to_string());
    assert_eq!(seen, BTreeSet::from(expected), "the loop ran through the promote");
    assert!(d.log().contains("changed: reloading"), "{}", d.log());
    let (code, log) = d.terminate();
    assert!(code.success(), "{log}");
}
