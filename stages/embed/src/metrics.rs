//! What the embed stage counts of its own, shown by `/metrics`, the API, the
//! run summary and the dry run through [`OwnMetrics`].

use serde_json::json;

use super::drift::Drift;
use sluice_connector_sdk::metrics::{Counter, OwnMetrics, RateSeries, Sample, SeriesKind};

/// What the embed stage did.
#[derive(Debug, Default)]
pub struct EmbedMetrics {
    /// Rows run through the model.
    pub computed: Counter,
    /// Rows answered from the cache (or by an identical text in the same epoch).
    pub cache_hits: Counter,
    /// Rows cut to `max_tokens`.
    pub truncated: Counter,
    /// Real tokens fed to the model, and tokens including padding.
    pub tokens: Counter,
    pub padded_tokens: Counter,
    /// Forward passes.
    pub inferences: Counter,
    /// Time inside the model, in microseconds.
    pub busy_us: Counter,
    pub drift: Drift,
}

fn counter(name: &'static str, help: &'static str, value: u64) -> Sample {
    Sample {
        name,
        help,
        kind: SeriesKind::Counter,
        value: value as f64,
        labels: Vec::new(),
    }
}

fn gauge(name: &'static str, help: &'static str, value: f64) -> Sample {
    Sample {
        name,
        help,
        kind: SeriesKind::Gauge,
        value,
        labels: Vec::new(),
    }
}

impl OwnMetrics for EmbedMetrics {
    fn samples(&self) -> Vec<Sample> {
        let (computed, hits) = (self.computed.get(), self.cache_hits.get());
        if computed + hits == 0 && self.drift.norm_mean().is_none() {
            return Vec::new();
        }
        let mut out = vec![
            counter(
                "sluice_embed_tokens_total",
                "Tokens run through the model.",
                self.tokens.get(),
            ),
            counter(
                "sluice_embed_embeddings_total",
                "Chunks embedded by the model.",
                computed,
            ),
            counter(
                "sluice_embed_cache_hits_total",
                "Chunks answered from the embedding cache.",
                hits,
            ),
            gauge(
                "sluice_embed_cache_hit_ratio",
                "Cache hits over all chunks embedded or looked up.",
                hits as f64 / (computed + hits).max(1) as f64,
            ),
            counter(
                "sluice_embed_truncations_total",
                "Chunks cut to the model's max tokens.",
                self.truncated.get(),
            ),
        ];
        if let Some(norm) = self.drift.norm_mean() {
            out.push(gauge(
                "sluice_embed_norm_mean",
                "Running mean of the embeddings' L2 norm.",
                norm,
            ));
        }
        if let Some(d) = self.drift.centroid_distance() {
            out.push(gauge(
                "sluice_embed_centroid_distance",
                "Cosine distance of the latest epoch's centroid from the first epoch's.",
                d,
            ));
        }
        out
    }

    fn detail(&self) -> Option<(&'static str, serde_json::Value)> {
        Some((
            "embed",
            json!({
                "embedded": self.computed.get(),
                "cache_hits": self.cache_hits.get(),
                "truncated": self.truncated.get(),
                "tokens": self.tokens.get(),
                "norm_mean": self.drift.norm_mean(),
                "centroid_distance": self.drift.centroid_distance(),
            }),
        ))
    }

    /// `embed: 120 chunks embedded, 8 from cache, 0 truncated; 9144 tokens, 14% padding, 4210 tokens/s in the model`
    fn summary(&self, stage: &str) -> Option<String> {
        let tokens = self.tokens.get();
        let padded = self.padded_tokens.get().max(tokens);
        let busy = self.busy_us.get() as f64 / 1e6;
        let rate = if busy > 0.0 { tokens as f64 / busy } else { 0.0 };
        let padding = if padded > 0 {
            100.0 * (padded - tokens) as f64 / padded as f64
        } else {
            0.0
        };
        Some(format!(
            "{stage}: {} chunks embedded, {} from cache, {} truncated; {tokens} tokens, {padding:.0}% padding, {rate:.0} tokens/s in the model",
            self.computed.get(),
            self.cache_hits.get(),
            self.truncated.get(),
        ))
    }

    fn end_epoch(&self) {
        self.drift.end_epoch();
    }

    fn rate(&self) -> Option<RateSeries> {
        Some(RateSeries {
            name: "sluice_embed_embeddings_per_second",
            help: "Chunks embedded per second over the last 5 s window or more.",
            count: self.computed.get(),
        })
    }

    fn model_tokens(&self) -> Option<u64> {
        Some(self.tokens.get())
    }
}
