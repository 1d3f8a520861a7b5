//! Plain text, JSON and JSON Lines.

use serde_json::Value;

use super::{ParseError, Parsed};

/// Strict UTF-8 (a leading BOM is dropped). Invalid bytes are an error that says
/// where, rather than silently replaced.
pub fn decode_utf8(bytes: &[u8]) -> Result<String, ParseError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(ParseError::NotUtf8)
}

pub fn parse_text(bytes: &[u8]) -> Result<Parsed, ParseError> {
    Ok(Parsed {
        text: decode_utf8(bytes)?,
        title: None,
    })
}

/// Follow a dotted path (`body`, `data.body`) into a JSON value.
fn field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

fn field_text(v: &Value, path: &str) -> Result<String, ParseError> {
    match field(v, path) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Null) | None => Err(ParseError::NoField(path.to_string())),
        Some(other) => Ok(other.to_string()),
    }
}

fn title_of(v: &Value, title_field: Option<&str>) -> Option<String> {
    title_field
        .and_then(|t| field(v, t))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A JSON object, or an array of objects, whose `text_field` holds the text.
pub fn parse_json(bytes: &[u8], text_field: &str, title_field: Option<&str>) -> Result<Parsed, ParseError> {
    let v: Value = serde_json::from_slice(bytes)?;
    match &v {
        Value::Array(items) => {
            let texts: Result<Vec<String>, ParseError> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    field_text(item, text_field).map_err(|e| ParseError::Item {
                        index: i,
                        source: Box::new(e),
                    })
                })
                .collect();
            let title = items.first().and_then(|i| title_of(i, title_field));
            Ok(Parsed {
                text: texts?.join("\n\n"),
                title,
            })
        }
        _ => Ok(Parsed {
            text: field_text(&v, text_field)?,
            title: title_of(&v, title_field),
        }),
    }
}

/// JSON Lines: the texts of good lines, joined by blank lines, plus one error per
/// broken line (1-based line number and reason). Blank lines are skipped.
pub fn parse_jsonl(bytes: &[u8], text_field: &str, title_field: Option<&str>) -> (Parsed, Vec<String>) {
    let mut texts = Vec::new();
    let mut errors = Vec::new();
    let mut title = None;
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        let parsed = serde_json::from_slice::<Value>(line)
            .map_err(ParseError::from)
            .and_then(|v| {
                title = title.take().or_else(|| title_of(&v, title_field));
                field_text(&v, text_field)
            });
        match parsed {
            Ok(t) => texts.push(t),
            Err(e) => errors.push(format!("line {}: {e}", i + 1)),
        }
    }
    (
        Parsed {
            text: texts.join("\n\n"),
            title,
        },
        errors,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rejects_invalid_utf8_with_offset() {
        assert_eq!(parse_text(b"\xef\xbb\xbfhello").unwrap().text, "hello");
        assert_eq!(
            parse_text(b"ab\xffcd").unwrap_err().to_string(),
            "not valid UTF-8: invalid byte at offset 2"
        );
    }

    #[test]
    fn json_field_paths_and_arrays() {
        let p = parse_json(br#"{"data": {"body": "hi"}, "t": "T"}"#, "data.body", Some("t")).unwrap();
        assert_eq!((p.text.as_str(), p.title.as_deref()), ("hi", Some("T")));
        let p = parse_json(br#"[{"text": "a"}, {"text": "b"}]"#, "text", None).unwrap();
        assert_eq!(p.text, "a\n\nb");
        assert_eq!(
            parse_json(br#"{"x": 1}"#, "text", None).unwrap_err().to_string(),
            "no field `text`"
        );
    }

    #[test]
    fn jsonl_keeps_good_lines_and_reports_broken_ones() {
        let (p, errors) = parse_jsonl(
            b"{\"text\": \"one\"}\n{broken\n\n{\"text\": \"two\"}\n",
            "text",
            None,
        );
        assert_eq!(p.text, "one\n\ntwo");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("line 2: invalid JSON"), "{errors:?}");
    }
}
