//! PDF text through one of two engines, chosen by the parse stage's
//! `pdf_engine`: `pdf-extract` (the default: the closest text to poppler's) or
//! `lopdf` (the parser under pdf-extract, used alone: about nine times faster,
//! with words run together more often; benches/README.md, PDF engines). Both
//! can panic, loop or inflate without bound on hostile files: they run
//! isolated (see [`super::worker`]).

use serde::Deserialize;

use super::{worker::Parser, ParseError, Parsed};

/// The parse stage's `pdf_engine`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PdfEngine {
    #[default]
    PdfExtract,
    Lopdf,
}

impl PdfEngine {
    /// The worker's parser for this engine.
    pub fn parser(self) -> Parser {
        match self {
            PdfEngine::PdfExtract => Parser::Pdf,
            PdfEngine::Lopdf => Parser::PdfLopdf,
        }
    }
}

/// The `lopdf` engine: every page's text, in page order, in this process
/// (callers isolate it). A page that cannot be decoded fails the document, as
/// it does with pdf-extract, rather than leaving a silent hole in its text.
pub fn extract_lopdf(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let doc = lopdf::Document::load_mem(bytes).map_err(ParseError::Lopdf)?;
    let pages: Vec<u32> = doc.get_pages().into_keys().collect();
    let text = doc.extract_text(&pages).map_err(ParseError::Lopdf)?;
    Ok(Parsed {
        text: tidy(&text),
        title: None,
    })
}

/// The `pdf-extract` engine, in this process: callers isolate it.
pub fn extract(bytes: &[u8]) -> Result<Parsed, ParseError> {
    pdf_extract::extract_text_from_mem(bytes)
        .map(|text| Parsed {
            text: tidy(&text),
            title: None,
        })
        .map_err(ParseError::Pdf)
}

/// Both engines emit many blank lines; keep paragraphs, drop runs of empties.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out
}
