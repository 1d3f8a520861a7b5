//! The `embed` stage: a text column in, an `embedding` column of
//! `FixedSizeList<Float32, dim>` out, computed with ONNX Runtime.
//!
//! ```yaml
//! - type: embed
//!   model: ../models/all-minilm-l6-v2   # holds model.onnx and tokenizer.json
//!   # onnxruntime: /path/libonnxruntime.so  (else ORT_DYLIB_PATH, else next to the model)
//!   pooling: mean            # mean | cls
//!   normalize: true
//!   max_tokens: 256          # longer chunks are cut, and counted
//!   batch_size: 32           # rows per forward pass, at most
//!   max_batch_tokens: 2048   # and padded tokens (rows × longest) per pass, at most
//!   max_wait: 100ms          # how long rows wait for a fuller micro-batch
//!   threads: 0               # ONNX Runtime intra-op threads; 0 = every core
//!   providers: [cpu]         # or [cuda, cpu] with the `cuda` feature
//!   cache: true              # reuse vectors of unchanged chunk texts
//! ```
//!
//! The model is loaded at plan time, so a missing library or model, an unknown
//! input name, or a mismatched dimension is a `validate` error. See [`batcher`]
//! for how rows are gathered, sorted by length and put back in order.

pub mod batcher;
pub mod cache;
pub mod drift;
pub mod metrics;
pub mod model;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow::datatypes::{Field, Schema, SchemaRef};
use serde::Deserialize;
use sluice_connector_sdk::{ConfigIssue, HumanDuration, PlanContext};

pub use model::{Model, ModelError, Tokens};
/// ONNX Runtime as this stage links it, for benches that run a model directly.
pub use ort;
use sluice_connector_sdk::stage::{
    require_text, QueryEmbedder, Remodeled, StageConfig, StageContext, StageRunner,
};
use sluice_connector_sdk::{ConnectorError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    Mean,
    Cls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Cpu,
    Cuda,
}

/// ONNX Runtime's graph optimizations at session creation (`optimization`).
/// `all` is fastest for most models; `off` saves memory (the quickstart's int8
/// model: 30 to 70 MiB of peak RSS at no measured cost in speed), while an fp32
/// model runs about 13% slower without them (benches/README.md, Memory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimization {
    #[default]
    All,
    Extended,
    Basic,
    Off,
}

#[derive(Deserialize)]
pub struct EmbedConfig {
    pub model: PathBuf,
    #[serde(default)]
    pub onnxruntime: Option<PathBuf>,
    #[serde(default = "default_text_column")]
    pub text_column: String,
    #[serde(default = "default_output_column")]
    pub output_column: String,
    #[serde(default = "default_pooling")]
    pub pooling: Pooling,
    #[serde(default = "yes")]
    pub normalize: bool,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Padded tokens a forward pass may hold: what ONNX Runtime allocates for
    /// one grows with rows × length (benches/README.md, Memory).
    #[serde(default = "default_max_batch_tokens")]
    pub max_batch_tokens: usize,
    #[serde(default = "default_max_wait")]
    pub max_wait: HumanDuration,
    #[serde(default)]
    pub threads: usize,
    #[serde(default = "default_providers")]
    pub providers: Vec<Provider>,
    #[serde(default = "yes")]
    pub cache: bool,
    #[serde(default)]
    pub optimization: Optimization,
    /// The model, loaded by `plan` and reused by `build`.
    #[serde(skip)]
    loaded: OnceLock<Arc<Model>>,
}

impl std::fmt::Debug for EmbedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedConfig")
            .field("model", &self.model)
            .field("pooling", &self.pooling)
            .field("max_tokens", &self.max_tokens)
            .field("batch_size", &self.batch_size)
            .field("max_batch_tokens", &self.max_batch_tokens)
            .finish_non_exhaustive()
    }
}

fn default_text_column() -> String {
    "text".into()
}
fn default_output_column() -> String {
    "embedding".into()
}
fn default_pooling() -> Pooling {
    Pooling::Mean
}
fn yes() -> bool {
    true
}
fn default_max_tokens() -> usize {
    256
}
fn default_batch_size() -> usize {
    32
}
fn default_max_batch_tokens() -> usize {
    2048
}
fn default_max_wait() -> HumanDuration {
    HumanDuration(Duration::from_millis(100))
}
fn default_providers() -> Vec<Provider> {
    vec![Provider::Cpu]
}

impl EmbedConfig {
    /// A config for `model_dir` with every default, for benches and `vector_search`.
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        EmbedConfig {
            model: model_dir.into(),
            onnxruntime: None,
            text_column: default_text_column(),
            output_column: default_output_column(),
            pooling: default_pooling(),
            normalize: true,
            max_tokens: default_max_tokens(),
            batch_size: default_batch_size(),
            max_batch_tokens: default_max_batch_tokens(),
            max_wait: default_max_wait(),
            threads: 0,
            providers: default_providers(),
            cache: true,
            optimization: Optimization::default(),
            loaded: OnceLock::new(),
        }
    }

    fn threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n,
        }
    }

    /// Load the model (once) from paths resolved against `ctx`.
    pub fn load(&self, ctx: &PlanContext) -> std::result::Result<Arc<Model>, ModelError> {
        if let Some(m) = self.loaded.get() {
            return Ok(m.clone());
        }
        let model_dir = ctx.resolve(&self.model);
        let library = self.onnxruntime.as_ref().map(|p| ctx.resolve(p));
        let model = Arc::new(Model::load(&model::LoadOptions {
            model_dir: &model_dir,
            library: library.as_deref(),
            threads: self.threads(),
            max_tokens: self.max_tokens,
            pooling: self.pooling,
            normalize: self.normalize,
            providers: &self.providers,
            optimization: self.optimization,
        })?);
        Ok(self.loaded.get_or_init(|| model).clone())
    }
}

/// The type of the embedding column for a model of `dim` dimensions.
pub use sluice_connector_sdk::vectors::embedding_type;

impl StageConfig for EmbedConfig {
    fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let positive = [
            ("max_tokens", self.max_tokens),
            ("batch_size", self.batch_size),
            ("max_batch_tokens", self.max_batch_tokens),
        ];
        for (key, v) in positive {
            if v == 0 {
                issues.push(ConfigIssue::new(Some(key), "must be at least 1"));
            }
        }
        if self.providers.is_empty() {
            issues.push(ConfigIssue::new(
                Some("providers"),
                "name at least one, e.g. [cpu]",
            ));
        }
        issues
    }

    fn plan(&self, ctx: &PlanContext, input: &SchemaRef) -> std::result::Result<SchemaRef, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        require_text(
            input,
            &self.text_column,
            "text_column",
            "the embed stage",
            Some("the embed stage comes after chunk"),
            &mut issues,
        );
        if input.field_with_name(&self.output_column).is_ok() {
            issues.push(ConfigIssue::new(
                Some("output_column"),
                format!("the input already has a column `{}`", self.output_column),
            ));
        }
        let model = match self.load(ctx) {
            Ok(m) => Some(m),
            Err(e) => {
                issues
                    .push(ConfigIssue::new(Some(e.config_key()), e.to_string()).with_hint(model::FETCH_HINT));
                None
            }
        };
        match model {
            Some(model) if issues.is_empty() => {
                let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
                fields.push(Field::new(
                    &self.output_column,
                    embedding_type(model.signature.dim),
                    true,
                ));
                Ok(Arc::new(Schema::new(fields)))
            }
            _ => Err(issues),
        }
    }

    /// The model's folder name and its fingerprint (its files and the
    /// settings that change a vector).
    fn lineage(&self) -> Vec<(String, String)> {
        use sluice_connector_sdk::lineage::{MODEL_FINGERPRINT, MODEL_ID};
        let Some(model) = self.loaded.get() else {
            return Vec::new();
        };
        let id = self
            .model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.model.display().to_string());
        vec![
            (MODEL_ID.to_string(), id),
            (MODEL_FINGERPRINT.to_string(), model.fingerprint.clone()),
        ]
    }

    fn query_embedder(&self) -> Option<Arc<dyn QueryEmbedder>> {
        self.loaded.get().map(|m| m.clone() as Arc<dyn QueryEmbedder>)
    }

    /// The same settings with `model`; the columns stay.
    fn remodel(&self, model: &std::path::Path) -> Option<Remodeled> {
        let config = EmbedConfig {
            model: model.to_path_buf(),
            onnxruntime: self.onnxruntime.clone(),
            text_column: self.text_column.clone(),
            output_column: self.output_column.clone(),
            pooling: self.pooling,
            normalize: self.normalize,
            max_tokens: self.max_tokens,
            batch_size: self.batch_size,
            max_batch_tokens: self.max_batch_tokens,
            max_wait: HumanDuration(self.max_wait.0),
            threads: self.threads,
            providers: self.providers.clone(),
            cache: self.cache,
            optimization: self.optimization,
            loaded: OnceLock::new(),
        };
        Some(Remodeled {
            config: Box::new(config),
            text_column: self.text_column.clone(),
            vector_column: self.output_column.clone(),
        })
    }

    fn build(&self, ctx: &StageContext) -> Result<StageRunner> {
        let model = self.loaded.get().cloned().ok_or_else(|| {
            ConnectorError::internal(format!(
                "stage `{}`: the model was not loaded at plan time",
                ctx.name
            ))
        })?;
        let cache = if self.cache {
            let dir = ctx.state_dir.join("cache").join("embed");
            Some(
                cache::EmbedCache::open(&dir, &model.fingerprint, model.signature.dim).map_err(|e| {
                    ConnectorError::external(format!("opening the embedding cache in {}", dir.display()))
                        .with_source(e)
                })?,
            )
        } else {
            None
        };
        let embed_metrics = Arc::new(metrics::EmbedMetrics::default());
        let own: Arc<dyn sluice_connector_sdk::metrics::OwnMetrics> = embed_metrics.clone();
        let _ = ctx.metrics.own.set(own);
        Ok(StageRunner::Buffered(Box::new(batcher::EmbedBatcher::new(
            batcher::Settings {
                sort_window: batcher::SORT_WINDOW,
                text_column: self.text_column.clone(),
                batch_size: self.batch_size,
                max_batch_tokens: self.max_batch_tokens,
                max_wait: self.max_wait.0,
                output: ctx.output.clone(),
            },
            Box::new(model),
            cache,
            embed_metrics,
        ))))
    }
}
