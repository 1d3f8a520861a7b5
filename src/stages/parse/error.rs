//! Why one document could not be parsed. It becomes a dead letter whose
//! reason is this error's text; the pipeline goes on.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not valid UTF-8: invalid byte at offset {}", .0.valid_up_to())]
    NotUtf8(#[source] std::str::Utf8Error),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("no field `{0}`")]
    NoField(String),
    #[error("item {index}: {source}")]
    Item {
        index: usize,
        #[source]
        source: Box<ParseError>,
    },
    #[error("PDF: {0}")]
    Pdf(#[source] pdf_extract::OutputError),
    /// The `lopdf` engine's failure (`pdf_engine: lopdf`).
    #[error("PDF (lopdf): {0}")]
    Lopdf(#[source] lopdf::Error),
    #[error("unsupported content type `{0}`")]
    Unsupported(String),
    /// A parser panicked on this document (`parser` names it, e.g. `PDF`).
    #[error("{}parser panicked: {message}", parser.map(|p| format!("{p} ")).unwrap_or_default())]
    Panicked {
        parser: Option<&'static str>,
        message: String,
    },
    #[error("{parser} parser timed out after {timeout:?}")]
    TimedOut { parser: &'static str, timeout: Duration },
    /// Too many parser threads are still running past their deadline.
    #[error("{running} {parser} parsers are still running past their deadline; try again later")]
    Busy { parser: &'static str, running: usize },
    #[error("cannot start the {parser} parser thread: {source}")]
    Thread {
        parser: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{parser} parser thread died")]
    ThreadDied { parser: &'static str },
    #[error("{parser} parser ran out of memory (over max_memory {memory}): the document expands too far")]
    OutOfMemory {
        parser: String,
        memory: sluice_connector_sdk::ByteSize,
    },
    #[error("{parser} parser overflowed its stack: the document nests too deeply")]
    StackOverflow { parser: String },
    /// A worker process died otherwise; `said` is its last line on stderr.
    #[error("{parser} parser crashed ({status}){}", said.as_ref().map(|s| format!(": {s}")).unwrap_or_default())]
    Crashed {
        parser: String,
        status: String,
        said: Option<String>,
    },
    #[error("cannot start a parser worker: {what}")]
    WorkerStart {
        what: String,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error("a parser worker did not start within {0:?}")]
    WorkerSlow(Duration),
    #[error("{parser} parser worker answered garbage: {source}")]
    Garbage {
        parser: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("unknown parser {0}")]
    UnknownParser(u8),
    /// Why the parser failed, as the worker process said it.
    #[error("{0}")]
    Worker(String),
}

impl ParseError {
    /// A panic in `parser` (None: the parser running in this thread).
    pub fn panicked(parser: Option<&'static str>, payload: &(dyn std::any::Any + Send)) -> Self {
        ParseError::Panicked {
            parser,
            message: super::panic_message(payload),
        }
    }
}
