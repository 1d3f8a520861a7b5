//! A question set: one JSON object a line,
//! `{"question": "...", "relevant": [...]}`, where each relevant item is a
//! doc_id (or the end of one after a `/`, such as `md/backpressure.md`), a
//! chunk_id, or `{"contains": "text"}` (a chunk whose text holds it, ignoring
//! case and runs of white space). Blank lines and lines starting with `#` are
//! skipped.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{Error, Result};

/// The most questions in one set.
pub const MAX_QUESTIONS: usize = 10_000;
/// The largest question file.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// What makes a hit relevant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Relevant {
    /// A doc_id (or its end after a `/`) or a chunk_id.
    Id(String),
    /// A chunk whose text contains this.
    Contains { contains: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub question: String,
    pub relevant: Vec<Relevant>,
}

/// Lower case, white space runs as one space.
fn normalized(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

impl Relevant {
    /// Whether the row `row` (a hit's columns) is this item.
    pub fn matches(&self, row: &Map<String, Value>) -> bool {
        let text = |c: &str| row.get(c).and_then(Value::as_str);
        match self {
            Relevant::Id(id) => {
                text("chunk_id") == Some(id.as_str())
                    || text("doc_id").is_some_and(|d| {
                        d == id || (d.ends_with(id.as_str()) && d[..d.len() - id.len()].ends_with('/'))
                    })
            }
            Relevant::Contains { contains } => {
                text("text").is_some_and(|t| normalized(t).contains(&normalized(contains)))
            }
        }
    }
}

/// Read and check the question set at `path`: every problem with its line.
pub fn load(path: &Path) -> Result<Vec<Question>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::Usage(format!(
            "{} is over {} MiB",
            path.display(),
            MAX_FILE_BYTES >> 20
        )));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    parse(&text).map_err(|problems| {
        Error::Usage(format!(
            "{} is not a question set:\n{}",
            path.display(),
            problems.join("\n")
        ))
    })
}

/// The questions of `text`, or every problem (`line N: ...`).
pub fn parse(text: &str) -> std::result::Result<Vec<Question>, Vec<String>> {
    let mut questions = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |what: String| format!("  line {}: {what}", i + 1);
        match serde_json::from_str::<Question>(line) {
            Ok(q) if q.question.trim().is_empty() => problems.push(at("the question is empty".into())),
            Ok(q) if q.relevant.is_empty() => problems.push(at(
                "`relevant` is empty: list doc_ids, chunk_ids or {\"contains\": \"text\"}".into(),
            )),
            Ok(q) if q.relevant.iter().any(|r| match r {
                Relevant::Id(s) => s.is_empty(),
                Relevant::Contains { contains } => contains.trim().is_empty(),
            }) => problems.push(at("an empty relevant item".into())),
            Ok(q) => questions.push(q),
            Err(e) => problems.push(at(format!(
                "{e}; a line is {{\"question\": \"...\", \"relevant\": [\"doc_id\", {{\"contains\": \"text\"}}]}}"
            ))),
        }
        if questions.len() > MAX_QUESTIONS {
            problems.push(format!("  more than {MAX_QUESTIONS} questions"));
            break;
        }
    }
    if questions.is_empty() && problems.is_empty() {
        problems.push("  no questions".into());
    }
    if problems.is_empty() {
        Ok(questions)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn items_match_by_id_path_end_or_text() {
        let r =
            row(json!({"doc_id": "file:///x/md/cats.md", "chunk_id": "ab12", "text": "Cats  PURR\nloudly"}));
        assert!(Relevant::Id("md/cats.md".into()).matches(&r));
        assert!(Relevant::Id("cats.md".into()).matches(&r));
        assert!(!Relevant::Id("ats.md".into()).matches(&r), "only after a `/`");
        assert!(Relevant::Id("ab12".into()).matches(&r));
        assert!(Relevant::Contains {
            contains: "purr loudly".into()
        }
        .matches(&r));
        assert!(!Relevant::Contains {
            contains: "dogs".into()
        }
        .matches(&r));
    }

    #[test]
    fn every_bad_line_is_named() {
        let text = "# a comment\n\n{\"question\": \"q\", \"relevant\": [\"a\", {\"contains\": \"b\"}]}\n\
                    {\"question\": \"\", \"relevant\": [\"a\"]}\n\
                    {\"question\": \"q\", \"relevant\": []}\n\
                    not json\n\
                    {\"question\": \"q\", \"relevant\": [\"a\"], \"extra\": 1}\n";
        let problems = parse(text).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("  line 4: the question is empty"));
        assert!(problems[1].starts_with("  line 5: `relevant` is empty"));
        assert!(problems[2].starts_with("  line 6:"));
        assert!(problems[3].contains("unknown field `extra`"), "{problems:?}");
        let ok = parse("{\"question\": \"q\", \"relevant\": [\"a\", {\"contains\": \"b\"}]}").unwrap();
        assert_eq!(ok[0].relevant[1], Relevant::Contains { contains: "b".into() });
        assert!(parse("").is_err());
    }
}
