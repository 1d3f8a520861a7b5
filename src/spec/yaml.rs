//! A YAML tree that remembers where every node came from, and `${ENV}` interpolation.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// 1-based line and column of a node in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    pub line: usize,
    pub col: usize,
}

impl Loc {
    fn from_marker(m: Marker) -> Self {
        // yaml-rust2 lines are 1-based and columns 0-based.
        Loc {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// A scalar keeps its text; `plain` is false for quoted and block scalars, which are
/// always strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar { text: String, plain: bool },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub loc: Loc,
}

impl Node {
    /// A plain scalar that YAML reads as null (`~`, `null`, or nothing).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The entries of a mapping.
    pub fn entries(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key` in a mapping, with its key node.
    pub fn get(&self, key: &str) -> Option<(&Node, &Node)> {
        self.entries()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, v)| (k, v))
    }

    /// What kind of node this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "nothing",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub loc: Loc,
    pub message: String,
}

struct Frame {
    node: Node,
    /// In a mapping: the index of the entry whose value comes next.
    pending_key: Option<usize>,
    anchor: usize,
}

/// How deep mappings and lists may nest. Pipelines need a handful of levels;
/// the tree is walked recursively, so an unbounded depth could overflow the stack.
pub const MAX_DEPTH: usize = 64;
/// How many nodes a file may expand to, aliases counted at their full size, so a
/// "billion laughs" file of nested aliases is refused instead of filling memory.
pub const MAX_NODES: usize = 100_000;

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Each anchored node, with how many nodes it holds.
    anchors: HashMap<usize, (Node, usize)>,
    docs: Vec<Node>,
    /// Nodes so far, aliases counted at their full size.
    nodes: usize,
    /// Nodes under each open frame, so an anchor knows its size when it closes.
    sizes: Vec<usize>,
    /// The first alias or limit error; the builder stops building after it.
    error: Option<SyntaxError>,
}

impl Builder {
    /// Count `n` more nodes; false (with the error set) past [`MAX_NODES`].
    fn count(&mut self, n: usize, loc: Loc) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        if let Some(open) = self.sizes.last_mut() {
            *open = open.saturating_add(n);
        }
        if self.nodes > MAX_NODES {
            self.fail(
                loc,
                format!("the file expands to more than {MAX_NODES} nodes (through aliases?)"),
            );
            return false;
        }
        true
    }

    fn fail(&mut self, loc: Loc, message: String) {
        self.error.get_or_insert(SyntaxError { loc, message });
    }

    fn push_complete(&mut self, node: Node, anchor: usize, size: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        let Some(frame) = self.stack.last_mut() else {
            self.docs.push(node);
            return;
        };
        match &mut frame.node.value {
            Value::Seq(items) => items.push(node),
            Value::Map(entries) => match frame.pending_key.take() {
                None => {
                    frame.pending_key = Some(entries.len());
                    let placeholder = Node {
                        value: Value::Scalar {
                            text: String::new(),
                            plain: true,
                        },
                        loc: node.loc,
                    };
                    entries.push((node, placeholder));
                }
                Some(i) => entries[i].1 = node,
            },
            Value::Scalar { .. } => unreachable!("scalars have no children"),
        }
    }

    fn open(&mut self, value: Value, loc: Loc, anchor: usize) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(loc, format!("nested deeper than {MAX_DEPTH} levels"));
            return;
        }
        if !self.count(1, loc) {
            return;
        }
        // Its own node went to the parent's count; its children go here.
        self.sizes.push(0);
        self.stack.push(Frame {
            node: Node { value, loc },
            pending_key: None,
            anchor,
        });
    }

    fn close(&mut self) {
        if let Some(mut frame) = self.stack.pop() {
            // A block mapping's event points at its first `:`; its first key is where
            // a reader looks.
            if let Value::Map(entries) = &frame.node.value {
                if let Some((k, _)) = entries.first() {
                    frame.node.loc = k.loc;
                }
            }
            let children = self.sizes.pop().unwrap_or(0);
            if let Some(parent) = self.sizes.last_mut() {
                *parent = parent.saturating_add(children);
            }
            self.push_complete(frame.node, frame.anchor, children + 1);
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let loc = Loc::from_marker(mark);
        match ev {
            Event::Scalar(text, style, anchor, _) => {
                if !self.count(1, loc) {
                    return;
                }
                let plain = style == TScalarStyle::Plain;
                self.push_complete(
                    Node {
                        value: Value::Scalar { text, plain },
                        loc,
                    },
                    anchor,
                    1,
                );
            }
            Event::SequenceStart(anchor, _) => self.open(Value::Seq(Vec::new()), loc, anchor),
            Event::MappingStart(anchor, _) => self.open(Value::Map(Vec::new()), loc, anchor),
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            Event::Alias(id) => match self.anchors.get(&id).map(|(_, size)| *size) {
                Some(size) => {
                    // Counted before the clone, so a huge expansion is never built.
                    if self.count(size, loc) {
                        let node = self.anchors[&id].0.clone();
                        self.push_complete(Node { loc, ..node }, 0, size);
                    }
                }
                None => self.fail(loc, "alias to an unknown anchor".into()),
            },
            _ => {}
        }
    }
}

/// Parse one YAML document. An empty file is an empty mapping.
pub fn parse(src: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(src);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        loc: Loc::from_marker(*e.marker()),
        message: e.info().to_string(),
    })?;
    if let Some(e) = builder.error {
        return Err(e);
    }
    Ok(builder.docs.into_iter().next().unwrap_or(Node {
        value: Value::Map(Vec::new()),
        loc: Loc { line: 1, col: 1 },
    }))
}

/// An `${ENV}` reference that could not be resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvError {
    pub loc: Loc,
    pub message: String,
    pub hint: Option<String>,
}

/// Replace `${NAME}` and `${NAME:-default}` in every scalar value (never in keys).
/// `$$` is a literal `$`. Every unresolved reference is reported.
pub fn interpolate(node: &mut Node, env: &dyn Fn(&str) -> Option<String>, errors: &mut Vec<EnvError>) {
    match &mut node.value {
        Value::Scalar { text, .. } => {
            if text.contains('$') {
                match expand(text, env) {
                    Ok(s) => *text = s,
                    Err((message, hint)) => errors.push(EnvError {
                        loc: node.loc,
                        message,
                        hint,
                    }),
                }
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(|n| interpolate(n, env, errors)),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| interpolate(v, env, errors)),
    }
}

fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, (String, Option<String>)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r.find('}').ok_or_else(|| {
                (
                    format!("unclosed `${{` in `{text}`"),
                    Some("write ${NAME} or ${NAME:-default}; $$ is a literal $".to_string()),
                )
            })?;
            let inner = &r[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err((format!("`${{{inner}}}` is not a valid variable reference"), None));
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err((
                        format!("environment variable `{name}` is not set"),
                        Some(format!("set it, or give a default: ${{{name}:-value}}")),
                    ))
                }
            }
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_aliases_are_refused_before_they_expand() {
        // "Billion laughs": 9 levels of 9 aliases each would be 9^9 nodes.
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            src.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let e = parse(&src).unwrap_err();
        assert!(e.message.contains("more than 100000 nodes"), "{e:?}");
        // A few aliases stay fine, counted at their size.
        let ok = parse("base: &b {type: files, path: ./d}\nsource: *b\nother: *b\n").unwrap();
        assert_eq!(
            ok.get("other").unwrap().1.get("path").unwrap().1.as_str(),
            Some("./d")
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let src = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let e = parse(&src).unwrap_err();
        assert!(e.message.contains("nested deeper than 64"), "{e:?}");
        // Far deeper, yaml-rust2's own recursion limit answers first.
        let src = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&src).is_err());
        let ok = format!("{}1{}", "[".repeat(60), "]".repeat(60));
        parse(&ok).unwrap();
    }

    #[test]
    fn nodes_know_their_line_and_column() {
        let n = parse(
            "name: x
source:
  type: files
  path: ./d
list: [a, 'b']
",
        )
        .unwrap();
        let (k, v) = n.get("source").unwrap();
        assert_eq!(k.loc, Loc { line: 2, col: 1 });
        let (tk, tv) = v.get("type").unwrap();
        assert_eq!(
            (tk.loc, tv.loc),
            (Loc { line: 3, col: 3 }, Loc { line: 3, col: 9 })
        );
        let (_, list) = n.get("list").unwrap();
        match &list.value {
            Value::Seq(items) => {
                assert_eq!(
                    items[1].value,
                    Value::Scalar {
                        text: "b".into(),
                        plain: false
                    }
                );
                assert_eq!(items[1].loc, Loc { line: 5, col: 11 });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn anchors_and_aliases_expand() {
        let n = parse(
            "a: &x {k: 1}
b: *x
",
        )
        .unwrap();
        assert_eq!(n.get("b").unwrap().1.get("k").unwrap().1.as_str(), Some("1"));
    }

    #[test]
    fn env_interpolation_with_defaults_and_errors() {
        let env = |k: &str| (k == "HOME_DIR").then(|| "/h".to_string());
        let mut n = parse(
            "a: ${HOME_DIR}/x
b: ${NOPE:-7}
c: $${HOME_DIR}
d: ${MISSING}
",
        )
        .unwrap();
        let mut errors = Vec::new();
        interpolate(&mut n, &env, &mut errors);
        assert_eq!(n.get("a").unwrap().1.as_str(), Some("/h/x"));
        assert_eq!(n.get("b").unwrap().1.as_str(), Some("7"));
        assert_eq!(n.get("c").unwrap().1.as_str(), Some("${HOME_DIR}"));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].loc, Loc { line: 4, col: 4 });
        assert!(errors[0].message.contains("MISSING"));
    }
}
