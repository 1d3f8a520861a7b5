//! The embedding cache: (model fingerprint, blake3 of the chunk text) → vector.
//!
//! One append-only file per model fingerprint, `state_dir/cache/embed/<fp>.bin`,
//! of fixed-size records: `[key: 32][check: 8][vector: dim × f32 LE]`. The index
//! (key → record number) lives in memory; vectors are read back with positional
//! reads, so memory grows by 40 bytes per cached chunk, not by the vector.
//!
//! Invariants: a record is used only if its check (blake3 of the vector bytes)
//! matches, so a torn or garbled tail is a miss, never a wrong vector. A short tail
//! left by a crash is cut off when the file is opened. The cache is an
//! optimisation: losing it costs inference, never correctness.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub type Key = [u8; 32];

/// The cache key of one chunk text.
pub fn key(text: &str) -> Key {
    *blake3::hash(text.as_bytes()).as_bytes()
}

pub struct EmbedCache {
    path: PathBuf,
    file: File,
    writer: BufWriter<File>,
    dim: usize,
    index: HashMap<Key, u64>,
    records: u64,
    /// Records already in the file (the rest are in `writer`'s buffer).
    flushed: u64,
}

impl EmbedCache {
    fn record_len(dim: usize) -> u64 {
        32 + 8 + 4 * dim as u64
    }

    /// Open (or create) the cache of model `fingerprint` under `dir`.
    pub fn open(dir: &Path, fingerprint: &str, dim: usize) -> std::io::Result<EmbedCache> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{fingerprint}-{dim}.bin"));
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let len = file.metadata()?.len();
        let rec = Self::record_len(dim);
        if len % rec != 0 {
            tracing::warn!(
                "embedding cache {}: dropping a torn last record ({} bytes)",
                path.display(),
                len % rec
            );
            file.set_len(len - len % rec)?;
        }
        let records = len / rec;
        let mut index = HashMap::with_capacity(records as usize);
        let mut key = [0u8; 32];
        for r in 0..records {
            file.read_exact_at(&mut key, r * rec)?;
            index.insert(key, r);
        }
        let writer = BufWriter::with_capacity(1 << 20, file.try_clone()?);
        Ok(EmbedCache {
            path,
            file,
            writer,
            dim,
            index,
            records,
            flushed: records,
        })
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The cached vector of `key`, if there is a sound one.
    pub fn get(&mut self, key: &Key) -> Option<Vec<f32>> {
        let &r = self.index.get(key)?;
        if r >= self.flushed {
            self.flush().ok()?;
        }
        let mut buf = vec![0u8; Self::record_len(self.dim) as usize];
        self.file
            .read_exact_at(&mut buf, r * Self::record_len(self.dim))
            .ok()?;
        let (head, body) = buf.split_at(40);
        if &head[..32] != key || head[32..40] != blake3::hash(body).as_bytes()[..8] {
            tracing::warn!(
                "embedding cache {}: record {r} is damaged; recomputing",
                self.path.display()
            );
            self.index.remove(key);
            return None;
        }
        Some(
            body.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        )
    }

    pub fn put(&mut self, key: Key, vector: &[f32]) -> std::io::Result<()> {
        if vector.len() != self.dim || self.index.contains_key(&key) {
            return Ok(());
        }
        let body: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.writer.write_all(&key)?;
        self.writer.write_all(&blake3::hash(&body).as_bytes()[..8])?;
        self.writer.write_all(&body)?;
        self.index.insert(key, self.records);
        self.records += 1;
        Ok(())
    }

    /// Write buffered records to the file (at barriers; no fsync: a lost tail only
    /// costs recomputation).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()?;
        self.flushed = self.records;
        Ok(())
    }
}

impl Drop for EmbedCache {
    fn drop(&mut self) {
        let _ = self.writer.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_survive_a_reopen_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EmbedCache::open(dir.path(), "fp", 3).unwrap();
        c.put(key("a"), &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(
            c.get(&key("a")),
            Some(vec![1.0, 2.0, 3.0]),
            "read from the write buffer"
        );
        c.put(key("b"), &[4.0, 5.0, 6.0]).unwrap();
        drop(c);
        let path = dir.path().join("fp-3.bin");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[7u8; 10]).unwrap();
        let mut c = EmbedCache::open(dir.path(), "fp", 3).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key("b")), Some(vec![4.0, 5.0, 6.0]));
        assert_eq!(c.get(&key("c")), None);
    }

    #[test]
    fn a_damaged_record_is_a_miss_not_a_wrong_vector() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EmbedCache::open(dir.path(), "fp", 2).unwrap();
        c.put(key("a"), &[1.0, 2.0]).unwrap();
        drop(c);
        let path = dir.path().join("fp-2.bin");
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&9f32.to_le_bytes(), 40).unwrap();
        let mut c = EmbedCache::open(dir.path(), "fp", 2).unwrap();
        assert_eq!(c.get(&key("a")), None);
    }
}
