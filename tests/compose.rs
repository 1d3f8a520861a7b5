//! `docker/compose.yaml` started for real with podman-compose: the daemon
//! image this test builds (see [`crate::docker::build_image`]) and stand-ins
//! for the public service images (`tests/compose/`), all on the local bookworm
//! base. A pipeline mounted into the daemon writes to PostgreSQL, to LanceDB
//! on the S3 server and to Redis by the services' compose names, and each
//! store is read back.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::docker::{base_image, build_image, container, Api, LIMITS};
use crate::util;
use crate::util::ok;

/// The stand-in services' image, built once per content of `tests/compose/`
/// and the tansu binary, and kept (a later run reuses it); the stand-ins of
/// other contents are removed.
fn standin_image(root: &Path, base: &str) -> String {
    let dir = root.join("tests/compose");
    let tansu = tansu_binary();
    let mut hash = blake3::Hasher::new();
    for f in ["services.Containerfile", "standin.sh", "requirements.txt"] {
        hash.update(&std::fs::read(dir.join(f)).unwrap());
    }
    hash.update(&std::fs::read(&tansu).unwrap());
    let tag = format!(
        "localhost/sluice-compose-standins:{}",
        &hash.finalize().to_hex()[..16]
    );
    let exists = container("podman")
        .args(["image", "exists", &tag])
        .status()
        .unwrap();
    if !exists.success() {
        build_standins(&dir, &tansu, base, &tag);
    }
    prune_standins(&tag);
    tag
}

fn build_standins(dir: &Path, tansu: &Path, base: &str, tag: &str) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("standin.sh"), ctx.path().join("standin.sh")).unwrap();
    // Downloaded and checked against their pinned sha256 here, installed from
    // the folder alone in the image (see services.Containerfile).
    ok(Command::new("python3")
        .args([
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--require-hashes",
            "--no-deps",
            "-r",
        ])
        .arg(dir.join("requirements.txt"))
        .arg("-w")
        .arg(ctx.path().join("wheels")));
    // Without its debug information (474 MB of a debug build): the image
    // stays small, and vfs storage, where the tests fall back to it, copies
    // the whole image for every container.
    ok(Command::new("strip")
        .arg("--strip-debug")
        .arg(tansu)
        .arg("-o")
        .arg(ctx.path().join("tansu")));
    ok(container("buildah")
        .args(["bud", "--format", "docker", "--isolation", "chroot"])
        .args(LIMITS)
        .args(["--build-arg", &format!("BASE_IMAGE={base}"), "-t", tag, "-f"])
        .arg(dir.join("services.Containerfile"))
        .arg(ctx.path()));
}

/// Every stand-in image's tag in the store.
fn standin_tags() -> Vec<String> {
    ok(container("podman").args([
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "localhost/sluice-compose-standins",
    ]))
    .lines()
    .map(str::to_string)
    .collect()
}

/// Removes the stand-in images of earlier contents (640 MB each): only
/// `keep`, this content's, is used again.
fn prune_standins(keep: &str) {
    for old in standin_tags().iter().filter(|t| *t != keep) {
        let _ = container("podman").args(["rmi", old]).output();
    }
}

/// The broker `scripts/services.sh` built (the suite's services are up).
fn tansu_binary() -> PathBuf {
    let _ = util::services();
    let tools = std::env::var_os("SLUICE_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/sluice-tools"));
    tools.join("bin/tansu")
}

/// Makes the pipeline's bucket, once moto's S3 server answers.
const BUCKET: &str = "import boto3, time
s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:5000', aws_access_key_id='test',
                  aws_secret_access_key='test', region_name='us-east-1')
for _ in range(100):
    try:
        s3.create_bucket(Bucket='compose')
        break
    except Exception:
        time.sleep(0.2)
else:
    raise SystemExit('the S3 stand-in never answered')
";

/// A compose project, taken down with its volumes however the test ends.
struct Project {
    name: String,
    env: Vec<(String, String)>,
}

impl Project {
    fn compose(&self, args: &[&str]) -> Command {
        let root = util::repo_root();
        let mut cmd = Command::new("podman-compose");
        // podman's global options, as [`container`] passes them.
        let podman = container("podman");
        let global: Vec<&str> = podman.get_args().filter_map(|a| a.to_str()).collect();
        cmd.args(["--podman-args", &global.join(" ")])
            .args(["--podman-run-args", &LIMITS.join(" ")])
            .args(["-p", &self.name, "-f"])
            .arg(root.join("docker/compose.yaml"))
            .arg("-f")
            .arg(root.join("tests/compose/standins.yaml"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// `up -d` for `services`, each then seen running: podman-compose 1.0.3
    /// exits 0 even when podman could not start a container.
    fn up(&self, services: &[&str]) {
        let mut args = vec!["up", "-d"];
        args.extend(services);
        let out = ok(&mut self.compose(&args));
        for service in services {
            let state = container("podman")
                .args([
                    "inspect",
                    "--format",
                    "{{.State.Status}}",
                    &self.container(service),
                ])
                .output()
                .unwrap();
            let state = String::from_utf8_lossy(&state.stdout);
            assert_eq!(state.trim(), "running", "{service} is not running:\n{out}");
        }
    }

    /// The four services, each running, the bucket made and PostgreSQL
    /// accepting connections: the daemon starts its pipeline at once.
    fn start_services(&self) {
        // The services first: the bucket the pipeline writes to must exist
        // before the daemon starts it.
        self.up(&["postgres", "redis", "s3", "kafka"]);
        self.exec("s3", &["/opt/venv/bin/python", "-c", BUCKET]);
        // podman-compose 1.0.3 does not wait for `service_healthy`: the test does.
        self.exec(
            "postgres",
            &[
                "sh",
                "-c",
                "for i in $(seq 100); do pg_isready -U postgres -q && exit 0; sleep 0.2; done; exit 1",
            ],
        );
    }

    /// The container of `service`, as podman-compose names it.
    fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.name)
    }

    fn exec(&self, service: &str, args: &[&str]) -> String {
        ok(container("podman")
            .arg("exec")
            .arg(self.container(service))
            .args(args))
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v"]).output();
        // podman-compose 1.0.3 leaves the project's network behind, and each
        // holds one of CNI's 10.89.x.0/24 subnets.
        let network = format!("{}_default", self.name);
        let _ = container("podman")
            .args(["network", "rm", "-f", &network])
            .output();
    }
}

const PIPELINE: &str = r#"name: compose
source: {type: files, path: /etc/sluice/pipelines/data}
stages:
  - {name: parse, type: parse}
  - {name: chunks, type: chunk, max_tokens: 128}
  - {name: embed, type: embed, model: "${SLUICE_MODEL}"}
sinks:
  - {name: pg, type: pgvector, url: "${SLUICE_PG_URL}", table: compose_chunks}
  - name: lance
    type: lancedb
    uri: s3://compose/lancedb
    table: chunks
    storage_options: {aws_endpoint: "${SLUICE_S3_ENDPOINT}", allow_http: "true"}
  - name: features
    type: feature_store
    query: >
      SELECT doc_id, op, count(*) AS chunk_count, max(modified_at) AS event_timestamp
      FROM input GROUP BY doc_id, op
    entity: [doc_id]
    offline: /var/lib/sluice/features
    online: {url: "${SLUICE_REDIS_URL}"}
"#;

/// Builds both images (cached by content), so a first run on a machine
/// takes minutes; later runs start the stack and run the pipeline only.
#[test]
fn compose_starts_the_daemon_and_its_services_and_a_pipeline_writes_to_each_by_name() {
    let root = util::repo_root();
    let base = base_image();
    let started = std::time::Instant::now();
    let built = build_image(&root, &base);
    let standins = standin_image(&root, &base);
    eprintln!("images built in {:.0?}", started.elapsed());
    assert_eq!(
        standin_tags(),
        std::slice::from_ref(&standins),
        "earlier stand-ins left behind"
    );

    let ws = tempfile::tempdir().unwrap();
    let pipelines = ws.path().join("pipelines");
    std::fs::create_dir_all(&pipelines).unwrap();
    ok(Command::new("cp")
        .arg("-r")
        .arg(root.join("pipelines/data"))
        .arg(&pipelines));
    std::fs::write(pipelines.join("compose.yaml"), PIPELINE).unwrap();
    let ports = util::ports(1);
    let port = ports.first;
    let token = "compose-test-token";
    let project = Project {
        name: util::unique("compose").replace('-', "_"),
        env: vec![
            ("SLUICE_API_TOKEN".into(), token.into()),
            ("SLUICE_PORT".into(), port.to_string()),
            ("SLUICE_PIPELINES".into(), pipelines.display().to_string()),
            ("SLUICE_IMAGE".into(), built.tag.clone()),
            ("SLUICE_STANDIN_IMAGE".into(), standins),
        ],
    };
    project.start_services();
    project.up(&["sluice"]);

    let api = Api::new(port, token);
    let logs = || {
        let out = container("podman")
            .args(["logs", &project.container("sluice")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout)
    };
    let pipeline = api.finished("compose", std::time::Duration::from_secs(180), logs);
    let files = util::files_under(&root.join("pipelines/data")).len() as u64;
    read_back(&project, &api, &pipeline, files);
    let network = format!("{}_default", project.name);
    drop(project);
    let left = container("podman")
        .args(["network", "exists", &network])
        .status()
        .unwrap();
    assert!(!left.success(), "network {network} left behind");
    drop(built);
}

/// Each store holds the pipeline's output, read with its own client.
fn read_back(project: &Project, api: &Api, pipeline: &serde_json::Value, files: u64) {
    let dead = pipeline["dead_letters"].as_u64().unwrap_or(0);
    // PostgreSQL and LanceDB on S3, through the daemon's SQL API (each
    // sink's own client), hold the same chunks of every document.
    let count = |table: &str| {
        let rows = api.sql(
            "compose",
            &format!("SELECT count(DISTINCT doc_id) AS docs, count(*) AS chunks FROM {table}"),
        );
        (
            rows[0]["docs"].as_u64().unwrap(),
            rows[0]["chunks"].as_u64().unwrap(),
        )
    };
    let (pg_docs, pg_chunks) = count("pg");
    assert_eq!(pg_docs + dead, files, "{pipeline}");
    assert_eq!(count("lance"), (pg_docs, pg_chunks), "{pipeline}");
    // ... and PostgreSQL's own client agrees.
    let psql = project.exec(
        "postgres",
        &[
            "sh",
            "-c",
            "PGPASSWORD=sluice \"$(dirname \"$(readlink -f /usr/local/bin/pg_isready)\")/psql\" \
             -h 127.0.0.1 -U postgres -At -c 'SELECT count(*) FROM compose_chunks'",
        ],
    );
    assert_eq!(psql.trim(), pg_chunks.to_string());
    // The S3 stand-in holds the LanceDB table's files.
    let listed = project.exec(
        "s3",
        &[
            "/opt/venv/bin/python",
            "-c",
            "import boto3; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:5000', \
             aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1'); \
             print(s3.list_objects_v2(Bucket='compose', Prefix='lancedb/')['KeyCount'])",
        ],
    );
    assert!(listed.trim().parse::<u64>().unwrap() > 0, "{listed}");
    // Redis: one online entry per document, read with its own client.
    let count = "local n = 0 for _, k in ipairs(redis.call('KEYS', '*')) do \
                 if string.sub(k, 1, 9) ~= '__sluice:' then n = n + 1 end end return n";
    let keys = project.exec("redis", &["redis-cli", "eval", count, "0"]);
    assert_eq!(keys.trim(), pg_docs.to_string(), "{pipeline}");
    eprintln!(
        "compose: {pg_docs} documents, {pg_chunks} chunks in PostgreSQL and LanceDB, \
         {} S3 objects, {} Redis entries, {dead} dead letters",
        listed.trim(),
        keys.trim()
    );
}
