//! The `parse` stage: `documents` in, text out.
//!
//! Output: the input columns without `content`, plus `text` (LargeUtf8) and `title`
//! (Utf8, nullable). Each document is parsed inside `catch_unwind`; any failure
//! becomes a dead letter and the row is dropped. `delete` rows pass through with a
//! null `text`.

mod deadline;
mod error;
mod html;
mod markdown;
mod pdf;
mod text;
pub mod worker;

pub use error::ParseError;
pub use pdf::PdfEngine;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, LargeStringBuilder, StringBuilder, UInt32Array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::Deserialize;
use sluice_connector_sdk::documents::{CONTENT, CONTENT_TYPE, DOC_ID, OP, OP_DELETE, VERSION};
use sluice_connector_sdk::{ConfigIssue, DeadLetter, HumanDuration, PlanContext};

use super::{require_column, StageConfig, StageContext, StageOutput, StageRunner, Transform};
use sluice_connector_sdk::{ConnectorError, Result};

pub const TEXT: &str = "text";
pub const TITLE: &str = "title";
/// Milliseconds the parser spent on the document.
pub const PARSE_MS: &str = "parse_ms";

/// ```yaml
/// - type: parse
///   json_text_field: text      # JSON / JSONL: where the text is (dotted path)
///   json_title_field: title    # where a title is, if there is one
///   timeout: 30s               # a PDF or HTML document that takes longer goes to the DLQ
///   pdf_engine: pdf-extract    # or lopdf: ~9x faster, words run together more often
/// ```
#[derive(Debug, Clone, Deserialize)]
pub struct ParseConfig {
    #[serde(default = "default_text_field")]
    pub json_text_field: String,
    #[serde(default = "default_title_field")]
    pub json_title_field: Option<String>,
    /// Deadline for the parsers that run on their own thread (PDF, HTML).
    /// `pdf_timeout` is the older name.
    #[serde(default = "default_timeout", alias = "pdf_timeout")]
    pub timeout: HumanDuration,
    /// The address space of a parser worker (PDF, HTML): a document that
    /// inflates past it is a dead letter.
    #[serde(default = "default_max_memory")]
    pub max_memory: sluice_connector_sdk::ByteSize,
    /// Which engine extracts a PDF's text.
    #[serde(default)]
    pub pdf_engine: PdfEngine,
}

fn default_max_memory() -> sluice_connector_sdk::ByteSize {
    sluice_connector_sdk::ByteSize(2 << 30)
}

/// The least `max_memory` a worker can start in: an idle worker maps about
/// 350 MiB (the `sluice` binary itself; measured with a debug-profile build).
const MIN_WORKER_MEMORY: u64 = 512 << 20;

fn default_text_field() -> String {
    "text".into()
}
fn default_title_field() -> Option<String> {
    Some("title".into())
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            json_text_field: default_text_field(),
            json_title_field: default_title_field(),
            timeout: default_timeout(),
            max_memory: default_max_memory(),
            pdf_engine: PdfEngine::default(),
        }
    }
}

/// End the current block of extracted text: trailing spaces go, and exactly one
/// blank line follows (none at the very start).
pub(crate) fn end_block(out: &mut String) {
    while out.ends_with(' ') {
        out.pop();
    }
    if out.is_empty() || out.ends_with("\n\n") {
        return;
    }
    out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
}

/// Text and title of one parsed document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub text: String,
    pub title: Option<String>,
}

impl StageConfig for ParseConfig {
    fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.timeout.0.is_zero() {
            issues.push(ConfigIssue::new(Some("timeout"), "must be more than 0"));
        }
        if self.max_memory.0 < MIN_WORKER_MEMORY {
            issues.push(ConfigIssue::new(
                Some("max_memory"),
                format!(
                    "must be at least {}",
                    sluice_connector_sdk::ByteSize(MIN_WORKER_MEMORY)
                ),
            ));
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
        require_column(input, VERSION, &DataType::Utf8, &mut issues);
        require_column(input, OP, &DataType::Utf8, &mut issues);
        require_column(input, CONTENT, &DataType::LargeBinary, &mut issues);
        require_column(input, CONTENT_TYPE, &DataType::Utf8, &mut issues);
        if !issues.is_empty() {
            return Err(issues);
        }
        let mut fields: Vec<Field> = input
            .fields()
            .iter()
            .filter(|f| f.name() != CONTENT)
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(TEXT, DataType::LargeUtf8, true));
        fields.push(Field::new(TITLE, DataType::Utf8, true));
        fields.push(Field::new(PARSE_MS, DataType::Float64, true));
        Ok(Arc::new(Schema::new(fields)))
    }

    fn build(&self, ctx: &StageContext) -> Result<StageRunner> {
        Ok(StageRunner::PerBatch(Arc::new(ParseTransform {
            config: self.clone(),
            ctx: ctx.clone(),
        })))
    }
}

struct ParseTransform {
    config: ParseConfig,
    ctx: StageContext,
}

thread_local! {
    /// Set while a parser runs inside `catch_unwind`: its panics are expected.
    static IN_PARSER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Keep parser panics (caught, and turned into dead letters) off stderr, where the
/// default hook would print them as if sluice had crashed. Every other panic is
/// printed as before.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let parser_thread = std::thread::current().name() == Some(deadline::THREAD_NAME);
        if IN_PARSER.with(|f| f.get()) || parser_thread {
            tracing::debug!("parser panicked (caught): {info}");
        } else {
            let said = info.to_string();
            let clean = crate::telemetry::secrets::scrub(&said);
            if clean == said {
                default(info);
            } else {
                eprintln!("{clean}");
            }
        }
    }));
}

/// Run `f` with parser panics caught.
fn catch_parser_panic<T>(
    f: impl FnOnce() -> std::result::Result<T, ParseError>,
) -> std::result::Result<T, ParseError> {
    IN_PARSER.with(|flag| flag.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_PARSER.with(|flag| flag.set(false));
    result.unwrap_or_else(|panic| Err(ParseError::panicked(None, &*panic)))
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Parse one document by content type. Extra errors are per-part problems (broken
/// JSONL lines) that do not fail the document.
pub fn parse_document(
    config: &ParseConfig,
    content_type: &str,
    bytes: &[u8],
) -> std::result::Result<(Parsed, Vec<String>), ParseError> {
    let field = config.json_text_field.as_str();
    let title_field = config.json_title_field.as_deref();
    let whole = |r: std::result::Result<Parsed, ParseError>| r.map(|p| (p, Vec::new()));
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    match mime {
        "application/pdf" => whole(isolated(config.pdf_engine.parser(), bytes, config)),
        "text/html" | "application/xhtml+xml" => whole(isolated(worker::Parser::Html, bytes, config)),
        "text/markdown" => whole(markdown::parse(bytes)),
        "text/plain" => whole(text::parse_text(bytes)),
        "application/json" => whole(text::parse_json(bytes, field, title_field)),
        "application/x-ndjson" | "application/jsonl" => Ok(text::parse_jsonl(bytes, field, title_field)),
        other => Err(ParseError::Unsupported(other.to_string())),
    }
}

/// Run a parser that hostile input can take over: in a worker process (the
/// `sluice` binary), else on a thread with a deadline.
fn isolated(
    parser: worker::Parser,
    bytes: &[u8],
    config: &ParseConfig,
) -> std::result::Result<Parsed, ParseError> {
    if worker::enabled() {
        return worker::parse(parser, bytes, config.timeout.0, config.max_memory.0);
    }
    let owned = bytes.to_vec();
    deadline::run(parser.name(), config.timeout.0, move || parser.parse(&owned))
}

impl ParseTransform {
    fn letter(&self, doc_id: &str, version: &str, error: String) -> DeadLetter {
        DeadLetter {
            doc_id: doc_id.into(),
            version: version.into(),
            stage: self.ctx.name.clone(),
            error,
        }
    }
}

impl Transform for ParseTransform {
    fn apply(&self, batch: RecordBatch) -> Result<StageOutput> {
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| ConnectorError::internal(format!("parse input has no `{name}`")))
        };
        let doc_ids = col(DOC_ID)?.as_string::<i32>();
        let versions = col(VERSION)?.as_string::<i32>();
        let ops = col(OP)?.as_string::<i32>();
        let contents = col(CONTENT)?.as_binary::<i64>();
        let types = col(CONTENT_TYPE)?.as_string::<i32>();

        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut texts = LargeStringBuilder::new();
        let mut titles = StringBuilder::new();
        let mut parse_ms = Float64Builder::new();
        let mut letters = Vec::new();
        for row in 0..batch.num_rows() {
            let (doc_id, version) = (doc_ids.value(row), versions.value(row));
            if ops.value(row) == OP_DELETE || contents.is_null(row) {
                keep.push(row as u32);
                texts.append_null();
                titles.append_null();
                parse_ms.append_null();
                continue;
            }
            let ctype = if types.is_null(row) { "" } else { types.value(row) };
            let bytes = contents.value(row);
            let started = std::time::Instant::now();
            let outcome = catch_parser_panic(|| parse_document(&self.config, ctype, bytes));
            let took = started.elapsed().as_secs_f64() * 1e3;
            match outcome {
                Ok((parsed, part_errors)) => {
                    letters.extend(part_errors.into_iter().map(|e| self.letter(doc_id, version, e)));
                    if parsed.text.trim().is_empty() {
                        letters.push(self.letter(doc_id, version, "document has no text".into()));
                        continue;
                    }
                    keep.push(row as u32);
                    texts.append_value(&parsed.text);
                    titles.append_option(parsed.title.as_deref());
                    parse_ms.append_value(took);
                }
                Err(e) => letters.push(self.letter(doc_id, version, e.to_string())),
            }
        }

        let indices = UInt32Array::from(keep);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.ctx.output.fields().len());
        for (i, field) in batch.schema().fields().iter().enumerate() {
            if field.name() != CONTENT {
                columns.push(take(batch.column(i).as_ref(), &indices, None)?);
            }
        }
        columns.push(Arc::new(texts.finish()));
        columns.push(Arc::new(titles.finish()));
        columns.push(Arc::new(parse_ms.finish()));
        let batch = RecordBatch::try_new(self.ctx.output.clone(), columns)?;
        Ok(StageOutput::new(batch).with_dead_letters(letters))
    }
}

#[cfg(test)]
mod tests;
