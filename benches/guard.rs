//! The guard stage, measured and asked (`benches/README.md`, "Guard"):
//!
//! ```sh
//! cargo bench --bench guard --profile dev -- throughput DIR   # MB/s of the stage over DIR's files
//! cargo bench --bench guard --profile dev -- predict FILE     # findings of each JSONL text, as JSONL
//! ```
//!
//! `throughput` runs the stage as a pipeline does (one Arrow batch per file,
//! every kind, `action: redact`), three passes, and prints the best and the
//! median. `predict` prints, for each `{"text": ...}` line, the findings as
//! `{"kind", "start", "end"}` in Unicode code points, for
//! `benches/guard/presidio.py accuracy`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{LargeStringArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use sluice_connector_sdk::stage::{StageConfig, StageContext, StageRunner};
use sluice_connector_sdk::PlanContext;
use sluice_guard::GuardConfig;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading the corpus").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn throughput(dir: &Path) {
    let mut paths = Vec::new();
    files(dir, &mut paths);
    paths.sort();
    let schema = Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("op", DataType::Utf8, false),
        Field::new("text", DataType::LargeUtf8, true),
    ]));
    let batches: Vec<RecordBatch> = paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .enumerate()
        .map(|(i, text)| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(vec![format!("doc-{i}")])),
                    Arc::new(StringArray::from(vec!["upsert"])),
                    Arc::new(LargeStringArray::from(vec![text])),
                ],
            )
            .unwrap()
        })
        .collect();
    let bytes: usize = batches
        .iter()
        .map(|b| {
            b.column(2)
                .as_any()
                .downcast_ref::<LargeStringArray>()
                .unwrap()
                .value(0)
                .len()
        })
        .sum();
    let config = GuardConfig::new();
    let output = config.plan(&PlanContext::new("."), &schema).expect("plans");
    let ctx = StageContext::new("guard", schema.clone(), output, std::env::temp_dir());
    let StageRunner::PerBatch(stage) = config.build(&ctx).expect("builds") else {
        unreachable!("the guard works per batch")
    };
    let mut rates = Vec::new();
    let mut findings = 0;
    for _ in 0..3 {
        let t = Instant::now();
        findings = 0;
        for b in &batches {
            let out = stage.apply(b.clone()).expect("runs");
            findings += out.audit.map_or(0, |a| a.num_rows());
        }
        rates.push(bytes as f64 / 1e6 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{{\"files\": {}, \"mb\": {:.2}, \"findings\": {findings}, \"mb_per_s_best\": {:.1}, \"mb_per_s_median\": {:.1}}}",
        batches.len(),
        bytes as f64 / 1e6,
        rates[2],
        rates[1]
    );
}

fn predict(file: &Path) {
    let scanner = GuardConfig::new().scanner().expect("rules compile");
    let text = std::fs::read_to_string(file).expect("reading the set");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let text = row["text"].as_str().unwrap_or_default();
        let chars = |byte: usize| text[..byte].chars().count();
        let found: Vec<serde_json::Value> = scanner
            .scan(text)
            .iter()
            .map(|f| serde_json::json!({"kind": f.kind.name(), "start": chars(f.start), "end": chars(f.end), "rule": f.rule}))
            .collect();
        println!("{}", serde_json::json!({ "findings": found }));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["throughput", dir] => throughput(Path::new(dir)),
        ["predict", file] => predict(Path::new(file)),
        _ => eprintln!("usage: guard throughput DIR | guard predict FILE.jsonl"),
    }
}
