//! `pdf-engines ENGINE OUT FILE`: extract one PDF's text with one engine, write
//! it to OUT, and print one JSON line: bytes, seconds of extraction (reading
//! the file and writing the text are outside the timing), characters, error.
//! One process per file, so the driver (`benches/pdf_engines.py`) can stop an
//! engine that loops and count a panic as a failure of that file only.

use std::time::Instant;

fn extract(engine: &str, bytes: Vec<u8>) -> Result<String, String> {
    match engine {
        "pdf-extract" => pdf_extract::extract_text_from_mem(&bytes).map_err(|e| e.to_string()),
        "lopdf" => {
            let doc = lopdf::Document::load_mem(&bytes).map_err(|e| e.to_string())?;
            let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
            doc.extract_text(&pages).map_err(|e| e.to_string())
        }
        "pdf_oxide" => {
            let doc = pdf_oxide::PdfDocument::from_bytes(bytes).map_err(|e| e.to_string())?;
            doc.extract_all_text().map_err(|e| e.to_string())
        }
        "oxidize-pdf" => {
            let reader = oxidize_pdf::parser::PdfReader::new(std::io::Cursor::new(bytes))
                .map_err(|e| e.to_string())?;
            let doc = oxidize_pdf::parser::PdfDocument::new(reader);
            let pages = doc.extract_text().map_err(|e| e.to_string())?;
            Ok(pages
                .into_iter()
                .map(|p| p.text)
                .collect::<Vec<_>>()
                .join("\n\x0c"))
        }
        other => Err(format!("unknown engine {other}")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, engine, out, file] = &args[..] else {
        eprintln!("usage: pdf-engines ENGINE OUT FILE");
        std::process::exit(2);
    };
    let bytes = std::fs::read(file).expect("reading the PDF");
    let size = bytes.len();
    let started = Instant::now();
    let result =
        std::panic::catch_unwind(|| extract(engine, bytes)).unwrap_or_else(|_| Err("panicked".to_string()));
    let secs = started.elapsed().as_secs_f64();
    let (chars, error) = match &result {
        Ok(text) => {
            std::fs::write(out, text).expect("writing the text");
            (text.chars().count(), None)
        }
        Err(e) => (0, Some(e.chars().take(200).collect::<String>())),
    };
    let line = serde_json::json!({"bytes": size, "secs": secs, "chars": chars, "error": error});
    println!("{line}");
}
