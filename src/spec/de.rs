//! A serde deserializer over a located YAML [`Node`].
//!
//! It differs from a plain deserializer in two ways that make `validate` useful:
//! unknown keys are recorded (with a "did you mean" hint) and skipped instead of
//! aborting, and every error carries the line and column of the node at fault.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::yaml::{Loc, Node, Value};

/// A problem found while decoding, with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub loc: Loc,
    pub message: String,
    pub hint: Option<String>,
}

/// The error serde sees. The location is filled in by the innermost node that
/// knows it.
#[derive(Debug)]
pub struct DeError {
    message: String,
    hint: Option<String>,
    loc: Option<Loc>,
}

impl DeError {
    fn at(loc: Loc, message: impl Into<String>) -> Self {
        DeError {
            message: message.into(),
            hint: None,
            loc: Some(loc),
        }
    }

    fn located(mut self, loc: Loc) -> Self {
        self.loc.get_or_insert(loc);
        self
    }

    pub fn into_issue(self, fallback: Loc) -> Issue {
        Issue {
            loc: self.loc.unwrap_or(fallback),
            message: self.message,
            hint: self.hint,
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            hint: None,
            loc: None,
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            message: format!("unknown value `{variant}`, expected one of {}", one_of(expected)),
            hint: did_you_mean(variant, expected.iter().copied()),
            loc: None,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            message: format!("missing key `{field}`"),
            hint: None,
            loc: None,
        }
    }
}

/// `` `a`, `b` or `c` ``.
pub fn one_of(options: &[&str]) -> String {
    let quoted: Vec<String> = options.iter().map(|o| format!("`{o}`")).collect();
    match quoted.split_last() {
        None => "nothing".into(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// "did you mean `x`?" when a candidate is close enough.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Decode `node` into `T`. Unknown keys go to `issues` and do not stop decoding.
///
/// serde stops at the first bad value, so after each error the entry holding it is
/// taken out of the mapping and decoding runs again: every bad key of the mapping is
/// reported, not just the first. Returns `None` if there was any error.
pub fn decode<T: DeserializeOwned>(node: &Node, issues: &mut Vec<Issue>) -> Option<T> {
    decode_partial(node, issues)
        .filter(|d| d.complete)
        .map(|d| d.value)
}

/// A value decoded from a mapping whose bad keys were taken out.
pub struct Decoded<T> {
    pub value: T,
    /// No key was taken out. When false, the value holds defaults where the bad
    /// keys were (their errors are already reported): good enough to check the
    /// other keys, never to run.
    pub complete: bool,
}

/// [`decode`], but also returns the value decoded without the bad keys, so a
/// component can still check its other keys (a bad glob next to a bad size is
/// reported too). `None` when even that fails (a required key was bad).
pub fn decode_partial<T: DeserializeOwned>(node: &Node, issues: &mut Vec<Issue>) -> Option<Decoded<T>> {
    let mut node = node.clone();
    let mut removed: Vec<String> = Vec::new();
    for attempt in 0.. {
        let unknown = RefCell::new(Vec::new());
        let result = T::deserialize(NodeDe {
            node: &node,
            unknown: &unknown,
        });
        if attempt == 0 {
            issues.extend(unknown.into_inner());
        }
        let issue = match result {
            Ok(value) => {
                return Some(Decoded {
                    value,
                    complete: removed.is_empty(),
                })
            }
            Err(e) => e.into_issue(node.loc),
        };
        // A key we took out is now missing: nothing more to learn from this mapping.
        if removed
            .iter()
            .any(|k| issue.message == format!("missing key `{k}`"))
        {
            return None;
        }
        let culprit = match &node.value {
            Value::Map(entries) => entries
                .iter()
                .rposition(|(k, _)| (k.loc.line, k.loc.col) <= (issue.loc.line, issue.loc.col)),
            _ => None,
        };
        issues.push(issue);
        let (Some(i), Value::Map(entries)) = (culprit, &mut node.value) else {
            return None;
        };
        let (key, _) = entries.remove(i);
        removed.push(key.as_str().unwrap_or_default().to_string());
    }
    None
}

#[derive(Clone, Copy)]
struct NodeDe<'a> {
    node: &'a Node,
    unknown: &'a RefCell<Vec<Issue>>,
}

impl<'a> NodeDe<'a> {
    fn scalar(&self, expected: &str) -> Result<&'a str, DeError> {
        match &self.node.value {
            Value::Scalar { text, .. } => Ok(text),
            _ => Err(DeError::at(
                self.node.loc,
                format!("expected {expected}, found {}", self.node.kind()),
            )),
        }
    }

    fn plain(&self) -> bool {
        matches!(self.node.value, Value::Scalar { plain: true, .. })
    }

    fn parse<T: std::str::FromStr>(&self, expected: &str) -> Result<T, DeError> {
        let s = self.scalar(expected)?;
        s.trim()
            .replace('_', "")
            .parse()
            .map_err(|_| DeError::at(self.node.loc, format!("expected {expected}, found `{s}`")))
    }

    fn child(&self, node: &'a Node) -> Self {
        NodeDe {
            node,
            unknown: self.unknown,
        }
    }
}

macro_rules! number {
    ($method:ident, $visit:ident, $ty:ty, $what:expr) => {
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            let n: $ty = self.parse($what)?;
            v.$visit(n).map_err(|e: DeError| e.located(self.node.loc))
        }
    };
}

impl<'de, 'a> de::Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let loc = self.node.loc;
        let r = match &self.node.value {
            Value::Seq(_) => return self.deserialize_seq(v),
            Value::Map(_) => return self.deserialize_map(v),
            Value::Scalar { text, plain: false } => v.visit_str::<DeError>(text),
            Value::Scalar { .. } if self.node.is_null() => v.visit_unit(),
            Value::Scalar { text, plain: true } => match text.as_str() {
                "true" | "True" | "TRUE" => v.visit_bool(true),
                "false" | "False" | "FALSE" => v.visit_bool(false),
                t => {
                    if let Ok(n) = t.parse::<u64>() {
                        v.visit_u64(n)
                    } else if let Ok(n) = t.parse::<i64>() {
                        v.visit_i64(n)
                    } else if let Ok(n) = t.parse::<f64>() {
                        v.visit_f64(n)
                    } else {
                        v.visit_str(t)
                    }
                }
            },
        };
        r.map_err(|e| e.located(loc))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let s = self.scalar("true or false")?;
        match (self.plain(), s) {
            (true, "true" | "True" | "TRUE") => v.visit_bool(true),
            (true, "false" | "False" | "FALSE") => v.visit_bool(false),
            _ => Err(DeError::at(
                self.node.loc,
                format!("expected true or false, found `{s}`"),
            )),
        }
    }

    number!(deserialize_u8, visit_u8, u8, "a whole number from 0 to 255");
    number!(deserialize_u16, visit_u16, u16, "a whole number from 0 to 65535");
    number!(deserialize_u32, visit_u32, u32, "a whole number (0 or more)");
    number!(deserialize_u64, visit_u64, u64, "a whole number (0 or more)");
    number!(deserialize_i8, visit_i8, i8, "a whole number");
    number!(deserialize_i16, visit_i16, i16, "a whole number");
    number!(deserialize_i32, visit_i32, i32, "a whole number");
    number!(deserialize_i64, visit_i64, i64, "a whole number");
    number!(deserialize_f32, visit_f32, f32, "a number");
    number!(deserialize_f64, visit_f64, f64, "a number");

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let s = self.scalar("a string")?;
        v.visit_str::<DeError>(s).map_err(|e| e.located(self.node.loc))
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            v.visit_unit()
        } else {
            Err(DeError::at(
                self.node.loc,
                format!("expected nothing, found {}", self.node.kind()),
            ))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> Result<V::Value, DeError> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Seq(items) => v
                .visit_seq(Seq {
                    items: items.iter(),
                    de: self,
                })
                .map_err(|e| e.located(self.node.loc)),
            _ => Err(DeError::at(
                self.node.loc,
                format!("expected a list, found {}", self.node.kind()),
            )),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(entries) => {
                let entries: Vec<_> = entries.iter().collect();
                v.visit_map(Map {
                    entries: entries.into_iter(),
                    value: None,
                    de: self,
                })
                .map_err(|e| e.located(self.node.loc))
            }
            _ if self.node.is_null() => Err(DeError::at(self.node.loc, "expected a mapping, found nothing")),
            _ => Err(DeError::at(
                self.node.loc,
                format!("expected a mapping, found {}", self.node.kind()),
            )),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let Value::Map(entries) = &self.node.value else {
            if self.node.is_null() {
                // `key:` with nothing after it: treat as an empty mapping so defaults apply.
                let empty = Node {
                    value: Value::Map(Vec::new()),
                    loc: self.node.loc,
                };
                let unknown = self.unknown;
                return v
                    .visit_map(Map {
                        entries: Vec::new().into_iter(),
                        value: None,
                        de: NodeDe {
                            node: &empty,
                            unknown,
                        },
                    })
                    .map_err(|e| e.located(self.node.loc));
            }
            return Err(DeError::at(
                self.node.loc,
                format!("expected a mapping, found {}", self.node.kind()),
            ));
        };
        let mut known = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = entry.0.as_str().unwrap_or_default();
            if fields.contains(&key) {
                known.push(entry);
            } else {
                self.unknown.borrow_mut().push(Issue {
                    loc: entry.0.loc,
                    message: format!("unknown key `{key}`, expected {}", one_of(fields)),
                    hint: did_you_mean(key, fields.iter().copied()),
                });
            }
        }
        v.visit_map(Map {
            entries: known.into_iter(),
            value: None,
            de: self,
        })
        .map_err(|e| e.located(self.node.loc))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let s = self.scalar("a name")?;
        v.visit_enum(s.into_deserializer())
            .map_err(|e: DeError| e.located(self.node.loc))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }
}

struct Seq<'a, I> {
    items: I,
    de: NodeDe<'a>,
}

impl<'de, 'a, I: Iterator<Item = &'a Node>> SeqAccess<'de> for Seq<'a, I> {
    type Error = DeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(node) => seed
                .deserialize(self.de.child(node))
                .map(Some)
                .map_err(|e| e.located(node.loc)),
            None => Ok(None),
        }
    }
}

struct Map<'a, I> {
    entries: I,
    value: Option<&'a Node>,
    de: NodeDe<'a>,
}

impl<'de, 'a, I: Iterator<Item = &'a (Node, Node)>> MapAccess<'de> for Map<'a, I> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(self.de.child(k))
                    .map(Some)
                    .map_err(|e| e.located(k.loc))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, DeError> {
        let node = self.value.take().expect("value after key");
        seed.deserialize(self.de.child(node))
            .map_err(|e| e.located(node.loc))
    }
}

#[cfg(test)]
mod tests {
    use super::super::yaml::parse;
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Chunk {
        max_tokens: u32,
        #[serde(default)]
        overlap_tokens: u32,
        strategy: Strategy,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Strategy {
        Text,
        Markdown,
    }

    #[test]
    fn collects_unknown_keys_and_locates_type_errors() {
        let node = parse("max_token: 5\nmax_tokens: lots\nstrategy: text\nfoo: 1\n").unwrap();
        let mut issues = Vec::new();
        assert_eq!(decode::<Chunk>(&node, &mut issues), None);
        let summary: Vec<_> = issues
            .iter()
            .map(|i| (i.loc.line, i.loc.col, i.hint.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, 1, Some("did you mean `max_tokens`?".into())),
                (4, 1, None),
                (2, 13, None),
            ]
        );
        assert!(
            issues[2].message.contains("expected a whole number"),
            "{:?}",
            issues[2]
        );
    }

    #[test]
    fn every_bad_value_of_a_mapping_is_reported() {
        let node = parse("max_tokens: lots\noverlap_tokens: -3\nstrategy: markdwn\n").unwrap();
        let mut issues = Vec::new();
        assert!(decode::<Chunk>(&node, &mut issues).is_none());
        let lines: Vec<usize> = issues.iter().map(|i| i.loc.line).collect();
        assert_eq!(lines, vec![1, 2, 3], "{issues:?}");
    }

    #[test]
    fn unknown_variants_get_a_hint_and_a_location() {
        let node = parse("max_tokens: 5\nstrategy: markdwn\n").unwrap();
        let mut issues = Vec::new();
        assert!(decode::<Chunk>(&node, &mut issues).is_none());
        assert_eq!(issues[0].loc, Loc { line: 2, col: 11 });
        assert_eq!(issues[0].hint.as_deref(), Some("did you mean `markdown`?"));
    }

    #[test]
    fn missing_keys_point_at_the_mapping() {
        let node = parse("x:\n  strategy: text\n").unwrap();
        let mut issues = Vec::new();
        let inner = &node.get("x").unwrap().1;
        assert!(decode::<Chunk>(inner, &mut issues).is_none());
        assert_eq!(issues[0].message, "missing key `max_tokens`");
        assert_eq!(issues[0].loc.line, 2);
    }
}
