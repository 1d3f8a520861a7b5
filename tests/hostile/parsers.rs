//! Parsers run in worker processes with a memory cap and a deadline: a
//! decompression bomb, an endless parse, a crash are dead letters, and the run
//! goes on with the next document.

use std::process::Command;

use crate::util::{basic_pipeline, slow_pdf, Workspace};

/// A one-page PDF whose Flate content stream inflates to `gib` GiB of spaces
/// (a few MB on disk): `max_file_size` cannot see it coming.
fn flate_bomb(path: &std::path::Path, gib: u32) {
    let script = r#"
import sys, zlib
out, gib = sys.argv[1], int(sys.argv[2])
c = zlib.compressobj(9)
chunk = b" " * (1 << 20)
body = b"".join(c.compress(chunk) for _ in range(gib * 1024)) + c.flush()
objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(body) + body + b"\nendstream"]
pdf, offsets = bytearray(b"%PDF-1.4\n"), []
for i, o in enumerate(objs):
    offsets.append(len(pdf))
    pdf += b"%d 0 obj\n" % (i + 1) + o + b"\nendobj\n"
xref = len(pdf)
pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
for o in offsets:
    pdf += b"%010d 00000 n \n" % o
pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
open(out, "wb").write(pdf)
"#;
    let ok = Command::new("python3")
        .args(["-c", script, path.to_str().unwrap(), &gib.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "could not write the bomb");
}

fn letters(ws: &Workspace) -> Vec<(String, String)> {
    ws.query("p.yaml", "SELECT doc_id, error FROM dead_letters ORDER BY doc_id")
        .iter()
        .map(|r| {
            let id = r["doc_id"].as_str().unwrap();
            (
                id.rsplit('/').next().unwrap().to_string(),
                r["error"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_decompression_bomb_is_a_dead_letter_not_a_dead_process() {
    let ws = Workspace::new();
    ws.write("data/a.txt", "A fine document.");
    ws.fixture("hello.pdf", "data/hello.pdf");
    std::fs::create_dir_all(ws.path("data")).unwrap();
    flate_bomb(&ws.path("data/bomb.pdf"), 1);
    let size = std::fs::metadata(ws.path("data/bomb.pdf")).unwrap().len();
    assert!(size < 16 << 20, "the bomb is small on disk: {size}");
    let p = basic_pipeline("", "1s").replace("    timeout: 10s", "    timeout: 60s\n    max_memory: 512MiB");
    assert!(p.contains("max_memory"));
    ws.write("p.yaml", p);
    let summary = ws.ok(&["run", "p.yaml"]);
    assert!(summary.contains("1 dead letters"), "{summary}");
    let letters = letters(&ws);
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].0, "bomb.pdf");
    assert!(letters[0].1.contains("ran out of memory"), "{letters:?}");
    let parsed = ws.count("p.yaml", "SELECT count(DISTINCT doc_id) FROM parse");
    assert_eq!(parsed, 2, "the other documents were parsed");
}

#[test]
fn a_parser_past_its_deadline_is_stopped_and_the_next_document_parses() {
    let ws = Workspace::new();
    ws.write("data/slow.pdf", slow_pdf(200_000));
    ws.fixture("hello.pdf", "data/z-after.pdf");
    ws.write(
        "p.yaml",
        basic_pipeline("", "1s").replace("    timeout: 10s", "    timeout: 300ms"),
    );
    let summary = ws.ok(&["run", "p.yaml"]);
    assert!(summary.contains("1 dead letters"), "{summary}");
    let letters = letters(&ws);
    assert_eq!(letters[0].0, "slow.pdf");
    assert!(letters[0].1.contains("timed out after 300ms"), "{letters:?}");
    assert_eq!(
        ws.count(
            "p.yaml",
            "SELECT count(*) FROM parse WHERE doc_id LIKE '%z-after.pdf'"
        ),
        1
    );
}

/// `pdf_engine: lopdf` runs in the same worker, under the same cap, as the
/// default engine: a real PDF parses, and a decompression bomb, a truncated
/// file and random bytes are dead letters that name the engine, while the run
/// goes on.
#[test]
fn the_lopdf_engine_parses_in_the_worker_and_hostile_pdfs_are_dead_letters() {
    let ws = Workspace::new();
    ws.fixture("hello.pdf", "data/hello.pdf");
    ws.fixture("truncated.pdf", "data/truncated.pdf");
    ws.fixture("random-bytes.pdf", "data/random.pdf");
    ws.fixture("panics-pdf-extract.pdf", "data/panics.pdf");
    flate_bomb(&ws.path("data/bomb.pdf"), 1);
    let p = basic_pipeline("", "1s").replace(
        "    timeout: 10s",
        "    timeout: 60s\n    max_memory: 512MiB\n    pdf_engine: lopdf",
    );
    assert!(p.contains("pdf_engine"));
    ws.write("p.yaml", p);
    ws.ok(&["run", "p.yaml"]);
    let letters = letters(&ws);
    let reason = |name: &str| {
        let found = letters.iter().find(|(n, _)| n == name);
        found.map(|(_, r)| r.clone()).unwrap_or_default()
    };
    assert!(
        reason("bomb.pdf").contains("PDF (lopdf) parser ran out of memory"),
        "{letters:?}"
    );
    for name in ["truncated.pdf", "random.pdf"] {
        assert!(reason(name).starts_with("PDF (lopdf): "), "{name}: {letters:?}");
    }
    let text = ws.query("p.yaml", "SELECT doc_id, text FROM parse ORDER BY doc_id");
    let parsed: Vec<&str> = (text.iter())
        .map(|r| r["doc_id"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert!(parsed.contains(&"hello.pdf"), "{parsed:?} {letters:?}");
    let hello = &text[parsed.iter().position(|n| *n == "hello.pdf").unwrap()];
    assert!(
        hello["text"]
            .as_str()
            .unwrap()
            .contains("Sluice turns documents into vectors."),
        "{hello}"
    );
    // The file pdf-extract panics on is text or a letter, never lost.
    assert!(parsed.contains(&"panics.pdf") || !reason("panics.pdf").is_empty());
}
