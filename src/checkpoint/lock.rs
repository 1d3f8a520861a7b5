//! One owner per state folder: an exclusive lock on `state_dir/sluice.lock`.
//!
//! Whatever writes a pipeline's state (a run, a backfill, `dlq replay`,
//! `index rebuild`, the daemon's supervisor) takes the lock first, so two
//! processes can never resume from one checkpoint or roll back each other's
//! epochs. The lock is an OS file lock (`flock`): the kernel drops it when its
//! holder exits, even by `kill -9`, so a crash leaves nothing to clean up. The
//! file holds who has it (pid, host, since when), for the error the next one gets.
//!
//! Within one process the lock is shared: taking it again for a folder this
//! process already holds returns the same guard (the daemon's supervisor and
//! the run it starts, `dlq replay` and the run it starts).

use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::{Error, Result};

/// The lock file's name inside a state folder.
/// A pipeline name cannot hold a `.`, so no pipeline folder under a daemon's
/// state root can take this name.
pub const LOCK_FILE: &str = "sluice.lock";

/// Holds a state folder until dropped (the last clone of it).
#[derive(Clone)]
pub struct StateLock(#[allow(dead_code)] Arc<Held>);

struct Held {
    key: PathBuf,
    _file: std::fs::File,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut held) = registry().lock() {
            if held.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
                held.remove(&self.key);
            }
        }
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<Held>>> {
    static HELD: OnceLock<Mutex<HashMap<PathBuf, Weak<Held>>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
}

impl std::fmt::Debug for StateLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StateLock").field(&self.0.key).finish()
    }
}

impl StateLock {
    /// Take the lock of `state_dir` (created if missing), or fail at once with
    /// [`Error::StateInUse`] naming the holder.
    pub fn acquire(state_dir: &Path) -> Result<StateLock> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| Error::io(format!("creating {}", state_dir.display()), e))?;
        let key = std::fs::canonicalize(state_dir)
            .map_err(|e| Error::io(format!("resolving {}", state_dir.display()), e))?;
        let mut held = registry()
            .lock()
            .map_err(|_| Error::Internal("state lock registry poisoned".into()))?;
        if let Some(h) = held.get(&key).and_then(Weak::upgrade) {
            return Ok(StateLock(h));
        }
        let path = key.join(LOCK_FILE);
        let io = |e| Error::io(format!("locking {}", path.display()), e);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // This process may be closing its own previous guard of the folder (a
        // pipeline restarted by the daemon): wait for that, briefly.
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.rewind().and_then(|_| file.read_to_string(&mut holder));
                    let mine = holder.contains(&format!("\"pid\":{},", std::process::id()));
                    if mine && tries < 100 {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        continue;
                    }
                    return Err(Error::StateInUse {
                        state_dir: key,
                        holder: describe(&holder),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        let me = serde_json::json!({
            "pid": std::process::id(),
            "host": hostname(),
            "since": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "command": std::env::args().take(3).collect::<Vec<_>>().join(" "),
        });
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(me.to_string().as_bytes()).map_err(io)?;
        let h = Arc::new(Held {
            key: key.clone(),
            _file: file,
        });
        held.insert(key, Arc::downgrade(&h));
        Ok(StateLock(h))
    }
}

/// "pid 4242 on host build-1 since 2026-12-02T10:00:00Z (sluice run p.yaml)"
fn describe(holder: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(holder) else {
        return "another process".into();
    };
    let field = |k: &str| {
        v.get(k)
            .map(|x| x.as_str().map(str::to_string).unwrap_or(x.to_string()))
    };
    let mut s = format!(
        "pid {} on host {} since {}",
        field("pid").unwrap_or_else(|| "?".into()),
        field("host").unwrap_or_else(|| "?".into()),
        field("since").unwrap_or_else(|| "?".into())
    );
    if let Some(c) = field("command").filter(|c| !c.is_empty()) {
        s.push_str(&format!(" ({c})"));
    }
    s
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_file_cannot_take_a_held_lock_and_sees_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let lock = StateLock::acquire(dir.path()).unwrap();
        // The same process shares its guard.
        let again = StateLock::acquire(dir.path()).unwrap();
        drop(again);
        // Another open file description (as another process has) is refused.
        let other = std::fs::File::open(dir.path().join(LOCK_FILE)).unwrap();
        assert!(matches!(other.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        let described = describe(&text);
        assert!(
            described.starts_with(&format!("pid {} on host ", std::process::id())),
            "{described}"
        );
        drop(lock);
        // Released with the last guard.
        other.try_lock().unwrap();
    }
}
