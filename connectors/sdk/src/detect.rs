//! Content type from the file extension, or sniffed from the first bytes.

pub const PDF: &str = "application/pdf";
pub const HTML: &str = "text/html";
pub const MARKDOWN: &str = "text/markdown";
pub const TEXT: &str = "text/plain";
pub const JSON: &str = "application/json";
pub const JSONL: &str = "application/x-ndjson";
pub const UNKNOWN: &str = "application/octet-stream";

/// The MIME type of a document named `name` whose content starts with `head`.
pub fn content_type(name: &str, head: &[u8]) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => PDF,
        Some("html" | "htm" | "xhtml") => HTML,
        Some("md" | "markdown" | "mdx") => MARKDOWN,
        Some("txt" | "text" | "rst" | "log") => TEXT,
        Some("json") => JSON,
        Some("jsonl" | "ndjson") => JSONL,
        _ => sniff(head),
    }
}

fn sniff(head: &[u8]) -> &'static str {
    let trimmed = head.trim_ascii_start();
    if trimmed.starts_with(b"%PDF-") {
        return PDF;
    }
    let lower: Vec<u8> = trimmed.iter().take(64).map(u8::to_ascii_lowercase).collect();
    if lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html") {
        return HTML;
    }
    if trimmed.starts_with(b"{") {
        let lines = trimmed
            .split(|&b| b == b'\n')
            .filter(|l| !l.trim_ascii().is_empty());
        let json_lines = lines.clone().filter(|l| l.trim_ascii().starts_with(b"{")).count();
        return if json_lines > 1 && json_lines == lines.count() {
            JSONL
        } else {
            JSON
        };
    }
    if trimmed.starts_with(b"[") {
        return JSON;
    }
    if trimmed.starts_with(b"# ") {
        return MARKDOWN;
    }
    match std::str::from_utf8(head) {
        Ok(_) => TEXT,
        // A multi-byte character may be cut at the end of the sniffed head.
        Err(e) if e.error_len().is_none() => TEXT,
        Err(_) => UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_wins_then_sniffing() {
        assert_eq!(content_type("a/B.PDF", b""), PDF);
        assert_eq!(content_type("notes", b"%PDF-1.7 ..."), PDF);
        assert_eq!(content_type("page", b"  <!DOCTYPE html><html>"), HTML);
        assert_eq!(content_type("events", b"{\"a\":1}\n{\"a\":2}\n"), JSONL);
        assert_eq!(content_type("doc", b"{\"a\":1}"), JSON);
        assert_eq!(content_type("README", b"# Title\n"), MARKDOWN);
        assert_eq!(content_type("LICENSE", "plain words \u{e9}".as_bytes()), TEXT);
        assert_eq!(content_type("blob", &[0xff, 0xfe, 0x00, 0x81, 0x20]), UNKNOWN);
    }
}
