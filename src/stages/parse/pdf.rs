//! PDF text through `pdf-extract`, which can panic or loop on hostile files. It runs
//! on its own thread inside `catch_unwind`, with a deadline: a document past the
//! deadline is given up on (its thread is left to finish on its own).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

use super::{panic_message, Parsed};

/// The name of the threads PDFs are parsed on.
pub const THREAD_NAME: &str = "sluice-pdf";

pub fn parse(bytes: &[u8], timeout: Duration) -> Result<Parsed, String> {
    let (tx, rx) = mpsc::sync_channel(1);
    let owned = bytes.to_vec();
    std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(|| pdf_extract::extract_text_from_mem(&owned)));
            let _ = tx.send(result);
        })
        .map_err(|e| format!("cannot start the PDF parser thread: {e}"))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(Ok(text))) => Ok(Parsed {
            text: tidy(&text),
            title: None,
        }),
        Ok(Ok(Err(e))) => Err(format!("PDF: {e}")),
        Ok(Err(panic)) => Err(format!("PDF parser panicked: {}", panic_message(&*panic))),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("PDF parser timed out after {timeout:?}")),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("PDF parser thread died".into()),
    }
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
