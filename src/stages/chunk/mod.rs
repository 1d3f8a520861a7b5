//! The `chunk` stage: one row per chunk of each document's `text`.
//!
//! Output columns: `chunk_id` (hash of doc_id and chunk index), `chunk_index`,
//! `text`, `token_count`, `char_start`, `char_end`, then every input column but
//! `text`. A `delete` row passes through as one row with null chunk columns.

mod ascii;
mod splitter;
mod vocab;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, LargeStringBuilder, StringBuilder, UInt32Array, UInt32Builder, UInt64Builder,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::Deserialize;
use sluice_connector_sdk::documents::{DOC_ID, OP, OP_DELETE};
use sluice_connector_sdk::{ConfigIssue, PlanContext};

pub use splitter::{count_tokens, Encoding, Span, Splitter, Strategy};

use super::{require_column, StageConfig, StageContext, StageOutput, StageRunner, Transform};
use sluice_connector_sdk::{ConnectorError, Result};

pub const CHUNK_ID: &str = "chunk_id";
pub const CHUNK_INDEX: &str = "chunk_index";
pub const TOKEN_COUNT: &str = "token_count";
pub const CHAR_START: &str = "char_start";
pub const CHAR_END: &str = "char_end";
const TEXT: &str = super::parse::TEXT;

/// ```yaml
/// - type: chunk
///   encoding: cl100k_base   # or o200k_base
///   max_tokens: 256
///   overlap_tokens: 32
///   strategy: markdown      # or text
/// ```
#[derive(Debug, Clone, Deserialize)]
pub struct ChunkConfig {
    #[serde(default = "default_encoding")]
    pub encoding: Encoding,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    #[serde(default = "default_overlap")]
    pub overlap_tokens: usize,
    #[serde(default)]
    pub strategy: Strategy,
}

fn default_encoding() -> Encoding {
    Encoding::Cl100kBase
}
fn default_max_tokens() -> usize {
    256
}
fn default_overlap() -> usize {
    32
}

impl ChunkConfig {
    pub fn splitter(&self) -> Splitter {
        Splitter {
            encoding: self.encoding,
            max_tokens: self.max_tokens,
            overlap_tokens: self.overlap_tokens,
            strategy: self.strategy,
        }
    }
}

/// The deterministic id of chunk `index` of `doc_id`.
pub fn chunk_id(doc_id: &str, index: u32) -> String {
    let mut h = blake3::Hasher::new();
    h.update(doc_id.as_bytes());
    h.update(&[0]);
    h.update(&index.to_le_bytes());
    h.finalize().to_hex()[..32].to_string()
}

impl StageConfig for ChunkConfig {
    fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.max_tokens == 0 {
            issues.push(ConfigIssue::new(Some("max_tokens"), "must be at least 1"));
        }
        if self.overlap_tokens >= self.max_tokens {
            issues.push(
                ConfigIssue::new(
                    Some("overlap_tokens"),
                    format!("must be less than max_tokens ({})", self.max_tokens),
                )
                .with_hint("a quarter of max_tokens or less is usual"),
            );
        }
        issues
    }

    fn plan(
        &self,
        _ctx: &PlanContext,
        input: &SchemaRef,
    ) -> std::result::Result<SchemaRef, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        require_column(input, DOC_ID, &DataType::Utf8, &mut issues);
        require_column(input, OP, &DataType::Utf8, &mut issues);
        require_column(input, TEXT, &DataType::LargeUtf8, &mut issues);
        for name in [CHUNK_ID, CHUNK_INDEX, TOKEN_COUNT, CHAR_START, CHAR_END] {
            if input.field_with_name(name).is_ok() {
                issues.push(ConfigIssue::new(
                    None,
                    format!("the input already has a column `{name}`"),
                ));
            }
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let mut fields = vec![
            Field::new(CHUNK_ID, DataType::Utf8, true),
            Field::new(CHUNK_INDEX, DataType::UInt32, true),
            Field::new(TEXT, DataType::LargeUtf8, true),
            Field::new(TOKEN_COUNT, DataType::UInt32, true),
            Field::new(CHAR_START, DataType::UInt64, true),
            Field::new(CHAR_END, DataType::UInt64, true),
        ];
        fields.extend(
            input
                .fields()
                .iter()
                .filter(|f| f.name() != TEXT)
                .map(|f| f.as_ref().clone()),
        );
        Ok(Arc::new(Schema::new(fields)))
    }

    /// A hash of every setting that changes where chunks fall.
    fn lineage(&self) -> Vec<(String, String)> {
        let settings = format!(
            "{:?}|{}|{}|{:?}",
            self.encoding, self.max_tokens, self.overlap_tokens, self.strategy
        );
        let hash = blake3::hash(settings.as_bytes()).to_hex()[..16].to_string();
        vec![(sluice_connector_sdk::lineage::CHUNK_SETTINGS.to_string(), hash)]
    }

    fn build(&self, ctx: &StageContext) -> Result<StageRunner> {
        Ok(StageRunner::PerBatch(Arc::new(ChunkTransform {
            splitter: self.splitter(),
            output: ctx.output.clone(),
        })))
    }
}

struct ChunkTransform {
    splitter: Splitter,
    output: SchemaRef,
}

impl Transform for ChunkTransform {
    fn apply(&self, batch: RecordBatch) -> Result<StageOutput> {
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| ConnectorError::internal(format!("chunk input has no `{name}`")))
        };
        let doc_ids = col(DOC_ID)?.as_string::<i32>();
        let ops = col(OP)?.as_string::<i32>();
        let texts = col(TEXT)?.as_string::<i64>();

        let mut rows = Vec::new();
        let mut ids = StringBuilder::new();
        let mut index = UInt32Builder::new();
        let mut chunk_text = LargeStringBuilder::new();
        let mut tokens = UInt32Builder::new();
        let mut starts = UInt64Builder::new();
        let mut ends = UInt64Builder::new();
        for row in 0..batch.num_rows() {
            if ops.value(row) == OP_DELETE || texts.is_null(row) {
                rows.push(row as u32);
                ids.append_null();
                index.append_null();
                chunk_text.append_null();
                tokens.append_null();
                starts.append_null();
                ends.append_null();
                continue;
            }
            let (doc_id, text) = (doc_ids.value(row), texts.value(row));
            for (i, span) in self.splitter.split(text).iter().enumerate() {
                rows.push(row as u32);
                ids.append_value(chunk_id(doc_id, i as u32));
                index.append_value(i as u32);
                chunk_text.append_value(&text[span.byte_start..span.byte_end]);
                tokens.append_value(span.token_count as u32);
                starts.append_value(span.char_start as u64);
                ends.append_value(span.char_end as u64);
            }
        }
        let indices = UInt32Array::from(rows);
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(ids.finish()),
            Arc::new(index.finish()),
            Arc::new(chunk_text.finish()),
            Arc::new(tokens.finish()),
            Arc::new(starts.finish()),
            Arc::new(ends.finish()),
        ];
        for (i, field) in batch.schema().fields().iter().enumerate() {
            if field.name() != TEXT {
                columns.push(take(batch.column(i).as_ref(), &indices, None)?);
            }
        }
        let batch = RecordBatch::try_new(self.output.clone(), columns)?;
        Ok(StageOutput::new(batch))
    }
}
