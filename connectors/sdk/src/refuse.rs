//! Finding the documents a store refuses, so that one bad document is a dead
//! letter and never a stopped pipeline.
//!
//! A sink that writes an epoch as one all-or-nothing attempt (a transaction, a
//! Lance commit) may have it refused for one row's content: a NUL byte that
//! PostgreSQL text cannot hold, a NaN that pgvector will not store. The store
//! says which error, not which row. [`Bisect`] halves the epoch's documents
//! until each refused one stands alone: the others are written, and the refused
//! ones go to the dead-letter store with the store's reason, as Kafka Connect's
//! `errors.tolerance` and Flink's side outputs do. `k` bad documents among `n`
//! cost about `2k·log2(n)` attempts; an epoch with none costs one.
//!
//! ```
//! use sluice_connector_sdk::refuse::Bisect;
//! use sluice_connector_sdk::ConnectorError;
//!
//! // A store that refuses any write holding document "b".
//! let write = |docs: &[String]| {
//!     if docs.iter().any(|d| d == "b") {
//!         Err(ConnectorError::data("invalid byte sequence"))
//!     } else {
//!         Ok(())
//!     }
//! };
//! let mut bisect = Bisect::new(vec!["a".into(), "b".into(), "c".into()]);
//! let mut written = Vec::new();
//! while let Some(docs) = bisect.next_attempt() {
//!     match write(&docs) {
//!         Ok(()) => written.extend(docs),
//!         Err(e) => bisect.failed(docs, e).unwrap(),
//!     }
//! }
//! written.sort();
//! assert_eq!(written, ["a", "c"]);
//! assert_eq!(bisect.refused()[0].0, "b");
//! ```

use crate::{ConnectorError, Result};

/// The documents still to try, in halves, and those found refused.
#[derive(Debug)]
pub struct Bisect {
    todo: Vec<Vec<String>>,
    refused: Vec<(String, String)>,
}

impl Bisect {
    /// Start with one attempt holding every document.
    pub fn new(docs: Vec<String>) -> Self {
        Bisect {
            todo: if docs.is_empty() { Vec::new() } else { vec![docs] },
            refused: Vec::new(),
        }
    }

    /// The next set of documents to write in one attempt.
    pub fn next_attempt(&mut self) -> Option<Vec<String>> {
        self.todo.pop()
    }

    /// The attempt with `docs` failed with `e`. A data error splits the set (or,
    /// for a single document, refuses it); any other error is returned: the
    /// system failed, not a document, and the caller retries or stops.
    pub fn failed(&mut self, mut docs: Vec<String>, e: ConnectorError) -> Result<()> {
        if !e.is_data() {
            return Err(e);
        }
        if docs.len() <= 1 {
            // The whole chain: the store's own words are often a cause or two down.
            let mut reason = e.context.clone();
            let mut cause = e
                .source
                .as_deref()
                .map(|c| c as &(dyn std::error::Error + 'static));
            while let Some(c) = cause {
                let text = c.to_string();
                if !reason.contains(&text) {
                    reason.push_str(&format!(": {text}"));
                }
                cause = c.source();
            }
            self.refused.extend(docs.into_iter().map(|d| (d, reason.clone())));
            return Ok(());
        }
        let second = docs.split_off(docs.len() / 2);
        // Popped last-in first-out: the first half is tried first.
        self.todo.push(second);
        self.todo.push(docs);
        Ok(())
    }

    /// Every document refused on its own, with the store's reason.
    pub fn refused(&self) -> &[(String, String)] {
        &self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(docs: usize, bad: &[usize]) -> (Vec<String>, Vec<String>, usize) {
        let names: Vec<String> = (0..docs).map(|i| format!("d{i:04}")).collect();
        let bad: Vec<String> = bad.iter().map(|i| format!("d{i:04}")).collect();
        let mut b = Bisect::new(names);
        let (mut written, mut attempts) = (Vec::new(), 0);
        while let Some(set) = b.next_attempt() {
            attempts += 1;
            if set.iter().any(|d| bad.contains(d)) {
                b.failed(set, ConnectorError::data("refused")).unwrap();
            } else {
                written.extend(set);
            }
        }
        let refused = b.refused().iter().map(|(d, _)| d.clone()).collect();
        (written, refused, attempts)
    }

    #[test]
    fn every_good_document_is_written_once_and_only_the_bad_are_refused() {
        let (written, refused, attempts) = run(1000, &[3, 500, 999]);
        assert_eq!(written.len(), 997);
        let unique: std::collections::HashSet<_> = written.iter().collect();
        assert_eq!(unique.len(), 997);
        assert_eq!(refused, ["d0003", "d0500", "d0999"]);
        assert!(attempts <= 2 * 3 * 10 + 1, "{attempts} attempts");
        assert_eq!(run(1000, &[]).2, 1, "a clean epoch is one attempt");
    }

    #[test]
    fn a_system_error_is_not_bisected() {
        let mut b = Bisect::new(vec!["a".into(), "b".into()]);
        let set = b.next_attempt().unwrap();
        let e = b
            .failed(set, ConnectorError::external("connection reset"))
            .unwrap_err();
        assert!(e.retryable);
        assert!(b.next_attempt().is_none());
    }
}
