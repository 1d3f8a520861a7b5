//! A sink's `full_text` setting: which text column the store indexes for
//! full-text search, and in which language it stems and drops stop words.
//!
//! ```yaml
//! full_text: true                               # the `text` column, English
//! full_text: {column: body, language: french}
//! ```

use arrow::datatypes::{DataType, Schema};
use serde::Deserialize;

use crate::ConfigIssue;

/// A language both PostgreSQL (a text search configuration of that name) and
/// LanceDB (its stemmer) know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Danish,
    Dutch,
    English,
    Finnish,
    French,
    German,
    Hungarian,
    Italian,
    Norwegian,
    Portuguese,
    Romanian,
    Russian,
    Spanish,
    Swedish,
    Turkish,
}

impl Language {
    /// The lower-case name (PostgreSQL's text search configuration).
    pub fn name(self) -> &'static str {
        match self {
            Language::Danish => "danish",
            Language::Dutch => "dutch",
            Language::English => "english",
            Language::Finnish => "finnish",
            Language::French => "french",
            Language::German => "german",
            Language::Hungarian => "hungarian",
            Language::Italian => "italian",
            Language::Norwegian => "norwegian",
            Language::Portuguese => "portuguese",
            Language::Romanian => "romanian",
            Language::Russian => "russian",
            Language::Spanish => "spanish",
            Language::Swedish => "swedish",
            Language::Turkish => "turkish",
        }
    }

    /// The name with a capital first letter (LanceDB's stemmer).
    pub fn title(self) -> String {
        let name = self.name();
        name[..1].to_ascii_uppercase() + &name[1..]
    }
}

/// What a sink indexes for full-text search.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullText {
    #[serde(default = "default_column")]
    pub column: String,
    #[serde(default = "default_language")]
    pub language: Language,
}

fn default_column() -> String {
    "text".into()
}

fn default_language() -> Language {
    Language::English
}

impl Default for FullText {
    fn default() -> Self {
        FullText {
            column: default_column(),
            language: default_language(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    On(bool),
    Spec(FullText),
}

/// `full_text:` as `true`, `false` or `{column, language}`; use with
/// `#[serde(default, deserialize_with = "...")]` on an `Option<FullText>`.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<FullText>, D::Error> {
    Ok(match Option::<Raw>::deserialize(d)? {
        None | Some(Raw::On(false)) => None,
        Some(Raw::On(true)) => Some(FullText::default()),
        Some(Raw::Spec(spec)) => Some(spec),
    })
}

impl FullText {
    /// The column must be text in the sink's input.
    pub fn check(&self, input: &Schema) -> Vec<ConfigIssue> {
        match input.field_with_name(&self.column).map(|f| f.data_type()) {
            Ok(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => Vec::new(),
            Ok(other) => vec![ConfigIssue::new(
                Some("full_text.column"),
                format!("`{}` is {other}, not text", self.column),
            )],
            Err(_) => vec![ConfigIssue::new(
                Some("full_text.column"),
                format!("the input has no column `{}` to index", self.column),
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Sink {
        #[serde(default, deserialize_with = "deserialize")]
        full_text: Option<FullText>,
    }

    fn parse(json: &str) -> Result<Option<FullText>, String> {
        serde_json::from_str::<Sink>(json)
            .map(|s| s.full_text)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn true_false_and_a_spec_parse() {
        assert_eq!(parse("{}").unwrap(), None);
        assert_eq!(parse(r#"{"full_text": false}"#).unwrap(), None);
        assert_eq!(
            parse(r#"{"full_text": true}"#).unwrap(),
            Some(FullText::default())
        );
        let spec = parse(r#"{"full_text": {"column": "body", "language": "french"}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            (spec.column.as_str(), spec.language.title()),
            ("body", "French".to_string())
        );
        assert!(parse(r#"{"full_text": {"language": "klingon"}}"#).is_err());
        assert!(parse(r#"{"full_text": {"colum": "body"}}"#).is_err());
    }
}
