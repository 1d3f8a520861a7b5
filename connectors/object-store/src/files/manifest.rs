//! The manifest: which version of each document has been emitted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// doc_id → version of every document emitted and not deleted since. Stored in the
/// checkpoint; a re-run compares a fresh listing with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub versions: BTreeMap<String, String>,
}

/// What a listing changes against the manifest.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff<T> {
    /// New or changed entries, in listing order.
    pub upserts: Vec<T>,
    /// doc_id and last version of entries that vanished.
    pub deletes: Vec<(String, String)>,
}

impl Manifest {
    /// Compare a listing of (doc_id, version, item) with the manifest.
    pub fn diff<T>(&self, listing: Vec<(String, String, T)>) -> Diff<T> {
        let mut seen = std::collections::HashSet::with_capacity(listing.len());
        let mut upserts = Vec::new();
        for (doc_id, version, item) in listing {
            if self.versions.get(&doc_id) != Some(&version) {
                upserts.push(item);
            }
            seen.insert(doc_id);
        }
        let deletes = self
            .versions
            .iter()
            .filter(|(id, _)| !seen.contains(*id))
            .map(|(id, v)| (id.clone(), v.clone()))
            .collect();
        Diff { upserts, deletes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_finds_new_changed_and_deleted() {
        let mut m = Manifest::default();
        m.versions.insert("a".into(), "1".into());
        m.versions.insert("b".into(), "1".into());
        m.versions.insert("c".into(), "1".into());
        let listing = vec![
            ("a".to_string(), "1".to_string(), "a"),
            ("b".to_string(), "2".to_string(), "b"),
            ("d".to_string(), "1".to_string(), "d"),
        ];
        let d = m.diff(listing);
        assert_eq!(d.upserts, vec!["b", "d"]);
        assert_eq!(d.deletes, vec![("c".to_string(), "1".to_string())]);
    }
}
