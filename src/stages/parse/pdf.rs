//! PDF text through `pdf-extract`, which can panic, loop or inflate without
//! bound on hostile files: it runs isolated (see [`super::worker`]).

use super::{ParseError, Parsed};

/// Extract the text, in this process: callers isolate it.
pub fn extract(bytes: &[u8]) -> Result<Parsed, ParseError> {
    pdf_extract::extract_text_from_mem(bytes)
        .map(|text| Parsed {
            text: tidy(&text),
            title: None,
        })
        .map_err(ParseError::Pdf)
}

/// pdf-extract emits many blank lines; keep paragraphs, drop runs of empties.
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
