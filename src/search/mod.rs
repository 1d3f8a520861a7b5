//! `sluice search` and the daemon's `POST /v1/search`: the `k` rows of a
//! pipeline's vector sink that best answer a query, by vector, by full text,
//! or by both fused, with their scores and lineage.
//!
//! - **vector**: the query is embedded with the pipeline's own embed stage
//!   and the store returns its nearest rows ([`SinkTable::nearest`]).
//! - **text**: the store's full-text index ranks the rows
//!   ([`SinkTable::matching`]; the sink needs `full_text`).
//! - **hybrid**: both, each asked for more candidates than `k`, fused by
//!   reciprocal rank ([`fuse::rrf`]) on the chunk id.
//!
//! A `--where` predicate ([`filter`]) goes to the store with the search, so
//! the store returns `k` rows that match, not the matching few of its top `k`.
//! The engine never names a store: it asks the sink's table what it can do.

pub mod filter;
pub mod fuse;

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, Float32Array, RecordBatch};
use arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sluice_connector_sdk::read::{Filter, SinkTable, DISTANCE, SCORE};

use crate::migrate::{self, plan::Target};
use crate::plan::Plan;
use crate::{Error, Result};

/// How to rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Vector,
    Text,
    Hybrid,
}

/// The most rows one search returns.
pub const MAX_K: usize = 1000;
/// The longest query text.
pub const MAX_QUERY_BYTES: usize = 8192;
/// A hybrid search asks each ranking for this many times `k` candidates
/// (at least [`MIN_CANDIDATES`]), so that an item ranked low by one and high
/// by the other still meets in the fusion.
const CANDIDATES_PER_HIT: usize = 4;
const MIN_CANDIDATES: usize = 50;

/// One search.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub query: String,
    /// The sink to search; by default the pipeline's only searchable sink.
    #[serde(default)]
    pub sink: Option<String>,
    #[serde(default = "default_k")]
    pub k: usize,
    /// By default hybrid where the sink keeps a full-text index, else vector.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// A predicate on the sink's columns (see [`filter`]).
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
}

fn default_k() -> usize {
    10
}

/// A row a store returned (as JSON, its vector left out) and the value it
/// ranked by (distance or text relevance).
type Found = (Map<String, Value>, Option<f32>);

/// One row found.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub rank: usize,
    /// What the mode ranks by, larger is better: 1 − distance (vector), the
    /// store's text relevance (text), the fused reciprocal-rank score (hybrid).
    pub score: f64,
    /// The distance to the query vector, where the vector search found the row.
    pub distance: Option<f32>,
    /// The store's text relevance, where the text search found the row.
    pub text_score: Option<f32>,
    /// The row's columns (its vector left out), its lineage among them.
    pub row: Map<String, Value>,
}

/// What a search answers.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub pipeline: String,
    pub sink: String,
    pub mode: Mode,
    pub k: usize,
    #[serde(rename = "where")]
    pub filter: Option<String>,
    pub took_ms: f64,
    pub hits: Vec<Hit>,
}

/// The searchable sinks of `plan`, each as it is served now (a sink in a
/// model migration from the table its record names).
pub fn searchable(plan: &Plan) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for s in plan.sinks.iter().filter(|s| s.shadow.is_none()) {
        if let Some(t) = migrate::plan::serving(plan, &s.name)? {
            if t.table.can_search() {
                out.push(t);
            }
        }
    }
    Ok(out)
}

/// The sink `wanted` names, or the only searchable one, as served now.
pub fn pick(plan: &Plan, wanted: Option<&str>) -> Result<Target> {
    let mut all = searchable(plan)?;
    let names: Vec<String> = all.iter().map(|t| t.sink.clone()).collect();
    if names.is_empty() {
        return Err(Error::Usage(format!(
            "pipeline `{}` has no sink whose store can search",
            plan.name
        )));
    }
    match wanted {
        Some(w) => match all.iter().position(|t| t.sink == w) {
            Some(i) => Ok(all.swap_remove(i)),
            None => Err(Error::Usage(format!(
                "`{w}` is not a searchable sink of `{}`; searchable: {}",
                plan.name,
                names.join(", ")
            ))),
        },
        None if all.len() == 1 => Ok(all.remove(0)),
        None => Err(Error::Usage(format!(
            "pipeline `{}` has several searchable sinks; name one with --sink: {}",
            plan.name,
            names.join(", ")
        ))),
    }
}

fn check(req: &Request) -> Result<()> {
    if req.query.trim().is_empty() {
        return Err(Error::Usage("the query text is empty".into()));
    }
    if req.query.len() > MAX_QUERY_BYTES {
        return Err(Error::Usage(format!(
            "the query text is over {MAX_QUERY_BYTES} bytes"
        )));
    }
    if req.k == 0 || req.k > MAX_K {
        return Err(Error::Usage(format!("k must be 1 to {MAX_K}, not {}", req.k)));
    }
    Ok(())
}

/// Run `req` against `plan`'s sink, as it is served now.
pub async fn search(plan: &Plan, req: &Request) -> Result<Results> {
    check(req)?;
    let target = pick(plan, req.sink.as_deref())?;
    search_in(plan, &target, req).await
}

/// Run `req` against `target` (its `sink` field is ignored).
pub async fn search_in(plan: &Plan, target: &Target, req: &Request) -> Result<Results> {
    check(req)?;
    let (sink, table) = (target.sink.clone(), &target.table);
    let mode = req.mode.unwrap_or(if table.can_match_text() {
        Mode::Hybrid
    } else {
        Mode::Vector
    });
    if mode != Mode::Vector && !table.can_match_text() {
        return Err(Error::Usage(format!(
            "sink `{sink}` keeps no full-text index, so it cannot search by text; set `full_text: true` on it (or use --mode vector)"
        )));
    }
    let filter = req
        .filter
        .as_deref()
        .map(|w| filter::parse(w, &table.schema()))
        .transpose()?;
    let started = Instant::now();
    let hits = match mode {
        Mode::Vector => {
            let found = nearest(plan, target, &req.query, req.k, filter.as_ref()).await?;
            ranked(found, |d| 1.0 - d as f64, true)
        }
        Mode::Text => {
            let found = matching(&sink, table, &req.query, req.k, filter.as_ref()).await?;
            ranked(found, |s| s as f64, false)
        }
        Mode::Hybrid => {
            let n = (req.k * CANDIDATES_PER_HIT).max(MIN_CANDIDATES);
            let (by_vector, by_text) = tokio::try_join!(
                nearest(plan, target, &req.query, n, filter.as_ref()),
                matching(&sink, table, &req.query, n, filter.as_ref()),
            )?;
            fused(by_vector, by_text, req.k)
        }
    };
    Ok(Results {
        pipeline: plan.name.clone(),
        sink,
        mode,
        k: req.k,
        filter: req.filter.clone(),
        took_ms: started.elapsed().as_secs_f64() * 1e3,
        hits,
    })
}

fn store_error(sink: &str, source: sluice_connector_sdk::ConnectorError) -> Error {
    Error::Connector {
        what: format!("searching sink `{sink}`"),
        source,
    }
}

/// The rows nearest to the embedded query, with their distances.
async fn nearest(
    plan: &Plan,
    target: &Target,
    query: &str,
    k: usize,
    filter: Option<&Filter>,
) -> Result<Vec<Found>> {
    let (sink, table) = (target.sink.as_str(), &target.table);
    let Some(embedder) = target.embedder.clone() else {
        return Err(Error::Usage(format!(
            "pipeline `{}` has no embed stage to embed the query with; use --mode text",
            plan.name
        )));
    };
    let text = query.to_string();
    let vector = tokio::task::spawn_blocking(move || embedder.embed_query(&text))
        .await
        .map_err(|e| Error::Internal(format!("the query embedding task failed: {e}")))?
        .map_err(|source| Error::Connector {
            what: "embedding the query".into(),
            source,
        })?;
    let batches = table
        .nearest(vector, k, filter)
        .await
        .map_err(|e| store_error(sink, e))?;
    rows(&batches, DISTANCE)
}

/// The rows that best match the query text, with their relevance.
async fn matching(
    sink: &str,
    table: &Arc<dyn SinkTable>,
    query: &str,
    k: usize,
    filter: Option<&Filter>,
) -> Result<Vec<Found>> {
    let batches = table
        .matching(query, k, filter)
        .await
        .map_err(|e| store_error(sink, e))?;
    rows(&batches, SCORE)
}

/// Each row as JSON (vectors left out) and its `extra` column.
fn rows(batches: &[RecordBatch], extra: &str) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    for b in batches.iter().filter(|b| b.num_rows() > 0) {
        let values = b
            .column_by_name(extra)
            .and_then(|c| c.as_any().downcast_ref::<Float32Array>().cloned());
        let schema = b.schema();
        let keep: Vec<usize> = (0..b.num_columns())
            .filter(|&i| {
                let f = schema.field(i);
                f.name() != extra
                    && !matches!(
                        f.data_type(),
                        DataType::FixedSizeList(..) | DataType::List(_) | DataType::LargeList(_)
                    )
            })
            .collect();
        let mut w = arrow::json::ArrayWriter::new(Vec::new());
        w.write(&b.project(&keep)?)?;
        w.finish()?;
        let rows: Vec<Map<String, Value>> = serde_json::from_slice(&w.into_inner())
            .map_err(|e| Error::Internal(format!("a search row as JSON: {e}")))?;
        for (i, row) in rows.into_iter().enumerate() {
            let v = values.as_ref().filter(|v| v.is_valid(i)).map(|v| v.value(i));
            out.push((row, v));
        }
    }
    Ok(out)
}

/// One store ranking as hits; `score` from its value.
fn ranked(found: Vec<Found>, score: impl Fn(f32) -> f64, vector: bool) -> Vec<Hit> {
    found
        .into_iter()
        .enumerate()
        .map(|(i, (row, v))| Hit {
            rank: i + 1,
            score: v.map(&score).unwrap_or(0.0),
            distance: v.filter(|_| vector),
            text_score: v.filter(|_| !vector),
            row,
        })
        .collect()
}

/// What identifies a row across the two rankings: its chunk id, else the row.
fn key(row: &Map<String, Value>) -> String {
    match row.get("chunk_id") {
        Some(Value::String(id)) => id.clone(),
        _ => Value::Object(row.clone()).to_string(),
    }
}

/// The vector and text rankings fused, the first `k`.
fn fused(by_vector: Vec<Found>, by_text: Vec<Found>, k: usize) -> Vec<Hit> {
    let mut found: std::collections::HashMap<String, Hit> = std::collections::HashMap::new();
    let mut rankings = vec![Vec::new(), Vec::new()];
    for (list, vector, ranking) in [(by_vector, true, 0), (by_text, false, 1)] {
        for (row, v) in list {
            let id = key(&row);
            rankings[ranking].push(id.clone());
            let hit = found.entry(id).or_insert_with(|| Hit {
                rank: 0,
                score: 0.0,
                distance: None,
                text_score: None,
                row,
            });
            if vector {
                hit.distance = v;
            } else {
                hit.text_score = v;
            }
        }
    }
    fuse::rrf(&rankings)
        .into_iter()
        .take(k)
        .enumerate()
        .filter_map(|(i, (id, score))| {
            let mut hit = found.remove(&id)?;
            hit.rank = i + 1;
            hit.score = score;
            Some(hit)
        })
        .collect()
}

impl Results {
    /// A table for a person: rank, score, document, chunk and the start of its text.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{} search of `{}` (pipeline `{}`{}): {} hits in {:.1} ms\n",
            serde_json::to_value(self.mode)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            self.sink,
            self.pipeline,
            self.filter
                .as_deref()
                .map(|w| format!(", where {w}"))
                .unwrap_or_default(),
            self.hits.len(),
            self.took_ms
        );
        out.push_str(&format!(
            "{:>4}  {:>8}  {:<32}  {:>5}  text\n",
            "rank", "score", "doc_id", "chunk"
        ));
        for h in &self.hits {
            let field = |c: &str| match h.row.get(c) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            let text: String = field("text").split_whitespace().collect::<Vec<_>>().join(" ");
            let text: String = text.chars().take(72).collect();
            out.push_str(&format!(
                "{:>4}  {:>8.4}  {:<32}  {:>5}  {text}\n",
                h.rank,
                h.score,
                field("doc_id"),
                field("chunk_index"),
            ));
        }
        out
    }
}
