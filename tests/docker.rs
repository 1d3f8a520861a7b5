//! `docker/`: the Dockerfile's instructions and the compose file parse, every
//! path they name exists, the image runs as non-root with a health check on
//! `/healthz`, and its entrypoint is a command line sluice's own parser accepts;
//! and the image itself is built (buildah) and run (podman) with the daemon
//! ingesting a mounted pipeline, see [`the_image_builds_and_its_daemon_ingests_a_mounted_pipeline`].

use crate::util;
use crate::util::ok;

use clap::Parser;
use sluice::cli::{Cli, Command};
use yaml_rust2::{Yaml, YamlLoader};

/// Instructions with their arguments, continuation lines joined, comments dropped.
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                let (op, args) = current.trim().split_once(' ').unwrap_or((current.trim(), ""));
                out.push((op.to_uppercase(), args.trim().to_string()));
                current.clear();
            }
        }
    }
    assert!(current.is_empty(), "the Dockerfile ends inside a continuation");
    out
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_with_a_health_check_and_real_paths() {
    let root = util::repo_root();
    let text = std::fs::read_to_string(root.join("docker/Dockerfile")).unwrap();
    let ins = instructions(&text);
    let known = [
        "FROM",
        "RUN",
        "COPY",
        "WORKDIR",
        "ENV",
        "USER",
        "EXPOSE",
        "HEALTHCHECK",
        "ENTRYPOINT",
        "ARG",
        "CMD",
    ];
    for (op, _) in &ins {
        assert!(known.contains(&op.as_str()), "unknown instruction {op}");
    }
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let stage = froms[0].rsplit(' ').next().unwrap();
    // Build-context paths exist; paths copied from the build stage come from
    // the repository or from scripts/fetch_models.py.
    let fetch = std::fs::read_to_string(root.join("scripts/fetch_models.py")).unwrap();
    for (op, args) in &ins {
        if op != "COPY" {
            continue;
        }
        let parts: Vec<&str> = args.split_whitespace().collect();
        let (flags, paths): (Vec<&str>, Vec<&str>) = parts.iter().partition(|p| p.starts_with("--"));
        let sources = &paths[..paths.len() - 1];
        // What other stages make (`/out`, the prebuilt folder of a test
        // build) is proven by building the image, below.
        if flags
            .iter()
            .any(|f| f.starts_with("--from=") && *f != format!("--from={stage}"))
            || sources == ["prebuilt"]
        {
            continue;
        }
        if flags.iter().any(|f| *f == format!("--from={stage}")) {
            for s in sources {
                let rel = s
                    .strip_prefix("/src/")
                    .unwrap_or_else(|| panic!("{s} is not under /src"));
                let ok = match rel.split('/').next().unwrap() {
                    "models" => fetch.contains(rel.trim_start_matches("models/")),
                    "target" => rel.ends_with("/sluice"),
                    _ => root.join(rel).exists(),
                };
                assert!(ok, "COPY --from={stage} {s}: nothing makes it");
            }
        } else {
            for s in sources {
                assert!(root.join(s).exists(), "COPY {s}: no such path in the repository");
            }
        }
    }
    for (op, args) in &ins {
        if op == "RUN" && args.contains("scripts/") {
            let script = args
                .split_whitespace()
                .find(|w| w.starts_with("scripts/"))
                .unwrap();
            assert!(root.join(script).exists(), "RUN names {script}");
        }
    }
    let user = ins
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .map(|(_, a)| a.as_str());
    assert!(
        user.is_some_and(|u| u != "root" && u != "0"),
        "the image runs as {user:?}"
    );
    let health = ins
        .iter()
        .find(|(op, _)| op == "HEALTHCHECK")
        .map(|(_, a)| a.as_str())
        .unwrap();
    assert!(health.contains("http://127.0.0.1:8080/healthz"), "{health}");

    // The entrypoint is a command line sluice accepts: the daemon on the exposed port.
    let entry: Vec<String> =
        serde_json::from_str(&ins.iter().find(|(op, _)| op == "ENTRYPOINT").unwrap().1).unwrap();
    let cli = Cli::try_parse_from(&entry).unwrap_or_else(|e| panic!("{entry:?}: {e}"));
    match cli.command {
        Command::Daemon { listen, .. } => {
            let exposed = ins.iter().find(|(op, _)| op == "EXPOSE").unwrap().1.clone();
            assert_eq!(listen.port().to_string(), exposed);
            assert!(
                !listen.ip().is_loopback(),
                "the container must listen beyond loopback"
            );
        }
        other => panic!("the entrypoint runs {other:?}, not the daemon"),
    }
    assert!(root.join(".dockerignore").exists());
}

/// `${NAME:-default}` at the start of `value`, with its default in its place.
fn default_of(value: &str) -> String {
    match value.strip_prefix("${").and_then(|v| v.split_once('}')) {
        Some((var, rest)) => var.split_once(":-").map_or("", |(_, d)| d).to_string() + rest,
        None => value.to_string(),
    }
}

#[test]
fn the_compose_file_parses_and_names_the_daemon_and_every_service() {
    let root = util::repo_root();
    let text = std::fs::read_to_string(root.join("docker/compose.yaml")).unwrap();
    let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
    let services = &doc["services"];
    for name in ["sluice", "postgres", "redis", "s3", "kafka"] {
        assert!(!services[name].is_badvalue(), "no `{name}` service");
    }
    for name in ["postgres", "redis", "s3", "kafka"] {
        assert!(services[name]["image"].as_str().is_some(), "{name} has no image");
    }
    assert!(
        services["postgres"]["image"]
            .as_str()
            .unwrap()
            .contains("pgvector"),
        "PostgreSQL must come with pgvector"
    );
    let daemon = &services["sluice"];
    let docker = root.join("docker");
    let context = docker.join(daemon["build"]["context"].as_str().unwrap());
    assert!(context
        .join(daemon["build"]["dockerfile"].as_str().unwrap())
        .is_file());
    for volume in daemon["volumes"].as_vec().unwrap() {
        let host = default_of(volume.as_str().unwrap().rsplit_once(':').unwrap().0);
        let host = host.split(':').next().unwrap();
        if host.starts_with('.') {
            assert!(docker.join(host).exists(), "volume {host} does not exist");
        }
    }
    assert!(daemon["environment"]["SLUICE_API_TOKEN"].as_str().is_some());
    let ports: Vec<&str> = daemon["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(ports, ["${SLUICE_PORT:-8080}:8080"]);
    for dep in ["postgres", "redis", "s3", "kafka"] {
        assert!(
            !daemon["depends_on"][dep].is_badvalue(),
            "sluice does not wait for {dep}"
        );
    }
}

/// What `scripts/image_base.sh` set up, once per test process: the storage
/// options every podman and buildah call passes, and the base image's name.
struct Setup {
    storage: Vec<String>,
    base: String,
}

fn setup() -> &'static Setup {
    static SETUP: std::sync::OnceLock<Setup> = std::sync::OnceLock::new();
    SETUP.get_or_init(|| {
        let script = util::repo_root().join("scripts/image_base.sh");
        let out = ok(std::process::Command::new("bash").arg(script));
        let storage = out
            .lines()
            .find_map(|l| l.strip_prefix("storage: "))
            .unwrap_or_else(|| panic!("image_base.sh named no storage:\n{out}"));
        Setup {
            storage: storage.split_whitespace().map(String::from).collect(),
            base: out.lines().last().unwrap().to_string(),
        }
    })
}

/// Podman and buildah as these machines run them: rootful, with the storage
/// `scripts/image_base.sh` chose (the kernel's overlay filesystem where it
/// mounts one, vfs where not), runc (crun refuses the hybrid cgroup tree),
/// and limits no higher than the machine's (podman's defaults ask for more,
/// which a VM without CAP_SYS_RESOURCE refuses).
pub(crate) fn container(tool: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(tool);
    cmd.args(&setup().storage);
    if tool == "podman" {
        cmd.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
    }
    cmd
}

pub(crate) const LIMITS: [&str; 4] = ["--ulimit", "nofile=16384:16384", "--ulimit", "nproc=4096:4096"];

/// The container and image a test made, removed however it ends.
pub(crate) struct Built {
    pub(crate) tag: String,
    pub(crate) name: String,
}

impl Drop for Built {
    fn drop(&mut self) {
        let _ = container("podman").args(["rm", "-f", &self.name]).output();
        let _ = container("podman").args(["rmi", "-f", &self.tag]).output();
        // The prebuilt stage's image has no tag once the build is done.
        let dangling = container("podman")
            .args(["images", "-q", "-f", "dangling=true"])
            .output();
        for id in dangling
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default()
            .lines()
        {
            let _ = container("podman").args(["rmi", "-f", id]).output();
        }
    }
}

/// The daemon's HTTP API on 127.0.0.1:`port`, with its token.
pub(crate) struct Api {
    pub(crate) agent: ureq::Agent,
    pub(crate) url: String,
    token: String,
}

impl Api {
    pub(crate) fn new(port: u16, token: &str) -> Api {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build()
            .into();
        Api {
            agent,
            url: format!("http://127.0.0.1:{port}"),
            token: token.to_string(),
        }
    }

    /// Wait until pipeline `name` has finished, failing at once on `invalid`
    /// or `backoff` and after `limit`; `logs` says what the daemon printed.
    pub(crate) fn finished(
        &self,
        name: &str,
        limit: std::time::Duration,
        logs: impl Fn() -> String,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let status = (self.agent.get(format!("{}/v1/pipelines/{name}", self.url)))
                .header("Authorization", format!("Bearer {}", self.token))
                .call()
                .ok()
                .filter(|r| r.status() == 200)
                .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok());
            if let Some(p) = status {
                let state = p["state"].as_str().unwrap_or("");
                assert!(!["invalid", "backoff"].contains(&state), "{p}\n{}", logs());
                if state == "finished" {
                    return p;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon never finished `{name}`; its log:\n{}",
                logs()
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    /// `query` over pipeline `pipeline`'s tables, through `POST /v1/sql`: the rows.
    pub(crate) fn sql(&self, pipeline: &str, query: &str) -> serde_json::Value {
        let mut resp = (self.agent.post(format!("{}/v1/sql", self.url)))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(serde_json::json!({"pipeline": pipeline, "format": "json", "query": query}).to_string())
            .unwrap();
        let body = resp.body_mut().read_to_string().unwrap();
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("{query}: {body}"))
    }
}

/// buildah, podman and the local bookworm base (`scripts/image_base.sh`):
/// the base image's name.
pub(crate) fn base_image() -> String {
    setup().base.clone()
}

/// docker/Dockerfile built on `base` with this test's own `sluice` binary
/// (`SLUICE_FROM=prebuilt`: compiling a release build inside the image would
/// take over an hour on these machines) and the models set-up fetched.
pub(crate) fn build_image(root: &std::path::Path, base: &str) -> Built {
    let ctx = tempfile::tempdir().unwrap();
    let prebuilt = ctx.path().join("prebuilt");
    std::fs::create_dir_all(prebuilt.join("bin")).unwrap();
    std::fs::create_dir_all(prebuilt.join("models")).unwrap();
    // Without its debug info: what a user would pull.
    ok(std::process::Command::new("objcopy")
        .arg("--strip-debug")
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .arg(prebuilt.join("bin/sluice")));
    for m in ["onnxruntime", "all-minilm-l6-v2"] {
        ok(std::process::Command::new("cp")
            .arg("-r")
            .arg(root.join("models").join(m))
            .arg(prebuilt.join("models")));
    }
    ok(std::process::Command::new("cp")
        .arg("-r")
        .arg(root.join("pipelines"))
        .arg(ctx.path()));
    let unique = util::unique("image");
    let built = Built {
        tag: format!("localhost/sluice-test:{unique}"),
        name: unique,
    };
    ok(container("buildah")
        .args(["bud", "--format", "docker", "--isolation", "chroot"])
        .args(LIMITS)
        .args(["--build-arg", &format!("BASE_IMAGE={base}")])
        .args(["--build-arg", "SLUICE_FROM=prebuilt", "-t", &built.tag, "-f"])
        .arg(root.join("docker/Dockerfile"))
        .arg(ctx.path()));
    built
}

/// The image (see [`build_image`]), started with a token, healthy, running
/// a pipeline mounted into it over the repository's corpus; the result is read
/// back through the daemon's SQL API and from the Parquet files it wrote.
#[test]
fn the_image_builds_and_its_daemon_ingests_a_mounted_pipeline() {
    let root = util::repo_root();
    let base = base_image();
    let started = std::time::Instant::now();
    let built = build_image(&root, &base);
    let size = ok(container("podman").args(["image", "inspect", "--format", "{{.Size}}", &built.tag]));
    eprintln!(
        "image built in {:.0?}: {} MB",
        started.elapsed(),
        size.parse::<u64>().unwrap() / 1_000_000
    );

    let ws = tempfile::tempdir().unwrap();
    let (pipelines, out) = (ws.path().join("pipelines"), ws.path().join("out"));
    std::fs::create_dir_all(&pipelines).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    // The image's user (uid 10001) writes the Parquet sink here.
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::write(
        pipelines.join("docs.yaml"),
        "name: docs\nsource: {type: files, path: /data}\nstages:\n\
         \x20 - {name: parse, type: parse}\n\
         \x20 - {name: chunks, type: chunk, max_tokens: 128}\n\
         \x20 - {name: embed, type: embed, model: \"${SLUICE_MODEL}\"}\n\
         sinks:\n  - {name: out, type: parquet, path: /var/lib/sluice/out}\n",
    )
    .unwrap();
    let ports = util::ports(1);
    let port = ports.first;
    let volume = |host: &std::path::Path, inside: &str| format!("{}:{inside}", host.display());
    ok(container("podman")
        .args(["run", "-d", "--name", &built.name])
        .args(LIMITS)
        .args(["-e", "SLUICE_API_TOKEN=image-test-token"])
        .args(["-p", &format!("127.0.0.1:{port}:8080")])
        .args(["-v", &volume(&pipelines, "/etc/sluice/pipelines:ro")])
        .args(["-v", &volume(&root.join("pipelines/data"), "/data:ro")])
        .args(["-v", &volume(&out, "/var/lib/sluice/out")])
        .arg(&built.tag));
    let api = Api::new(port, "image-test-token");
    let logs = || {
        ok(container("podman")
            .args(["logs", &built.name])
            .stderr(std::process::Stdio::piped()))
    };
    let pipeline = api.finished("docs", std::time::Duration::from_secs(90), logs);
    let (agent, url) = (&api.agent, &api.url);
    let health = agent.get(format!("{url}/healthz")).call().unwrap();
    assert_eq!(health.status(), 200);
    let refused = agent.get(format!("{url}/v1/pipelines")).call().unwrap();
    assert_eq!(refused.status(), 401, "the API answered without the token");
    // The image's own health check (curl inside it) passes.
    ok(container("podman").args(["healthcheck", "run", &built.name]));

    let files = util::files_under(&root.join("pipelines/data"));
    let rows = api.sql(
        "docs",
        "SELECT count(DISTINCT doc_id) AS docs, count(*) AS chunks, min(array_length(embedding)) AS dims FROM out",
    );
    let dead = pipeline["dead_letters"].as_u64().unwrap_or(0) as usize;
    assert_eq!(
        rows[0]["docs"].as_u64().unwrap() as usize + dead,
        files.len(),
        "{rows} {pipeline}"
    );
    assert_eq!(rows[0]["dims"], 384, "{rows}");
    // The files on the host, read with parquet's own reader, hold the same rows.
    let mut written = 0;
    for f in util::files_under(&out)
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
    {
        let file = std::fs::File::open(f).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        written += reader.map(|b| b.unwrap().num_rows()).sum::<usize>();
    }
    assert_eq!(written as u64, rows[0]["chunks"].as_u64().unwrap(), "{rows}");
    drop(built);
}
