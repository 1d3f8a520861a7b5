//! A generated corpus whose documents change, vanish and appear between runs.

use std::collections::BTreeMap;

use crate::util::Workspace;

/// A small deterministic generator, so a failing seed can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The seed from `var`, or `default`; printed so a failure can be replayed.
pub fn seed(var: &str, default: u64) -> Rng {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    eprintln!("seed: {seed} (set {var} to replay)");
    Rng(seed)
}

/// Document number → version; a missing number is a deleted (or never made) document.
pub struct Corpus {
    pub versions: BTreeMap<usize, u32>,
    next: usize,
}

pub fn name(doc: usize) -> String {
    format!("doc{doc:05}.md")
}

/// Paragraph `p` of document `doc` at `version`: about 30 tokens, so each is a
/// chunk of its own. Only the last paragraph changes with the version, so a
/// changed document keeps most of its chunks (and their embeddings in the cache).
fn paragraph(doc: usize, p: usize, version: u32, last: bool) -> String {
    let v = if last { version } else { 0 };
    format!(
        "Paragraph {p} of document {doc}, revision {v}, explains topic {} with care: epochs, barriers and sinks keep every row exactly once.",
        doc * 7 + p
    )
}

pub fn text(doc: usize, version: u32) -> String {
    let paragraphs = 1 + doc % 3;
    let mut out = format!("# Document {doc}\n\n");
    for p in 0..paragraphs {
        out.push_str(&paragraph(doc, p, version, p + 1 == paragraphs));
        out.push_str("\n\n");
    }
    out
}

impl Corpus {
    pub fn new(docs: usize) -> Corpus {
        Corpus {
            versions: (0..docs).map(|d| (d, 0)).collect(),
            next: docs,
        }
    }

    pub fn write_all(&self, ws: &Workspace) {
        for (&d, &v) in &self.versions {
            ws.write(&format!("data/{}", name(d)), text(d, v));
        }
    }

    /// Change, delete and add `n` documents each, on disk too. Returns the changed,
    /// deleted and added document numbers.
    pub fn mutate(&mut self, ws: &Workspace, rng: &mut Rng, n: usize) -> [Vec<usize>; 3] {
        let mut picked = Vec::new();
        let live: Vec<usize> = self.versions.keys().copied().collect();
        while picked.len() < 2 * n && picked.len() < live.len() {
            let d = live[rng.below(live.len() as u64) as usize];
            if !picked.contains(&d) {
                picked.push(d);
            }
        }
        let (changed, deleted) = picked.split_at(n.min(picked.len()));
        // Modification times have a resolution: make the new version's visible.
        std::thread::sleep(std::time::Duration::from_millis(20));
        for &d in changed {
            let v = self.versions[&d] + 1;
            self.versions.insert(d, v);
            ws.write(&format!("data/{}", name(d)), text(d, v));
        }
        for &d in deleted {
            self.versions.remove(&d);
            std::fs::remove_file(ws.path(&format!("data/{}", name(d)))).unwrap();
        }
        let added: Vec<usize> = (self.next..self.next + n).collect();
        self.next += n;
        for &d in &added {
            self.versions.insert(d, 0);
            ws.write(&format!("data/{}", name(d)), text(d, 0));
        }
        [changed.to_vec(), deleted.to_vec(), added]
    }
}
