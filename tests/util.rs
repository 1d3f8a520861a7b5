//! A harness for driving the `sluice` binary from integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary folder holding a pipeline, its data and its state.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Workspace {
    pub fn new() -> Self {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write `content` to `rel`, creating folders.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Copy a fixture from `tests/fixtures/` to `rel`.
    pub fn fixture(&self, name: &str, rel: &str) -> PathBuf {
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        self.write(rel, bytes)
    }

    /// Run `sluice ARGS` in the workspace.
    pub fn sluice(&self, args: &[&str]) -> Output {
        sluice_in(self.dir.path(), args)
    }

    /// Run `sluice ARGS` and fail the test unless it exits 0.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.sluice(args);
        assert!(
            out.status.success(),
            "sluice {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `sluice sql --format json` and parse the rows.
    pub fn query(&self, pipeline: &str, sql: &str) -> Vec<serde_json::Value> {
        let out = self.ok(&["sql", "--pipeline", pipeline, "--format", "json", sql]);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("bad JSON from sluice sql: {e}\n{out}"))
    }

    /// A single integer from a query like `SELECT count(*) AS n FROM ...`.
    pub fn count(&self, pipeline: &str, sql: &str) -> u64 {
        let rows = self.query(pipeline, sql);
        let v = rows[0].as_object().unwrap().values().next().unwrap().clone();
        v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
    }
}

pub fn sluice_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .env_remove("SLUICE_DATA")
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .expect("run sluice")
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A pipeline over `./data` with parse → chunk (tapped) → parquet sink `out`.
pub fn basic_pipeline(extra_source: &str, checkpoint: &str) -> String {
    format!(
        r#"name: test
checkpoint:
  interval: {checkpoint}
source:
  type: files
  path: ./data
{extra_source}
stages:
  - name: parse
    type: parse
    tap: true
    pdf_timeout: 10s
  - name: chunks
    type: chunk
    tap: true
    max_tokens: 64
    overlap_tokens: 8
    strategy: markdown
sinks:
  - name: out
    type: parquet
    path: ./out
"#
    )
}

/// Start (or find) the test services with `scripts/services.sh up`: PostgreSQL with
/// pgvector and Redis on 127.0.0.1. Returns (postgres URL, redis URL).
pub fn services() -> (String, String) {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/services.sh"))
        .arg("up")
        .output()
        .expect("run scripts/services.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/services.sh up failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let get = |k: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} in {stdout}"))
            .to_string()
    };
    (get("SLUICE_TEST_PG_URL"), get("SLUICE_TEST_REDIS_URL"))
}

/// A name unique to this test process, for tables and key prefixes.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}
