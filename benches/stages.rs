//! Criterion benches of the CPU-bound stages: parse per format, chunk, and the SQL
//! stage per batch (planned once vs planned per batch). Numbers and commands are in
//! benches/README.md.
//!
//! The chunk bench reads a text corpus from SLUICE_BENCH_CORPUS (a folder of
//! .txt files; `benches/corpus.sh` fetches the Python docs used in README), or
//! falls back to the bundled sample corpus.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::stages::chunk::{Encoding, Splitter, Strategy};
use sluice::stages::parse::{parse_document, ParseConfig};
use sluice::stages::sql::PlannedQuery;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_dir_files(dir: &std::path::Path, ext: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(ext) {
                out.push(std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn parse(c: &mut Criterion) {
    let data = root().join("pipelines/data");
    let config = ParseConfig::default();
    let mut group = c.benchmark_group("parse");
    for (name, ext, ctype) in [
        ("markdown", ".md", "text/markdown"),
        ("html", ".html", "text/html"),
        ("text", ".txt", "text/plain"),
        ("json", ".json", "application/json"),
        ("pdf", ".pdf", "application/pdf"),
    ] {
        let docs = read_dir_files(&data, ext);
        let bytes: usize = docs.iter().map(Vec::len).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                for d in &docs {
                    black_box(parse_document(&config, ctype, d).unwrap());
                }
            })
        });
    }
    group.finish();
}

fn chunk(c: &mut Criterion) {
    let corpus = std::env::var_os("SLUICE_BENCH_CORPUS").map(PathBuf::from);
    let docs: Vec<String> = match &corpus {
        Some(dir) => read_dir_files(dir, ".txt"),
        None => read_dir_files(&root().join("pipelines/data"), ".md"),
    }
    .into_iter()
    .map(|b| String::from_utf8_lossy(&b).into_owned())
    .collect();
    let bytes: usize = docs.iter().map(String::len).sum();
    let mut group = c.benchmark_group("chunk");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(10);
    for (name, strategy) in [
        ("text_256_32", Strategy::Text),
        ("markdown_256_32", Strategy::Markdown),
    ] {
        let splitter = Splitter {
            encoding: Encoding::Cl100kBase,
            max_tokens: 256,
            overlap_tokens: 32,
            strategy,
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                for d in &docs {
                    black_box(splitter.split(d));
                }
            })
        });
    }
    // The stage with `parallelism: 2`: two batches of documents on two threads.
    let splitter = Splitter {
        encoding: Encoding::Cl100kBase,
        max_tokens: 256,
        overlap_tokens: 32,
        strategy: Strategy::Text,
    };
    group.bench_function("text_256_32_two_threads", |b| {
        b.iter(|| {
            let (left, right) = docs.split_at(docs.len() / 2);
            std::thread::scope(|s| {
                for half in [left, right] {
                    let splitter = &splitter;
                    s.spawn(move || {
                        for d in half {
                            black_box(splitter.split(d));
                        }
                    });
                }
            });
        })
    });
    group.bench_function("encode_only_bpe_openai", |b| {
        b.iter(|| {
            for d in &docs {
                black_box(bpe_openai::cl100k_base().encode(d.as_str()));
            }
        })
    });
    let tiktoken = tiktoken_rs::cl100k_base().unwrap();
    group.bench_function("encode_only_tiktoken_rs", |b| {
        b.iter(|| {
            for d in &docs {
                black_box(tiktoken.encode_ordinary(d));
            }
        })
    });
    group.finish();
}

fn sql(c: &mut Criterion) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("token_count", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..1024).map(|i| format!("file:///doc/{i}")),
            )),
            Arc::new(Int64Array::from_iter_values(0..1024)),
        ],
    )
    .unwrap();
    let query = "SELECT doc_id, token_count * 2 AS doubled FROM input WHERE token_count % 3 = 0";
    let mut group = c.benchmark_group("sql_stage_1024_rows");
    group.throughput(Throughput::Elements(1024));
    let planned = PlannedQuery::new(query, schema.clone()).unwrap();
    group.bench_function("planned_once", |b| {
        b.iter(|| black_box(planned.run(batch.clone()).unwrap()))
    });
    group.bench_function("planned_per_batch", |b| {
        b.iter(|| {
            let q = PlannedQuery::new(query, schema.clone()).unwrap();
            black_box(q.run(batch.clone()).unwrap())
        })
    });
    group.finish();
}

criterion_group!(benches, parse, chunk, sql);
criterion_main!(benches);
