//! A harness for driving the `sluice` binary from integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

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

    /// Start `sluice ARGS` in the workspace, in the background (stdout dropped,
    /// stderr to `stderr`).
    pub fn spawn(&self, args: &[&str], stderr: Stdio) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start sluice")
    }

    /// Wait until `rel` exists (a checkpoint, say), failing the test after `secs`.
    pub fn wait_for_file(&self, rel: &str, secs: u64) {
        let started = std::time::Instant::now();
        while !self.path(rel).exists() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(secs),
                "{rel} did not appear within {secs} s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
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

/// Run `cmd` to the end; fail the test, with its output, unless it succeeds.
/// Its standard output, trimmed.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures")
}

/// The checkout under test: cargo and nextest say where at run time (the
/// build folder is shared between clones, so the path compiled in may be
/// another clone's).
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
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
    timeout: 10s
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

/// Where the test services listen.
pub struct Services {
    pub pg: String,
    pub redis: String,
    /// The S3 server's endpoint, `http://127.0.0.1:PORT`.
    pub s3: String,
    /// The Kafka broker, `127.0.0.1:PORT`.
    pub kafka: String,
}

/// Start (or find) the test services with `scripts/services.sh up`: PostgreSQL with
/// pgvector, Redis and an S3 server (moto) on 127.0.0.1.
pub fn services() -> Services {
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
    parse_services(&stdout)
}

/// The `KEY=value` lines `scripts/services.sh up` prints.
fn parse_services(stdout: &str) -> Services {
    let get = |k: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} in {stdout}"))
            .to_string()
    };
    Services {
        pg: get("SLUICE_TEST_PG_URL"),
        redis: get("SLUICE_TEST_REDIS_URL"),
        s3: get("SLUICE_TEST_S3_ENDPOINT"),
        kafka: get("SLUICE_TEST_KAFKA_BROKERS"),
    }
}

/// A name unique to this test process, for tables and key prefixes.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// Create `bucket` on the S3 server at `endpoint` (through boto3).
pub fn create_bucket(endpoint: &str, bucket: &str) {
    let script = format!(
        "import boto3; boto3.client('s3', endpoint_url='{endpoint}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1').create_bucket(Bucket='{bucket}')"
    );
    let out = Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "creating bucket {bucket}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private set of services (PostgreSQL, Redis, S3) on their own folder and
/// ports, for tests that stop them; shut down when dropped, passed or failed.
pub struct PrivateServices {
    pub dir: PathBuf,
    /// PostgreSQL's port first; Redis has the next one, then S3, then Kafka.
    ports: Ports,
    pg_opts: String,
    pub env: Services,
}

impl PrivateServices {
    /// Start them; `pg_opts` are extra PostgreSQL server options.
    pub fn start(pg_opts: &str) -> PrivateServices {
        let mut s = PrivateServices {
            dir: PathBuf::from(format!("/tmp/{}", unique("private"))),
            ports: ports(4),
            pg_opts: pg_opts.to_string(),
            env: Services {
                pg: String::new(),
                redis: String::new(),
                s3: String::new(),
                kafka: String::new(),
            },
        };
        let stdout = s.script(&["up"]);
        s.env = parse_services(&stdout);
        s
    }

    /// `scripts/services.sh ARGS` on this set; its stdout.
    pub fn script(&self, args: &[&str]) -> String {
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/services.sh"))
            .args(args)
            .env("SLUICE_SERVICES_DIR", &self.dir)
            .env("SLUICE_PG_PORT", self.ports.first.to_string())
            .env("SLUICE_REDIS_PORT", (self.ports.first + 1).to_string())
            .env("SLUICE_S3_PORT", (self.ports.first + 2).to_string())
            .env("SLUICE_KAFKA_PORT", (self.ports.first + 3).to_string())
            .env("SLUICE_PG_OPTS", &self.pg_opts)
            // A restarted Redis keeps its data, as a production one would.
            .env("SLUICE_REDIS_OPTS", "--appendonly yes --appendfsync always")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "services.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stop one service: `pg`, `redis` or `s3`.
    pub fn stop(&self, name: &str) {
        self.script(&["stop", name]);
    }

    /// Start a stopped service again.
    pub fn resume(&self, name: &str) {
        self.script(&["start", name]);
    }
}

impl Drop for PrivateServices {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/services.sh"))
            .arg("down")
            .env("SLUICE_SERVICES_DIR", &self.dir)
            .status();
    }
}

/// `n` consecutive ports held for one test: below the kernel's ephemeral range
/// (32768 up), so no outgoing connection can take one while its service is
/// stopped, and claimed through a lock file, so no other test process picks
/// them. Binding port 0 instead once handed out a port that some connection
/// then held when Redis came to listen on it ("Address already in use").
pub struct Ports {
    pub first: u16,
    _claim: std::fs::File,
}

/// The lowest port [`ports`] hands out; blocks run from here up to 32768.
const PORTS_FROM: u16 = 20_000;

/// Claim `n` consecutive free ports (see [`Ports`]).
pub fn ports(n: u16) -> Ports {
    assert!((1..=16).contains(&n), "ports({n})");
    let dir = std::env::temp_dir().join("sluice-test-ports");
    std::fs::create_dir_all(&dir).unwrap();
    let blocks = u64::from((32_768 - PORTS_FROM) / n);
    let seed = u64::from(std::process::id()) << 32
        ^ u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        );
    for i in 0..blocks {
        let block = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40).wrapping_add(i) % blocks;
        let first = PORTS_FROM + n * block as u16;
        let claim = std::fs::File::create(dir.join(first.to_string())).unwrap();
        if claim.try_lock().is_err() {
            continue;
        }
        let free = (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", first + i)).is_ok());
        if free {
            return Ports { first, _claim: claim };
        }
    }
    panic!("no {n} consecutive free ports between {PORTS_FROM} and 32767");
}

/// A valid one-page PDF whose content stream holds `ops` text operations: slow for
/// pdf-extract in proportion to `ops`, so a short parse `timeout` always trips on it.
pub fn slow_pdf(ops: usize) -> Vec<u8> {
    let mut stream = String::new();
    for i in 0..ops {
        stream.push_str(&format!("BT /F1 9 Tf 40 {} Td (word {i}) Tj ET\n", 40 + i % 700));
    }
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>".to_string(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_string(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for o in offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// LanceDB's storage options for the test S3 server at `endpoint`.
pub fn s3_options(endpoint: &str) -> Vec<(String, String)> {
    [
        ("aws_endpoint", endpoint),
        ("allow_http", "true"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A LanceDB sink block `vectors` (table `chunks`) at `uri` with `options`.
pub fn lance_sink_yaml(uri: &str, options: &[(String, String)]) -> String {
    let yaml: Vec<String> = options.iter().map(|(k, v)| format!("{k}: '{v}'")).collect();
    format!(
        "{{name: vectors, type: lancedb, uri: '{uri}', table: chunks, storage_options: {{{}}}}}",
        yaml.join(", ")
    )
}

/// Apply `ops` (see tests/python/s3_objects.py) to `bucket`.
pub fn s3_objects(endpoint: &str, bucket: &str, ops: serde_json::Value) {
    let script = repo_root().join("tests/python/s3_objects.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args([endpoint, bucket])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ops.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "s3_objects.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tests/python/kafka_tool.py BROKERS ARGS`, with `stdin`; its stdout.
pub fn kafka_tool(brokers: &str, args: &[&str], stdin: &str) -> String {
    let script = repo_root().join("tests/python/kafka_tool.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(brokers)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kafka_tool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn produce(brokers: &str, topic: &str, messages: &[Value]) {
    let lines: Vec<String> = messages.iter().map(Value::to_string).collect();
    kafka_tool(brokers, &["produce", topic], &lines.join("\n"));
}

pub fn consume(brokers: &str, topic: &str) -> Vec<Value> {
    kafka_tool(brokers, &["consume", topic], "")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The offsets `group` has committed on `topic`, by partition.
pub fn committed(brokers: &str, group: &str, topic: &str) -> Vec<i64> {
    let out: Value = serde_json::from_str(&kafka_tool(brokers, &["committed", group, topic], "")).unwrap();
    let mut parts: Vec<(i64, i64)> = out
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, o)| (p.parse().unwrap(), o.as_i64().unwrap()))
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, o)| o).collect()
}

/// Feast's `get_online_features` over the repo a feature-store sink wrote, for
/// `rows` (a JSON list of entity rows): one JSON object per row, its keys and
/// `features` of `view` (null where Feast finds nothing).
pub fn feast_online(repo: &Path, view: &str, rows: &Value, features: &[&str]) -> Vec<Value> {
    let out = Command::new("python3")
        .arg(repo_root().join("tests/python/feast_online.py"))
        .arg(repo)
        .arg(view)
        .arg(rows.to_string())
        .args(features)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "feast: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

/// Feast's online `chunk_count` in `view` for each of `doc_ids`, by doc_id
/// (null where Feast finds none).
pub fn feast_chunk_counts(
    repo: &Path,
    view: &str,
    doc_ids: &[String],
) -> std::collections::BTreeMap<String, Value> {
    let rows: Vec<Value> = doc_ids
        .iter()
        .map(|d| serde_json::json!({ "doc_id": d }))
        .collect();
    (feast_online(repo, view, &rows.into(), &["chunk_count"]).into_iter())
        .map(|r| {
            (
                r["doc_id"].as_str().unwrap().to_string(),
                r["chunk_count"].clone(),
            )
        })
        .collect()
}

/// Every file under `dir`, recursively; none if it does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// LanceDB table `table` of the database at `uri` (`<uri>/<table>.lance`),
/// opened with the Lance format's own reader.
pub async fn lance_open(uri: &str, table: &str, options: &[(String, String)]) -> lance::Dataset {
    lance::dataset::builder::DatasetBuilder::from_uri(format!("{uri}/{table}.lance"))
        .with_storage_options(options.iter().cloned().collect())
        .load()
        .await
        .unwrap_or_else(|e| panic!("LanceDB table `{table}` at {uri}: {e}"))
}

/// The `columns` of every row of LanceDB table `table` at `uri`.
pub async fn lance_select(
    uri: &str,
    options: &[(String, String)],
    table: &str,
    columns: &[&str],
) -> Vec<arrow::record_batch::RecordBatch> {
    use futures::TryStreamExt;
    let t = lance_open(uri, table, options).await;
    let mut scan = t.scan();
    scan.project(columns).unwrap();
    scan.try_into_stream().await.unwrap().try_collect().await.unwrap()
}
