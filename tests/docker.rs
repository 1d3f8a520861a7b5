//! No Docker engine runs here, so `docker/` is checked as files: the Dockerfile's
//! instructions and the compose file parse, every path they name exists, the
//! image runs as non-root with a health check on `/healthz`, and its entrypoint
//! is a command line sluice's own parser accepts.

mod util;

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
        let host = volume.as_str().unwrap().split(':').next().unwrap();
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
    assert_eq!(ports, ["8080:8080"]);
    for dep in ["postgres", "redis", "s3", "kafka"] {
        assert!(
            !daemon["depends_on"][dep].is_badvalue(),
            "sluice does not wait for {dep}"
        );
    }
}
