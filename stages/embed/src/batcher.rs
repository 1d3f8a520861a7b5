//! Gathering rows into micro-batches and putting them back in order.
//!
//! Each input batch is queued whole. Its rows are looked up in the cache; the
//! misses are tokenized and join a pool shared by every queued batch. Once the
//! pool holds `sort_window` × `batch_size` rows it is sorted by token length and
//! cut into full micro-batches, each padded only to its own longest row and
//! holding at most `max_batch_tokens` padded tokens (what a forward pass
//! allocates grows with rows × length, so long rows go fewer at a time); a
//! partial remainder waits for more rows, for `max_wait`, or for a barrier
//! (`flush` runs it all).
//! A queued batch is emitted once all its rows have vectors, and batches leave in
//! the order they came in. Identical texts waiting at the same time are run once.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use sluice_connector_sdk::vectors;

use super::cache::{self, EmbedCache, Key};
use super::metrics::EmbedMetrics;
use super::model::{Model, ModelError, Tokens};
use sluice_connector_sdk::stage::{BufferedTransform, StageOutput};
use sluice_connector_sdk::{ConnectorError, Result};

/// What turns texts into vectors. The ONNX model in production; a stand-in in the
/// unit tests of this module.
pub trait Encoder: Send + Sync {
    fn dim(&self) -> usize;
    fn tokenize(&self, texts: &[&str]) -> std::result::Result<Vec<Tokens>, ModelError>;
    /// One forward pass over `rows`, padded to the longest of them.
    fn embed(&self, rows: &[&Tokens]) -> std::result::Result<Vec<Vec<f32>>, ModelError>;
}

impl Encoder for Arc<Model> {
    fn dim(&self) -> usize {
        self.signature.dim
    }
    fn tokenize(&self, texts: &[&str]) -> std::result::Result<Vec<Tokens>, ModelError> {
        Model::tokenize(self, texts)
    }
    fn embed(&self, rows: &[&Tokens]) -> std::result::Result<Vec<Vec<f32>>, ModelError> {
        Model::embed(self, rows)
    }
}

/// How many micro-batches of rows are gathered before they are sorted by length
/// and run: the wider the window, the less padding (measured in benches/README.md).
pub const SORT_WINDOW: usize = 16;

pub struct Settings {
    /// Micro-batches gathered before sorting ([`SORT_WINDOW`] in production).
    pub sort_window: usize,
    pub text_column: String,
    pub batch_size: usize,
    /// Padded tokens (rows × the longest row) a forward pass may hold.
    pub max_batch_tokens: usize,
    pub max_wait: Duration,
    /// The output schema: the input's columns plus the embedding column.
    pub output: SchemaRef,
}

/// An input batch waiting for its vectors.
struct Queued {
    batch: RecordBatch,
    vectors: Vec<Option<Vec<f32>>>,
    missing: usize,
}

/// A distinct text waiting for the model, and the rows that want its vector.
struct Job {
    key: Key,
    tokens: Tokens,
    rows: Vec<(u64, usize)>,
}

pub struct EmbedBatcher {
    settings: Settings,
    encoder: Box<dyn Encoder>,
    cache: Option<EmbedCache>,
    /// The stage's own counters, also registered on the stage's metrics.
    embed: Arc<EmbedMetrics>,
    queue: VecDeque<Queued>,
    /// Sequence number of `queue[0]`.
    front: u64,
    pool: Vec<Job>,
    /// Key → index in `pool`.
    waiting: HashMap<Key, usize>,
}

/// `pool` (sorted by length) cut in order into micro-batches of at most
/// `rows` rows and `tokens` padded tokens; a row longer than `tokens` goes alone.
fn micro_batches(pool: &[Job], rows: usize, tokens: usize) -> Vec<&[Job]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, job) in pool.iter().enumerate() {
        let n = i - start + 1;
        if n > 1 && (n > rows || n * job.tokens.ids.len() > tokens) {
            out.push(&pool[start..i]);
            start = i;
        }
    }
    if start < pool.len() {
        out.push(&pool[start..]);
    }
    out
}

impl EmbedBatcher {
    pub fn new(
        settings: Settings,
        encoder: Box<dyn Encoder>,
        cache: Option<EmbedCache>,
        embed: Arc<EmbedMetrics>,
    ) -> Self {
        EmbedBatcher {
            settings,
            encoder,
            cache,
            embed,
            queue: VecDeque::new(),
            front: 0,
            pool: Vec::new(),
            waiting: HashMap::new(),
        }
    }

    /// A failure of the stage on a whole batch: the model's, or an input
    /// that planning should have ruled out.
    fn fail(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::internal(message)
    }

    fn enqueue(&mut self, batch: RecordBatch) -> Result<()> {
        let seq = self.front + self.queue.len() as u64;
        let column = batch
            .column_by_name(&self.settings.text_column)
            .ok_or_else(|| self.fail(format!("no column `{}`", self.settings.text_column)))?;
        let texts = sluice_connector_sdk::documents::text_values(column.as_ref())?;
        let mut vectors = vec![None; texts.len()];
        let mut missing = 0;
        let mut new_texts: Vec<(Key, &str)> = Vec::new();
        let mut new_rows: Vec<Vec<(u64, usize)>> = Vec::new();
        let mut new_index: HashMap<Key, usize> = HashMap::new();
        for (row, text) in texts.iter().enumerate() {
            let Some(text) = text else { continue };
            let key = cache::key(text);
            if let Some(v) = self.cache.as_mut().and_then(|c| c.get(&key)) {
                self.embed.cache_hits.add(1);
                vectors[row] = Some(v);
                continue;
            }
            missing += 1;
            if let Some(&i) = self.waiting.get(&key) {
                self.embed.cache_hits.add(1);
                self.pool[i].rows.push((seq, row));
            } else if let Some(&i) = new_index.get(&key) {
                self.embed.cache_hits.add(1);
                new_rows[i].push((seq, row));
            } else {
                new_index.insert(key, new_texts.len());
                new_texts.push((key, text));
                new_rows.push(vec![(seq, row)]);
            }
        }
        let strs: Vec<&str> = new_texts.iter().map(|(_, t)| *t).collect();
        let tokens = self
            .encoder
            .tokenize(&strs)
            .map_err(|e| self.fail("the model failed").with_source(e))?;
        for (((key, _), tokens), rows) in new_texts.iter().zip(tokens).zip(new_rows) {
            if tokens.truncated {
                self.embed.truncated.add(1);
            }
            self.waiting.insert(*key, self.pool.len());
            self.pool.push(Job {
                key: *key,
                tokens,
                rows,
            });
        }
        self.queue.push_back(Queued {
            batch,
            vectors,
            missing,
        });
        Ok(())
    }

    /// Run the pool through the model: all of it, or, once it holds
    /// `sort_window` micro-batches, every full micro-batch.
    fn run_pool(&mut self, all: bool) -> Result<()> {
        let size = self.settings.batch_size;
        if self.pool.is_empty() || (!all && self.pool.len() < size * self.settings.sort_window.max(1)) {
            return Ok(());
        }
        let mut pool = std::mem::take(&mut self.pool);
        self.waiting.clear();
        pool.sort_by_key(|j| j.tokens.ids.len());
        let keep = if all { 0 } else { pool.len() % size };
        let rest = pool.split_off(pool.len() - keep);
        for group in micro_batches(&pool, size, self.settings.max_batch_tokens) {
            let rows: Vec<&Tokens> = group.iter().map(|j| &j.tokens).collect();
            let started = Instant::now();
            let vectors = self
                .encoder
                .embed(&rows)
                .map_err(|e| self.fail("the model failed").with_source(e))?;
            let m = &self.embed;
            m.busy_us.add(started.elapsed().as_micros() as u64);
            m.inferences.add(1);
            m.computed.add(group.len() as u64);
            let longest = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
            m.tokens.add(rows.iter().map(|r| r.ids.len() as u64).sum());
            m.padded_tokens.add((longest * rows.len()) as u64);
            for (job, vector) in group.iter().zip(vectors) {
                if let Some(c) = self.cache.as_mut() {
                    c.put(job.key, &vector).map_err(|e| {
                        ConnectorError::external("writing the embedding cache").with_source(e)
                    })?;
                }
                for &(seq, row) in &job.rows {
                    let q = &mut self.queue[(seq - self.front) as usize];
                    q.vectors[row] = Some(vector.clone());
                    q.missing -= 1;
                }
            }
        }
        for job in rest {
            self.waiting.insert(job.key, self.pool.len());
            self.pool.push(job);
        }
        Ok(())
    }

    /// Pop the finished batches at the front of the queue.
    fn finished(&mut self) -> Result<Vec<StageOutput>> {
        let mut out = Vec::new();
        while self.queue.front().is_some_and(|q| q.missing == 0) {
            let q = self.queue.pop_front().expect("checked");
            self.front += 1;
            out.push(StageOutput::new(self.with_embeddings(q)?));
        }
        Ok(out)
    }

    fn with_embeddings(&self, q: Queued) -> Result<RecordBatch> {
        let dim = self.encoder.dim();
        let values = vectors::flatten(&q.vectors, dim)
            .map_err(|len| self.fail(format!("the model returned {len} values, expected {dim}")))?;
        self.embed
            .drift
            .observe(&values, dim, q.vectors.iter().map(Option::is_some));
        let list = vectors::column(values, dim, q.vectors.iter().map(Option::is_some))?;
        let mut columns: Vec<ArrayRef> = q.batch.columns().to_vec();
        columns.push(Arc::new(list));
        Ok(RecordBatch::try_new(self.settings.output.clone(), columns)?)
    }

    fn flush_cache(&mut self) -> Result<()> {
        if let Some(c) = self.cache.as_mut() {
            c.flush()
                .map_err(|e| ConnectorError::external("writing the embedding cache").with_source(e))?;
        }
        Ok(())
    }
}

impl BufferedTransform for EmbedBatcher {
    fn push(&mut self, batch: RecordBatch) -> Result<Vec<StageOutput>> {
        self.enqueue(batch)?;
        self.run_pool(false)?;
        self.finished()
    }

    fn flush(&mut self) -> Result<Vec<StageOutput>> {
        self.run_pool(true)?;
        self.flush_cache()?;
        let out = self.finished()?;
        debug_assert!(self.queue.is_empty());
        Ok(out)
    }

    fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    fn max_wait(&self) -> Duration {
        self.settings.max_wait
    }
}

#[cfg(test)]
#[path = "batcher_tests.rs"]
mod tests;
