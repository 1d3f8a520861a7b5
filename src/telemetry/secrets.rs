//! Secrets never leave the process: every value a pipeline file gives in a
//! secret's place is remembered, and every way out (log lines, the error a
//! command prints, `validate`'s diagnostics, the daemon's API, dead letters,
//! panic messages) is scrubbed of them.
//!
//! A secret's place: a key named like one (`password`, `sasl.password`,
//! `secret_access_key`, `token`, ...), or the password or a secret query
//! parameter (`?password=`) of a URL. Connectors redact what they know too
//! (URLs in errors, librdkafka's echo of option values); this is the net under
//! them.

use std::borrow::Cow;
use std::sync::RwLock;

use crate::spec::yaml::{Node, Value};

/// Shorter values are not taken for secrets (they would scrub common words).
const MIN_LEN: usize = 4;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remember `value` as a secret.
pub fn register(value: &str) {
    if value.len() < MIN_LEN {
        return;
    }
    let mut all = SECRETS.write().unwrap_or_else(|p| p.into_inner());
    if !all.iter().any(|s| s == value) {
        all.push(value.to_string());
        // Longest first, so a secret that contains another is replaced whole.
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Remember every secret in a pipeline's tree (after `${ENV}` expansion).
pub fn register_tree(node: &Node) {
    match &node.value {
        Value::Scalar { text, .. } => {
            for s in sluice_connector_sdk::config::url_secrets(text) {
                register(&s);
            }
        }
        Value::Seq(items) => items.iter().for_each(register_tree),
        Value::Map(entries) => {
            for (k, v) in entries {
                let secret_key = k
                    .as_str()
                    .is_some_and(sluice_connector_sdk::config::is_secret_name);
                match (&v.value, secret_key) {
                    (Value::Scalar { text, .. }, true) => register(text),
                    _ => register_tree(v),
                }
            }
        }
    }
}

/// `text` with every known secret replaced by `***`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let all = SECRETS.read().unwrap_or_else(|p| p.into_inner());
    if !all.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for s in all.iter() {
        out = out.replace(s.as_str(), "***");
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_their_places_are_scrubbed_and_other_values_are_not() {
        let tree = crate::spec::yaml::parse(
            "sinks:\n  - {url: 'postgresql://u:canary-one@h/db?password=canary-two', table: t}\n  - options: {sasl.password: canary-three, key: chunk_id}\n",
        )
        .unwrap();
        register_tree(&tree);
        let line = "connect postgresql://u:canary-one@h/db?password=canary-two failed; sasl canary-three; key chunk_id";
        let clean = scrub(line);
        for c in ["canary-one", "canary-two", "canary-three"] {
            assert!(!clean.contains(c), "{clean}");
        }
        assert!(clean.contains("chunk_id"), "{clean}");
    }
}
