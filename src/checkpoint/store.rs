//! The checkpoint file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_connector_sdk::Epoch;

use crate::{Error, Result};

/// The last epoch every participant made durable, and the source position after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub pipeline: String,
    pub epoch: Epoch,
    /// The source's snapshot at the barrier of `epoch`.
    pub source: serde_json::Value,
    /// RFC 3339 time of writing.
    pub written_at: String,
}

#[derive(Debug, Clone)]
pub struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CheckpointStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last checkpoint, if any.
    pub fn load(&self) -> Result<Option<Checkpoint>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Internal(format!("checkpoint {} is corrupt: {e}", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", self.path.display()), e)),
        }
    }

    /// The last checkpoint, if any, refusing one that another pipeline wrote
    /// (two pipelines pointed at one state folder would resume from each other).
    pub fn load_for(&self, pipeline: &str) -> Result<Option<Checkpoint>> {
        let checkpoint = self.load()?;
        match checkpoint {
            Some(c) if c.pipeline != pipeline => Err(Error::ForeignCheckpoint {
                path: self.path.clone(),
                expected: pipeline.to_string(),
                found: c.pipeline,
            }),
            other => Ok(other),
        }
    }

    /// Write atomically: a reader (or a restart after `kill -9`) sees the old
    /// checkpoint or the new one, never a torn file.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let io = |e| Error::io(format!("writing checkpoint {}", self.path.display()), e);
        std::fs::create_dir_all(dir).map_err(io)?;
        // Named for this writer, so no other process's temp file is ever touched.
        let tmp = self
            .path
            .with_extension(format!("json.{}.{}.tmp", std::process::id(), unique()));
        let bytes = serde_json::to_vec_pretty(checkpoint).map_err(|e| Error::Internal(e.to_string()))?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }
}

/// A number no other call in this process returns.
fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("state/checkpoint.json"));
        assert_eq!(store.load().unwrap(), None);
        let cp = Checkpoint {
            pipeline: "p".into(),
            epoch: 7,
            source: serde_json::json!({"versions": {"a": "1"}}),
            written_at: "2026-01-01T00:00:00Z".into(),
        };
        store.save(&cp).unwrap();
        assert_eq!(store.load().unwrap(), Some(cp));
        let left: Vec<_> = std::fs::read_dir(dir.path().join("state")).unwrap().collect();
        assert_eq!(left.len(), 1, "a temp file was left: {left:?}");
        assert!(matches!(
            store.load_for("other"),
            Err(Error::ForeignCheckpoint { found, .. }) if found == "p"
        ));
        assert_eq!(store.load_for("p").unwrap().map(|c| c.epoch), Some(7));
    }
}
