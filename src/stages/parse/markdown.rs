//! Markdown to plain text that keeps the headings as `#` lines, so the chunker can
//! still split on them.

use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};

use super::{end_block, Parsed};

pub fn parse(bytes: &[u8]) -> Result<Parsed, super::ParseError> {
    let src = super::text::decode_utf8(bytes)?;
    let mut text = String::with_capacity(src.len());
    let mut title: Option<String> = None;
    let mut heading: Option<(HeadingLevel, String)> = None;
    for event in Parser::new(&src) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                end_block(&mut text);
                text.push_str(&"#".repeat(level as usize));
                text.push(' ');
                heading = Some((level, String::new()));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((HeadingLevel::H1, h)) = heading.take() {
                    title.get_or_insert(h);
                }
                text.push_str("\n\n");
            }
            Event::Start(Tag::Item) => {
                line_break(&mut text);
                text.push_str("- ");
            }
            Event::Start(Tag::Paragraph | Tag::CodeBlock(_) | Tag::BlockQuote(_) | Tag::Table(_)) => {
                end_block(&mut text)
            }
            Event::End(TagEnd::Paragraph | TagEnd::CodeBlock | TagEnd::BlockQuote(_) | TagEnd::Table) => {
                end_block(&mut text)
            }
            Event::End(TagEnd::TableRow | TagEnd::TableHead) => line_break(&mut text),
            Event::End(TagEnd::TableCell) => text.push(' '),
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, h)) = heading.as_mut() {
                    h.push_str(&t);
                }
                text.push_str(&t);
            }
            Event::SoftBreak => text.push(' '),
            Event::HardBreak => text.push('\n'),
            Event::Html(h) | Event::InlineHtml(h) => {
                // Raw HTML blocks carry text too; strip the tags crudely but safely.
                let stripped = super::html::parse(h.as_bytes())
                    .map(|p| p.text)
                    .unwrap_or_default();
                text.push_str(&stripped);
            }
            _ => {}
        }
    }
    Ok(Parsed {
        text: text.trim().to_string(),
        title,
    })
}

fn line_break(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_headings_and_drops_markup() {
        let md = b"# Getting started\n\nInstall it with *cargo*:\n\n```sh\ncargo install sluice\n```\n\n## Next\n\n- one\n- [two](http://x)\n";
        let p = parse(md).unwrap();
        assert_eq!(p.title.as_deref(), Some("Getting started"));
        assert_eq!(
            p.text,
            "# Getting started\n\nInstall it with cargo:\n\ncargo install sluice\n\n## Next\n\n- one\n- two"
        );
    }
}
