//! End-to-end runs of the `sluice` binary over real files, read back with `sluice sql`.

use crate::util;

use util::{basic_pipeline, Workspace};

fn mixed_corpus(ws: &Workspace) {
    ws.write(
        "data/guide.md",
        "# Guide\n\nMarkdown body about backpressure.\n\n## Part two\n\nMore words here.\n",
    );
    ws.write(
        "data/page.html",
        "<html><head><title>Page title</title><script>var hidden = 1;</script></head><body><h1>Heading</h1><p>HTML body text.</p></body></html>",
    );
    ws.write("data/notes.txt", "Plain text notes about checkpoints.\n");
    ws.write(
        "data/doc.json",
        r#"{"title": "JSON doc", "text": "JSON body about chunking."}"#,
    );
    ws.write(
        "data/events.jsonl",
        "{\"text\": \"first event\"}\n{not json\n{\"text\": \"second event\"}\n",
    );
    ws.fixture("hello.pdf", "data/hello.pdf");
    ws.write("data/NOTICE", "A file with no extension is sniffed as text.\n");
}

#[test]
fn every_format_is_parsed_and_chunked_into_parquet() {
    let ws = Workspace::new();
    mixed_corpus(&ws);
    ws.write("p.yaml", basic_pipeline("", "1s"));
    let summary = ws.ok(&["run", "p.yaml"]);
    assert!(summary.contains("7 documents"), "{summary}");

    let rows = ws.query(
        "p.yaml",
        "SELECT content_type, title, text FROM parse ORDER BY doc_id",
    );
    let by_type =
        |t: &str| -> Vec<&serde_json::Value> { rows.iter().filter(|r| r["content_type"] == t).collect() };
    assert_eq!(rows.len(), 7);
    let md = by_type("text/markdown");
    assert_eq!(md[0]["title"], "Guide");
    assert!(md[0]["text"]
        .as_str()
        .unwrap()
        .starts_with("# Guide\n\nMarkdown body"));
    let html = by_type("text/html");
    assert_eq!(html[0]["title"], "Page title");
    let html_text = html[0]["text"].as_str().unwrap();
    assert!(
        html_text.contains("HTML body text.") && !html_text.contains("hidden"),
        "{html_text}"
    );
    let json = by_type("application/json");
    assert_eq!(
        (json[0]["title"].as_str(), json[0]["text"].as_str()),
        (Some("JSON doc"), Some("JSON body about chunking."))
    );
    assert_eq!(
        by_type("application/x-ndjson")[0]["text"],
        "first event\n\nsecond event"
    );
    let pdf = by_type("application/pdf");
    assert!(
        pdf[0]["text"]
            .as_str()
            .unwrap()
            .contains("Sluice turns documents into vectors."),
        "{:?}",
        pdf[0]
    );
    assert_eq!(by_type("text/plain").len(), 2);

    // The broken JSONL line is a dead letter that names the line.
    let letters = ws.query("p.yaml", "SELECT doc_id, stage, error FROM dead_letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0]["error"]
        .as_str()
        .unwrap()
        .starts_with("line 2: invalid JSON"));

    // Every chunk reached the sink, and chunk offsets point into the parsed text.
    let chunks = ws.count("p.yaml", "SELECT count(*) FROM chunks");
    assert!(chunks >= 7);
    assert_eq!(ws.count("p.yaml", "SELECT count(*) FROM out_log"), chunks);
    assert_eq!(
        ws.count(
            "p.yaml",
            "SELECT count(*) FROM chunks c JOIN parse p ON c.doc_id = p.doc_id \
             WHERE substr(p.text, CAST(c.char_start AS BIGINT) + 1, CAST(c.char_end - c.char_start AS BIGINT)) <> c.text"
        ),
        0
    );
}

#[test]
fn corrupt_and_panicking_pdfs_go_to_the_dlq_and_the_rest_is_written() {
    let ws = Workspace::new();
    ws.fixture("hello.pdf", "data/good.pdf");
    ws.fixture("truncated.pdf", "data/truncated.pdf");
    ws.fixture("random-bytes.pdf", "data/random.pdf");
    ws.fixture("panics-pdf-extract.pdf", "data/panics.pdf");
    ws.write("data/empty.txt", "");
    ws.write("data/latin1.txt", b"caf\xe9 au lait\n");
    ws.write("data/ok.txt", "This one is fine.\n");
    ws.write("p.yaml", basic_pipeline("", "1s"));
    ws.ok(&["run", "p.yaml"]);

    let letters = ws.query(
        "p.yaml",
        "SELECT doc_id, stage, error FROM dead_letters ORDER BY doc_id",
    );
    let reason = |name: &str| -> String {
        letters
            .iter()
            .find(|l| l["doc_id"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name} is not in the DLQ: {letters:?}"))["error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        reason("panics.pdf").contains("panicked"),
        "{}",
        reason("panics.pdf")
    );
    assert!(
        reason("truncated.pdf").starts_with("PDF"),
        "{}",
        reason("truncated.pdf")
    );
    assert!(
        reason("random.pdf").starts_with("PDF"),
        "{}",
        reason("random.pdf")
    );
    assert_eq!(reason("empty.txt"), "document has no text");
    assert!(reason("latin1.txt").contains("not valid UTF-8"));
    assert_eq!(letters.len(), 5);
    assert!(letters.iter().all(|l| l["stage"] == "parse"));

    let written = ws.query("p.yaml", "SELECT DISTINCT doc_id FROM out ORDER BY doc_id");
    let names: Vec<&str> = written
        .iter()
        .map(|r| r["doc_id"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(names, vec!["good.pdf", "ok.txt"]);

    let listed = ws.ok(&[
        "dlq",
        "list",
        "--pipeline",
        "p.yaml",
        "--stage",
        "parse",
        "--doc-id",
        "panics",
    ]);
    assert!(
        listed.contains("panics.pdf") && !listed.contains("random.pdf"),
        "{listed}"
    );
}

#[test]
fn oversized_files_are_dead_letters_from_the_source() {
    let ws = Workspace::new();
    ws.write("data/big.txt", "x".repeat(5000));
    ws.write("data/small.txt", "small");
    ws.write("p.yaml", basic_pipeline("  max_file_size: 1KB", "1s"));
    ws.ok(&["run", "p.yaml"]);
    let letters = ws.query("p.yaml", "SELECT doc_id, stage, error FROM dead_letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["stage"], "source");
    assert!(letters[0]["error"]
        .as_str()
        .unwrap()
        .contains("over max_file_size"));
    assert_eq!(ws.count("p.yaml", "SELECT count(*) FROM out"), 1);
}

#[test]
fn a_rerun_reparses_only_changed_files_and_deletes_removed_ones() {
    let ws = Workspace::new();
    for i in 0..5 {
        ws.write(
            &format!("data/doc{i}.md"),
            format!("# Doc {i}\n\nVersion one of document {i}.\n"),
        );
    }
    ws.write("p.yaml", basic_pipeline("", "1s"));
    let first = ws.ok(&["run", "p.yaml"]);
    assert!(first.contains("5 documents"), "{first}");
    let first_epoch = ws.count("p.yaml", "SELECT max(epoch) FROM out_log");

    // Unchanged: nothing is read again.
    let again = ws.ok(&["run", "p.yaml"]);
    assert!(again.contains("0 documents"), "{again}");

    std::thread::sleep(std::time::Duration::from_millis(20));
    ws.write(
        "data/doc1.md",
        "# Doc 1\n\nVersion TWO, now longer than before.\n",
    );
    std::fs::remove_file(ws.path("data/doc3.md")).unwrap();
    let second = ws.ok(&["run", "p.yaml"]);
    assert!(second.contains("2 documents"), "{second}");

    let new_rows = ws.query(
        "p.yaml",
        &format!("SELECT doc_id, op, text FROM out_log WHERE epoch > {first_epoch} ORDER BY doc_id"),
    );
    assert_eq!(new_rows.len(), 2, "{new_rows:?}");
    assert!(new_rows[0]["doc_id"].as_str().unwrap().ends_with("doc1.md"));
    assert_eq!(new_rows[0]["op"], "upsert");
    assert!(new_rows[0]["text"].as_str().unwrap().contains("Version TWO"));
    assert!(new_rows[1]["doc_id"].as_str().unwrap().ends_with("doc3.md"));
    assert_eq!(new_rows[1]["op"], "delete");

    // The current-state view has the new version and not the deleted document.
    let current = ws.query("p.yaml", "SELECT doc_id, text FROM out ORDER BY doc_id");
    assert_eq!(current.len(), 4);
    assert!(current
        .iter()
        .all(|r| !r["doc_id"].as_str().unwrap().ends_with("doc3.md")));
    assert!(current[1]["text"].as_str().unwrap().contains("Version TWO"));
}

#[test]
fn sql_over_taps_counts_rows_and_refuses_ddl() {
    let ws = Workspace::new();
    for i in 0..12 {
        ws.write(
            &format!("data/{i}.txt"),
            format!("Document number {i}. ").repeat(40 * (i + 1)),
        );
    }
    ws.write("p.yaml", basic_pipeline("", "1s"));
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.count("p.yaml", "SELECT count(*) FROM parse"), 12);
    let chunks = ws.count("p.yaml", "SELECT count(*) FROM chunks");
    assert_eq!(ws.count("p.yaml", "SELECT count(*) FROM out"), chunks);
    assert_eq!(
        ws.count("p.yaml", "SELECT count(DISTINCT chunk_id) FROM out_log"),
        chunks
    );
    assert_eq!(ws.count("p.yaml", "SELECT max(token_count) FROM chunks"), 64);

    for ddl in [
        "CREATE TABLE t AS SELECT 1",
        "DROP TABLE parse",
        "INSERT INTO parse SELECT * FROM parse",
        "COPY (SELECT 1) TO 'x.csv'",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/hostname'",
    ] {
        let out = ws.sluice(&["sql", "--pipeline", "p.yaml", ddl]);
        assert_eq!(out.status.code(), Some(2), "{ddl}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("refused"), "{ddl}: {err}");
    }
    let csv = ws.ok(&[
        "sql",
        "--pipeline",
        "p.yaml",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM parse",
    ]);
    assert_eq!(csv.trim(), "n\n12");
    let table = ws.ok(&["sql", "--pipeline", "p.yaml", "SELECT count(*) AS n FROM parse"]);
    assert!(table.contains("| n  |") && table.contains("| 12 |"), "{table}");
}

#[test]
fn a_sql_stage_filters_and_computes_columns() {
    let ws = Workspace::new();
    ws.write("data/a.txt", "short");
    ws.write("data/b.txt", "a much longer document with many more words in it");
    ws.write(
        "p.yaml",
        r#"name: sqltest
source: {type: files, path: ./data}
stages:
  - {type: parse}
  - name: long_docs
    type: sql
    tap: true
    query: SELECT doc_id, op, length(text) AS chars, upper(text) AS shout FROM input WHERE length(text) > 10 OR op = 'delete'
sinks:
  - {name: out, type: parquet, path: ./out}
"#,
    );
    ws.ok(&["run", "p.yaml"]);
    let rows = ws.query("p.yaml", "SELECT chars, shout FROM long_docs");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["chars"], 49);
    assert_eq!(
        rows[0]["shout"],
        "A MUCH LONGER DOCUMENT WITH MANY MORE WORDS IN IT"
    );
}

#[test]
fn a_pdf_past_its_timeout_is_a_dead_letter_and_the_run_goes_on() {
    let ws = Workspace::new();
    ws.write("data/slow.pdf", util::slow_pdf(200_000));
    ws.fixture("hello.pdf", "data/good.pdf");
    ws.write("data/ok.txt", "This one is fine.\n");
    ws.write(
        "p.yaml",
        basic_pipeline("", "1s").replace("timeout: 10s", "pdf_timeout: 300ms"),
    );
    let summary = ws.ok(&["run", "p.yaml"]);
    assert!(summary.contains("1 dead letters"), "{summary}");
    let letters = ws.query("p.yaml", "SELECT doc_id, stage, error FROM dead_letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0]["doc_id"].as_str().unwrap().ends_with("slow.pdf"));
    assert_eq!(letters[0]["error"], "PDF parser timed out after 300ms");
    let written = ws.count("p.yaml", "SELECT count(DISTINCT doc_id) FROM out");
    assert_eq!(written, 2);

    // Without the deadline the same file parses: the timeout, not the file, failed it.
    let ws2 = Workspace::new();
    ws2.write("data/slow.pdf", util::slow_pdf(2_000));
    ws2.write("p.yaml", basic_pipeline("", "1s"));
    ws2.ok(&["run", "p.yaml"]);
    let text = ws2.query("p.yaml", "SELECT text FROM parse");
    assert!(
        text[0]["text"].as_str().unwrap().contains("word 1999"),
        "{text:?}"
    );
}

#[test]
fn the_progress_bar_shows_on_a_terminal_and_not_in_a_pipe() {
    let ws = Workspace::new();
    mixed_corpus(&ws);
    ws.write("p.yaml", basic_pipeline("", "1s"));
    // `script` gives the run a pseudo-terminal for stdout and stderr.
    let cmd = format!("{} run p.yaml", env!("CARGO_BIN_EXE_sluice"));
    let out = std::process::Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .current_dir(ws.dir.path())
        .output()
        .expect("run `script` (util-linux)");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(
        tty.contains(" documents, ETA ") && tty.contains("rows out"),
        "no progress bar on a terminal:\n{tty}"
    );
    assert!(tty.contains("7 documents"), "{tty}");

    let ws2 = Workspace::new();
    mixed_corpus(&ws2);
    ws2.write("p.yaml", basic_pipeline("", "1s"));
    let out = ws2.sluice(&["run", "p.yaml"]);
    let piped = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The bar's own words (its template), which nothing else prints.
    assert!(
        !piped.contains(" documents, ETA ") && !piped.contains("rows out"),
        "a progress bar in a pipe:\n{piped}"
    );
    assert!(
        piped.contains("7 documents"),
        "the summary is still printed:\n{piped}"
    );
}

/// Sinks hold an epoch until its barrier, so an epoch is also cut by size: with a
/// slow sink, a long interval must not let one epoch grow without bound.
#[test]
fn an_epoch_is_cut_once_it_carries_max_bytes() {
    let ws = Workspace::new();
    for i in 0..20 {
        ws.write(
            &format!("data/doc{i:02}.txt"),
            "Some text of a document. ".repeat(40),
        );
    }
    let p =
        basic_pipeline("  batch_size: 1", "1h").replace("  interval: 1h", "  interval: 1h\n  max_bytes: 2KB");
    ws.write("p.yaml", p);
    let out = ws.ok(&["run", "p.yaml"]);
    let epoch: u64 = out
        .split("checkpoint epoch ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        epoch >= 10,
        "one epoch per document or so, not one for the run: {out}"
    );
    assert_eq!(ws.count("p.yaml", "SELECT count(DISTINCT doc_id) FROM out"), 20);
}
