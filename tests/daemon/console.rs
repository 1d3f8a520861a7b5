//! The web console in headless Chromium against a real daemon running two real
//! pipelines: one into Parquet with a planted oversized file, one through the
//! real model into PostgreSQL + pgvector, whose table the test locks to slow
//! the sink on purpose. Each view is checked against what the daemon and the
//! stores say, and screenshotted (into `SLUICE_SCREENSHOTS` when set:
//! `scripts/screenshots.sh` writes the README's pictures that way).

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::{self, Feeder};
use crate::util::{self, Workspace};
use crate::webdriver::Browser;

const TOKEN: &str = "console-token-0123";

fn docs_pipeline(max_file_size: &str) -> String {
    format!(
        "name: docs\ncheckpoint: {{interval: 200ms}}\n\
         source: {{type: files, path: ../data/docs, watch: true, poll_interval: 100ms, max_file_size: {max_file_size}}}\n\
         stages:\n  - {{name: parse, type: parse}}\n  - {{name: chunks, type: chunk, max_tokens: 8, overlap_tokens: 0}}\n\
         sinks:\n  - {{name: out, type: parquet, path: ../out/docs}}\n"
    )
}

fn slow_pipeline(pg: &str, table: &str) -> String {
    let model = util::repo_root().join("models/all-minilm-l6-v2");
    format!(
        "name: slow\ncheckpoint: {{interval: 200ms}}\nchannels: {{max_rows: 16}}\n\
         source: {{type: files, path: ../data/slow, watch: true, poll_interval: 100ms}}\n\
         stages:\n  - {{name: parse, type: parse}}\n  - {{name: chunks, type: chunk, max_tokens: 32, overlap_tokens: 0}}\n\
         \x20 - {{name: embed, type: embed, model: \"{}\", batch_size: 8}}\n\
         sinks:\n  - {{name: vectors, type: pgvector, url: \"{pg}\", table: {table}, dimension: 384}}\n",
        model.display()
    )
}

/// Where screenshots go: `SLUICE_SCREENSHOTS`, or the test's own folder.
fn shots(ws: &Workspace) -> PathBuf {
    std::env::var_os("SLUICE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.path("screenshots"))
}

/// The doc_ids in the Parquet files under `dir`, read with the parquet crate.
fn parquet_docs(dir: &std::path::Path) -> Vec<String> {
    use arrow::array::AsArray;
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let file = std::fs::File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let ids = batch.column_by_name("doc_id").unwrap().as_string::<i32>();
            docs.extend(ids.iter().flatten().map(str::to_string));
        }
    }
    docs
}

/// One daemon, one browser, the views in turn.
struct Console {
    ws: Workspace,
    d: harness::Daemon,
    b: Browser,
    out: PathBuf,
    pg: String,
    table: String,
}

impl Console {
    fn pipelines_are_listed_paused_and_resumed(&self) {
        let (b, d, out) = (&self.b, &self.d, &self.out);
        // The page asks for the token once, then lists both pipelines.
        b.goto(&format!("{}/", d.url));
        let input = b.find("#token-input", 20);
        b.wait(20, "the token dialog", |b| {
            b.script("return document.querySelector('#token-dialog').open")
                .as_bool()
                .filter(|o| *o)
        });
        b.type_into(&input, TOKEN);
        b.click("#token-save", 5);
        b.wait(30, "both pipelines running with throughput", |b| {
            let rows = b.texts("#pipelines tbody tr");
            let running = rows.iter().filter(|r| r.contains("running")).count();
            let rate: f64 = b
                .find_all("tr[data-pipeline=docs] td.rate")
                .first()
                .map(|e| b.text(e).replace(',', "").parse().unwrap_or(0.0))
                .unwrap_or(0.0);
            (running == 2 && rate > 0.0).then_some(())
        });
        b.screenshot(&out.join("overview.png"));
        // Pause and resume from the overview.
        b.click("tr[data-pipeline=docs] button.pause", 5);
        b.wait(30, "docs paused", |b| {
            b.texts("tr[data-pipeline=docs]")
                .first()
                .filter(|t| t.contains("paused"))
                .cloned()
        });
        assert_eq!(d.pipeline("docs")["state"], "paused");
        b.click("tr[data-pipeline=docs] button.resume", 5);
        b.wait(30, "docs running again", |b| {
            b.texts("tr[data-pipeline=docs]")
                .first()
                .filter(|t| t.contains("running"))
                .cloned()
        });
        let stored = b.script("return sessionStorage.getItem('sluice-token')");
        assert_eq!(stored, TOKEN);
        assert!(!b.script("return location.href").as_str().unwrap().contains(TOKEN));
    }

    fn a_held_up_sink_fills_its_hop(&self) {
        let (b, d, out) = (&self.b, &self.d, &self.out);
        // The graph: every node of the data path, then a hop that fills when the
        // sink is held up on purpose, and drains when it is let go.
        b.goto(&format!("{}/#/p/slow/graph", d.url));
        for node in ["source", "parse", "chunks", "embed", "vectors"] {
            b.find(&format!("g.node[data-node={node}]"), 20);
        }
        let fill = |b: &Browser| -> f64 {
            b.find_all("line.hop[data-to=vectors]")
                .first()
                .and_then(|e| b.attr(e, "data-fill"))
                .and_then(|f| f.parse().ok())
                .unwrap_or(-1.0)
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (lock, connection) = rt
            .block_on(tokio_postgres::connect(&self.pg, tokio_postgres::NoTls))
            .unwrap();
        rt.spawn(connection);
        rt.block_on(lock.batch_execute(&format!(
            "BEGIN; LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            self.table
        )))
        .unwrap();
        let full = b.wait(60, "the queue into the locked sink to fill", |b| {
            Some(fill(b)).filter(|f| *f >= 0.5)
        });
        b.screenshot(&out.join("graph-backpressure.png"));
        let colour = b
            .find_all("line.hop[data-to=vectors]")
            .first()
            .and_then(|e| b.attr(e, "stroke"))
            .unwrap();
        assert_ne!(colour, "#2fb36a", "a hop {full} full is not drawn as healthy");
        rt.block_on(lock.batch_execute("COMMIT")).unwrap();
        b.wait(60, "the queue to drain once the sink is free", |b| {
            Some(fill(b)).filter(|f| (0.0..0.5).contains(f))
        });
    }

    fn a_dead_letter_is_shown_and_replayed(&self) {
        let (b, d, ws, out) = (&self.b, &self.d, &self.ws, &self.out);
        // Dead letters: the oversized file is listed, shown whole, and replayed
        // once the pipeline allows it, into the Parquet sink.
        b.goto(&format!("{}/#/p/docs/letters", d.url));
        let letter = b.wait(30, "the oversized file's letter", |b| {
            b.find_all("tr.letter")
                .into_iter()
                .find(|r| b.text(r).contains("big.txt"))
        });
        // Open this letter's row, not the first one listed.
        let id = b.attr(&letter, "data-id").unwrap();
        b.click(&format!("tr.letter[data-id='{id}'] .dl-show"), 5);
        let whole = b.text(&b.find("tr.letter-detail:not([hidden])", 5));
        assert!(
            whole.contains("big.txt") && whole.contains("max_file_size"),
            "{whole}"
        );
        b.screenshot(&out.join("dead-letters.png"));
        assert!(!parquet_docs(&ws.path("out/docs"))
            .iter()
            .any(|d| d.ends_with("big.txt")));
        ws.write("pipelines/docs.yaml", docs_pipeline("1MB"));
        d.wait("docs", 30, "reloaded", |p| {
            p["reloads"].as_u64().unwrap_or(0) >= 1
        });
        let letter = b
            .find_all("tr.letter")
            .into_iter()
            .find(|r| b.text(r).contains("big.txt"))
            .unwrap_or(letter);
        let id = b.attr(&letter, "data-id").unwrap();
        b.click(&format!("tr.letter[data-id='{id}'] .dl-pick"), 5);
        b.click("#dl-replay", 5);
        let flash = b.text(&b.find("#dl-flash", 30));
        assert!(flash.contains("replaying 1 document"), "{flash}");
        b.wait(60, "the replayed file in the Parquet sink", |_| {
            parquet_docs(&ws.path("out/docs"))
                .iter()
                .any(|d| d.ends_with("big.txt"))
                .then_some(())
        });
        b.wait(30, "the letter gone from the view", |b| {
            b.click("#dl-apply", 5);
            std::thread::sleep(Duration::from_millis(300));
            (!b.texts("tr.letter").iter().any(|t| t.contains("big.txt"))).then_some(())
        });
    }

    fn sql_answers_and_refuses(&self) {
        let (b, d, out) = (&self.b, &self.d, &self.out);
        // SQL: the tables with their columns, a query's rows, a refusal.
        b.goto(&format!("{}/#/p/docs/sql", d.url));
        for t in ["out", "dead_letters", "dead_letters_log"] {
            b.find(&format!("details[data-table={t}]"), 30);
        }
        let query = b.find("#sql-query", 5);
        b.clear(&query);
        b.type_into(
            &query,
            "SELECT count(DISTINCT doc_id) AS n, min(doc_id) AS doc FROM out WHERE doc_id LIKE '%big.txt'",
        );
        b.click("#sql-run", 5);
        let cells = b.wait(30, "the query's row", |b| {
            let cells = b.texts("#sql-result tbody td");
            (!cells.is_empty()).then_some(cells)
        });
        assert_eq!(cells[0], "1", "{cells:?}");
        assert!(cells[1].ends_with("big.txt"), "{cells:?}");
        b.screenshot(&out.join("sql.png"));
        b.clear(&query);
        b.type_into(&query, "DROP TABLE out");
        b.click("#sql-run", 5);
        let refused = b.text(&b.find("#sql-error", 30));
        assert!(refused.contains("refused"), "{refused}");
    }

    fn the_tail_follows_and_pauses(&self) {
        let (b, d, out) = (&self.b, &self.d, &self.out);
        // The live tail of a stage that is not tapped, filtered, then paused.
        b.goto(&format!("{}/#/p/docs/tail", d.url));
        b.wait(20, "the points to choose from", |b| {
            (b.find_all("#tail-point option").len() == 4).then_some(())
        });
        b.script("const s = document.querySelector('#tail-point'); s.value = 'chunks'; return s.value");
        b.type_into(&b.find("#tail-where", 5), "chunk_index = 0");
        b.click("#tail-toggle", 5);
        b.wait(30, "rows arriving in the tail", |b| {
            (b.find_all("tr.tail-row").len() >= 3).then_some(())
        });
        let columns =
            b.script("return [...document.querySelectorAll('#tail-rows th')].map(h => h.textContent)");
        let at = columns
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c == "chunk_index")
            .unwrap_or_else(|| panic!("no chunk_index column in {columns}"));
        let values = b.script(&format!(
            "return [...document.querySelectorAll('tr.tail-row')].map(r => r.children[{at}].textContent)"
        ));
        assert!(values.as_array().unwrap().iter().all(|v| v == "0"), "{values}");
        b.screenshot(&out.join("tail.png"));
        b.click("#tail-toggle", 5);
        b.wait(10, "the tail paused", |b| {
            b.text(&b.find("#tail-status", 5))
                .contains("paused")
                .then_some(())
        });
        let shown = b.find_all("tr.tail-row").len();
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(
            b.find_all("tr.tail-row").len(),
            shown,
            "rows arrived while paused"
        );
    }

    fn search_and_eval_show(&self) {
        let (b, d, ws, out) = (&self.b, &self.d, &self.ws, &self.out);
        // Search over the pgvector sink, with scores; two evaluations, the last
        // one's table and both in the history.
        b.goto(&format!("{}/#/p/slow/search", d.url));
        b.find("#eval-none", 30);
        ws.write(
            "questions.jsonl",
            "{\"question\": \"some words about 10\", \"relevant\": [\"doc-00010.md\"]}\n\
             {\"question\": \"a note numbered 20\", \"relevant\": [\"doc-00020.md\"]}\n",
        );
        for _ in 0..2 {
            let report = ws.ok(&[
                "--state",
                "state",
                "eval",
                "--pipeline",
                "pipelines/slow.yaml",
                "--questions",
                "questions.jsonl",
                "--k",
                "5",
                "--format",
                "json",
            ]);
            assert!(report.contains("recall"), "{report}");
        }
        b.script("location.reload(); return 1");
        b.find("#eval-last tbody tr", 30);
        assert_eq!(b.find_all("#eval-history tbody tr").len(), 2);
        b.type_into(&b.find("#search-query", 5), "some words about a note");
        b.click("#search-run", 5);
        let hits = b.wait(60, "search hits", |b| {
            let rows = b.texts("#search-hits tbody tr");
            (!rows.is_empty()).then_some(rows)
        });
        assert!(hits[0].contains("Note") || hits[0].contains("doc-"), "{hits:?}");
        let head = b.texts("#search-hits th");
        assert_eq!(&head[..2], ["rank", "score"], "{head:?}");
        b.screenshot(&out.join("search.png"));
    }
}

#[test]
fn the_console_shows_pipelines_backpressure_letters_sql_tail_and_search_in_a_real_browser() {
    let services = util::services();
    let table = util::unique("console");
    let ws = Workspace::new();
    ws.write("pipelines/docs.yaml", docs_pipeline("1KB"));
    ws.write("pipelines/slow.yaml", slow_pipeline(&services.pg, &table));
    ws.write("data/docs/big.txt", "an oversized document. ".repeat(200));
    let feed = Feeder::start(
        vec![ws.path("data/docs"), ws.path("data/slow")],
        Duration::from_millis(100),
    );
    let d = harness::start(ws.dir.path(), &[], &[("SLUICE_API_TOKEN", TOKEN)]);
    d.wait("slow", 120, "wrote to pgvector", |p| {
        p["sinks"][0]["rows"].as_u64().unwrap_or(0) > 0
    });
    let c = Console {
        out: shots(&ws),
        b: Browser::start(),
        ws,
        d,
        pg: services.pg,
        table,
    };
    c.pipelines_are_listed_paused_and_resumed();
    c.a_held_up_sink_fills_its_hop();
    c.a_dead_letter_is_shown_and_replayed();
    c.sql_answers_and_refuses();
    c.the_tail_follows_and_pauses();
    c.search_and_eval_show();
    let (b, d) = (&c.b, &c.d);
    // Nothing was asked of any origin but the daemon's.
    let origins = b.script("return performance.getEntriesByType('resource').map(e => e.name)");
    for url in origins.as_array().unwrap() {
        assert!(
            url.as_str().unwrap().starts_with(&d.url),
            "the page reached {url}"
        );
    }
    drop(feed);
}
