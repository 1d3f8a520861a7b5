//! Embedding throughput on the chunk lengths of a real corpus, three ways, in one run:
//!
//! - (a) the sluice embed stage (tokenize, gather, sort, micro-batch, pool, restore
//!   order), fed batches of 256 chunks as the chunk stage emits them;
//! - (b) a plain loop calling ort directly on pre-tokenized rows, sorted by length
//!   over the whole set and cut into batches: the practical limit;
//! - (c) the same plain loop with every row padded to 128 tokens, as
//!   `tokenizer.json` does by default.
//!
//! All three use `max_tokens` 128 and count real (unpadded) tokens per second.
//!
//! ```sh
//! SLUICE_BENCH_CORPUS=$(bash benches/corpus.sh) cargo bench --bench embed --profile dev
//! ```
//! `SLUICE_EMBED_ROWS` (default 1024) is how many chunks are sampled;
//! `SLUICE_EMBED_CHUNK_TOKENS` (default 128) is the chunk size in cl100k tokens;
//! `SLUICE_BENCH_MAX_BATCH_TOKENS` sets the stage's `max_batch_tokens`;
//! `SLUICE_EMBED_PROVIDER=cuda` runs on the GPU (build with `--features cuda`).
//! `SLUICE_BENCH_MODEL` names the model folder under `models/` (default
//! `all-minilm-l6-v2`, the int8 model; `all-minilm-l6-v2-fp32` is the fp32 one).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use sluice::stages::chunk::{Encoding, Splitter, Strategy};
use sluice::stages::{StageConfig, StageContext, StageRunner};
use sluice_connector_sdk::PlanContext;
use sluice_embed::ort::session::Session;
use sluice_embed::ort::value::Tensor;
use sluice_embed::{EmbedConfig, Provider, Tokens};

const MAX_TOKENS: usize = 128;
const BATCH: usize = 32;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_texts(dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            read_texts(&p, out);
        } else if p.extension().is_some_and(|e| e == "txt" || e == "md") {
            out.push(String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned());
        }
    }
}

/// Chunks of the corpus cut at `SLUICE_EMBED_CHUNK_TOKENS` cl100k tokens (default
/// 128, as the quickstart; 16 overlap), sampled evenly down to `rows`.
fn chunks(rows: usize) -> Vec<String> {
    let max_tokens = std::env::var("SLUICE_EMBED_CHUNK_TOKENS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(128);
    let dir = std::env::var_os("SLUICE_BENCH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("pipelines/data"));
    let mut docs = Vec::new();
    read_texts(&dir, &mut docs);
    let splitter = Splitter {
        encoding: Encoding::Cl100kBase,
        max_tokens,
        overlap_tokens: 16,
        strategy: Strategy::Markdown,
    };
    let all: Vec<String> = docs
        .iter()
        .flat_map(|d| {
            splitter
                .split(d)
                .into_iter()
                .map(|s| d[s.byte_start..s.byte_end].to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let step = (all.len() / rows).max(1);
    println!(
        "corpus {}: {} documents, {} chunks, sampling every {step}th",
        dir.display(),
        docs.len(),
        all.len()
    );
    all.into_iter().step_by(step).take(rows).collect()
}

/// The model folder under `models/`: `SLUICE_BENCH_MODEL`, by default the int8
/// all-MiniLM-L6-v2 (`all-minilm-l6-v2-fp32` is the tests' fp32 graph).
fn model_dir() -> PathBuf {
    let name = std::env::var("SLUICE_BENCH_MODEL").unwrap_or_else(|_| "all-minilm-l6-v2".into());
    root().join("models").join(name)
}

fn config(provider: Provider) -> EmbedConfig {
    let mut c = EmbedConfig::new(model_dir());
    c.max_tokens = MAX_TOKENS;
    c.batch_size = BATCH;
    c.cache = false;
    c.providers = vec![provider];
    // SLUICE_BENCH_MAX_BATCH_TOKENS: the stage's `max_batch_tokens` (default 2048).
    if let Ok(n) = std::env::var("SLUICE_BENCH_MAX_BATCH_TOKENS") {
        c.max_batch_tokens = n.parse().expect("a number of tokens");
    }
    // SLUICE_BENCH_OPTIMIZATION=off|basic|extended|all: the stage's `optimization`.
    if let Ok(level) = std::env::var("SLUICE_BENCH_OPTIMIZATION") {
        c.optimization =
            serde_json::from_value(serde_json::json!(level)).expect("off, basic, extended or all");
    }
    c
}

/// (a) The stage, end to end. Returns real tokens per second.
fn stage(texts: &[String], provider: Provider) -> f64 {
    let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]));
    let config = config(provider);
    let output = config.plan(&PlanContext::new("/"), &schema).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ctx = StageContext::new("embed", schema.clone(), output, dir.path());
    let StageRunner::Buffered(mut stage) = config.build(&ctx).unwrap() else {
        unreachable!()
    };
    let batches: Vec<RecordBatch> = texts
        .chunks(256)
        .map(|c| {
            let a = StringArray::from(c.iter().map(String::as_str).collect::<Vec<_>>());
            RecordBatch::try_new(schema.clone(), vec![Arc::new(a)]).unwrap()
        })
        .collect();
    let started = Instant::now();
    let mut rows = 0;
    for b in batches {
        rows += stage
            .push(b)
            .unwrap()
            .iter()
            .map(|o| o.batch.num_rows())
            .sum::<usize>();
    }
    rows += stage
        .flush()
        .unwrap()
        .iter()
        .map(|o| o.batch.num_rows())
        .sum::<usize>();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(rows, texts.len());
    let tokens = ctx.metrics.own().and_then(|o| o.model_tokens()).unwrap_or(0);
    tokens as f64 / secs
}

/// (b) and (c): ort called directly. `pad_to`: pad every row to this length
/// instead of to the longest row of its batch.
fn plain_loop(session: &mut Session, rows: &[Tokens], pad_to: Option<usize>) -> f64 {
    let mut sorted: Vec<&Tokens> = rows.iter().collect();
    sorted.sort_by_key(|t| t.ids.len());
    let real: usize = rows.iter().map(|t| t.ids.len()).sum();
    let started = Instant::now();
    for batch in sorted.chunks(BATCH) {
        let len = pad_to.unwrap_or_else(|| batch.iter().map(|t| t.ids.len()).max().unwrap());
        let n = batch.len();
        let mut ids = vec![0i64; n * len];
        let mut mask = vec![0i64; n * len];
        for (r, t) in batch.iter().enumerate() {
            ids[r * len..r * len + t.ids.len()].copy_from_slice(&t.ids);
            mask[r * len..r * len + t.ids.len()].fill(1);
        }
        let types = vec![0i64; n * len];
        let inputs = sluice_embed::ort::inputs![
            "input_ids" => Tensor::from_array(([n, len], ids)).unwrap(),
            "attention_mask" => Tensor::from_array(([n, len], mask)).unwrap(),
            "token_type_ids" => Tensor::from_array(([n, len], types)).unwrap(),
        ];
        let out = session.run(inputs).unwrap();
        let (shape, _) = out["last_hidden_state"].try_extract_tensor::<f32>().unwrap();
        assert_eq!(shape[0] as usize, n);
    }
    real as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let provider = match std::env::var("SLUICE_EMBED_PROVIDER").as_deref() {
        Ok("cuda") => Provider::Cuda,
        _ => Provider::Cpu,
    };
    let rows: usize = std::env::var("SLUICE_EMBED_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let texts = chunks(rows);

    // The stage's own model load also loads the ONNX Runtime library for (b), (c).
    let config = config(provider);
    let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]));
    config.plan(&PlanContext::new("/"), &schema).unwrap();
    let model = config.load(&PlanContext::new("/")).unwrap();
    let strs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens = model.tokenize(&strs).unwrap();
    let lengths: Vec<usize> = tokens.iter().map(|t| t.ids.len()).collect();
    let real: usize = lengths.iter().sum();
    let truncated = tokens.iter().filter(|t| t.truncated).count();
    println!(
        "{} chunks, {real} tokens, mean {:.0}, {truncated} cut at {MAX_TOKENS}; provider {provider:?}",
        texts.len(),
        real as f64 / texts.len() as f64
    );

    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut builder = Session::builder(model.environment()).unwrap();
    builder = builder.with_intra_threads(threads).unwrap();
    builder = model.with_providers(builder).unwrap();
    let mut session = builder.commit_from_file(model_dir().join("model.onnx")).unwrap();

    // Warm up both paths once on a small slice.
    stage(&texts[..texts.len().min(64)], provider);
    plain_loop(&mut session, &tokens[..tokens.len().min(64)], None);

    let a = stage(&texts, provider);
    let b = plain_loop(&mut session, &tokens, None);
    let c = plain_loop(&mut session, &tokens, Some(MAX_TOKENS));
    println!("(a) sluice embed stage            {a:>9.0} tokens/s");
    println!("(b) plain ort loop, length-sorted {b:>9.0} tokens/s");
    println!("(c) plain ort loop, padded to 128 {c:>9.0} tokens/s");
    println!(
        "(a)/(b) = {:.2}   (a)/(c) = {:.2}   (b)/(c) = {:.2}",
        a / b,
        a / c,
        b / c
    );
}
