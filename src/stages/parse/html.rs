//! HTML to text with html5ever (through `scraper`): scripts and styles dropped,
//! the title kept, block elements on their own lines.

use ego_tree::iter::Edge;
use scraper::{Html, Node};

use super::{end_block, Parsed};

const SKIP: &[&str] = &[
    "script", "style", "noscript", "template", "head", "svg", "iframe", "object",
];
const BLOCK: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "aside",
    "main",
    "pre",
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "hr",
    "form",
    "details",
    "summary",
];

pub fn parse(bytes: &[u8]) -> Result<Parsed, super::ParseError> {
    let src = String::from_utf8_lossy(bytes);
    let doc = Html::parse_document(&src);
    let mut title: Option<String> = None;
    let mut text = String::with_capacity(src.len() / 2);
    // Iterative traversal: deeply nested documents must not overflow the stack.
    let mut skip_depth = 0usize;
    let mut in_title = false;
    for edge in doc.tree.root().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(e) => {
                    let name = e.name();
                    if name == "title" {
                        in_title = true;
                    }
                    if skip_depth > 0 || SKIP.contains(&name) {
                        skip_depth += 1;
                    } else if BLOCK.contains(&name) {
                        end_block(&mut text);
                        if let Some(level) = heading_level(name) {
                            text.push_str(&"#".repeat(level));
                            text.push(' ');
                        }
                    }
                }
                Node::Text(t) if in_title && title.is_none() => {
                    let t = collapse(t);
                    if !t.is_empty() {
                        title = Some(t);
                    }
                }
                Node::Text(t) if skip_depth == 0 => push_words(&mut text, t),
                _ => {}
            },
            Edge::Close(node) => {
                if let Node::Element(e) = node.value() {
                    if e.name() == "title" {
                        in_title = false;
                    }
                    if skip_depth > 0 {
                        skip_depth -= 1;
                    } else if BLOCK.contains(&e.name()) {
                        end_block(&mut text);
                    }
                }
            }
        }
    }
    let text = text.trim().to_string();
    Ok(Parsed { text, title })
}

fn heading_level(name: &str) -> Option<usize> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Append text with whitespace runs collapsed, as a browser renders it.
fn push_words(out: &mut String, s: &str) {
    let starts_ws = s.starts_with(char::is_whitespace);
    let words = collapse(s);
    if words.is_empty() {
        if starts_ws && !out.is_empty() && !out.ends_with(char::is_whitespace) {
            out.push(' ');
        }
        return;
    }
    if starts_ws && !out.is_empty() && !out.ends_with(char::is_whitespace) {
        out.push(' ');
    }
    out.push_str(&words);
    if s.ends_with(char::is_whitespace) {
        out.push(' ');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_scripts_keeps_title_and_blocks() {
        let html = br#"<!doctype html><html><head><title> The  Guide </title>
            <style>body{color:red}</style><script>var x = "secret";</script></head>
            <body><h1>Intro</h1><p>Hello <b>bold</b>   world.</p><noscript>nojs</noscript>
            <ul><li>one</li><li>two</li></ul></body></html>"#;
        let p = parse(html).unwrap();
        assert_eq!(p.title.as_deref(), Some("The Guide"));
        assert_eq!(p.text, "# Intro\n\nHello bold world.\n\none\n\ntwo");
        assert!(!p.text.contains("secret") && !p.text.contains("color") && !p.text.contains("nojs"));
    }

    #[test]
    fn deeply_nested_html_does_not_overflow() {
        let depth = 50_000;
        let html = format!("{}deep{}", "<div>".repeat(depth), "</div>".repeat(depth));
        let p = parse(html.as_bytes()).unwrap();
        assert!(p.text.contains("deep"));
    }
}
