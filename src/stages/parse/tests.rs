//! One test per format through `parse_document`, and the transform's handling of
//! failures and deletes.

use std::sync::Arc;

use arrow::array::{Array, AsArray, LargeBinaryArray, StringArray, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use sluice_connector_sdk::documents;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("tests/fixtures")
        .join(name),
    )
    .unwrap()
}

fn parse(ctype: &str, bytes: &[u8]) -> Result<Parsed, String> {
    parse_document(&ParseConfig::default(), ctype, bytes)
        .map(|(p, _)| p)
        .map_err(|e| e.to_string())
}

#[test]
fn plain_text() {
    assert_eq!(parse("text/plain", b"just words\n").unwrap().text, "just words\n");
}

#[test]
fn markdown_keeps_headings() {
    let p = parse("text/markdown", b"# Title\n\nBody *em*.\n").unwrap();
    assert_eq!(p.text, "# Title\n\nBody em.");
    assert_eq!(p.title.as_deref(), Some("Title"));
}

#[test]
fn html_drops_scripts_keeps_title() {
    let p = parse(
        "text/html; charset=utf-8",
        b"<title>T</title><script>x()</script><p>Body</p>",
    )
    .unwrap();
    assert_eq!((p.text.as_str(), p.title.as_deref()), ("Body", Some("T")));
}

#[test]
fn json_and_jsonl_use_the_text_field() {
    let config = ParseConfig {
        json_text_field: "body".into(),
        ..Default::default()
    };
    let (p, _) = parse_document(&config, "application/json", br#"{"body": "from json"}"#).unwrap();
    assert_eq!(p.text, "from json");
    let (p, errors) = parse_document(
        &config,
        "application/x-ndjson",
        b"{\"body\": \"a\"}\n{\"nobody\": 1}\n",
    )
    .unwrap();
    assert_eq!(p.text, "a");
    assert_eq!(errors, vec!["line 2: no field `body`".to_string()]);
}

#[test]
fn pdf_text_is_extracted() {
    let p = parse("application/pdf", &fixture("hello.pdf")).unwrap();
    assert!(
        p.text.contains("Sluice turns documents into vectors."),
        "{}",
        p.text
    );
    assert!(p.text.contains("(with parentheses)"), "{}", p.text);
}

#[test]
fn broken_pdfs_are_errors_not_crashes() {
    let truncated = parse("application/pdf", &fixture("truncated.pdf")).unwrap_err();
    assert!(truncated.starts_with("PDF"), "{truncated}");
    let panics = parse("application/pdf", &fixture("panics-pdf-extract.pdf")).unwrap_err();
    assert!(panics.starts_with("PDF parser panicked"), "{panics}");
}

#[test]
fn unknown_content_types_are_errors() {
    assert_eq!(
        parse("image/png", b"\x89PNG").unwrap_err(),
        "unsupported content type `image/png`"
    );
}

fn batch(rows: &[(&str, &str, Option<&[u8]>, &str)]) -> RecordBatch {
    let n = rows.len();
    RecordBatch::try_new(
        documents::schema(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from(vec!["v1"; n])),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(LargeBinaryArray::from_iter(rows.iter().map(|r| r.2))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
            Arc::new(TimestampMicrosecondArray::from(vec![0; n]).with_timezone("UTC")),
            Arc::new(StringArray::from(vec![Some("{}"); n])),
        ],
    )
    .unwrap()
}

#[test]
fn failures_become_dead_letters_and_the_batch_goes_on() {
    let input = documents::schema();
    let config = ParseConfig::default();
    let output = config.plan(&PlanContext::new("."), &input).unwrap();
    let ctx = StageContext::new("parse", input, output, ".");
    let StageRunner::PerBatch(transform) = config.build(&ctx).unwrap() else {
        panic!("parse runs per batch")
    };
    let panicking = fixture("panics-pdf-extract.pdf");
    let out = transform
        .apply(batch(&[
            ("a", "upsert", Some(b"hello"), "text/plain"),
            ("b", "upsert", Some(&panicking), "application/pdf"),
            ("c", "delete", None, "text/plain"),
            ("d", "upsert", Some(b"   "), "text/plain"),
        ]))
        .unwrap();
    let ids = out.batch.column_by_name("doc_id").unwrap().as_string::<i32>();
    assert_eq!(ids.iter().flatten().collect::<Vec<_>>(), vec!["a", "c"]);
    let text = out.batch.column_by_name("text").unwrap().as_string::<i64>();
    assert_eq!(text.value(0), "hello");
    assert!(text.is_null(1), "a delete row has no text");
    assert!(out.batch.column_by_name("content").is_none());
    let letters: Vec<(&str, &str)> = out
        .dead_letters
        .iter()
        .map(|l| (l.doc_id.as_str(), l.stage.as_str()))
        .collect();
    assert_eq!(letters, vec![("b", "parse"), ("d", "parse")]);
    assert!(out.dead_letters[0].error.contains("panicked"));
}
