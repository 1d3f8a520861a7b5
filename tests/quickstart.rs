//! The quickstart, as `scripts/quickstart.sh` runs it: the pipeline over the
//! bundled corpus, then every query the script prints. Regression: the script
//! queried a stage (`embed`) that has no tap, so the first command failed.

mod util;

use std::process::Command;

/// The SQL queries `scripts/quickstart.sh` runs, in order.
fn script_queries() -> Vec<String> {
    let script = std::fs::read_to_string(util::repo_root().join("scripts/quickstart.sh")).unwrap();
    script
        .lines()
        .filter_map(|l| l.strip_prefix(r#""$SLUICE" sql --pipeline "$P" ""#))
        .map(|q| q.strip_suffix('"').unwrap().to_string())
        .collect()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn the_quickstart_runs_and_every_query_of_its_script_answers() {
    let ws = util::Workspace::new();
    copy_dir(&util::repo_root().join("pipelines"), &ws.path("pipelines"));
    let model = util::repo_root().join("models/all-minilm-l6-v2");
    let sluice = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .current_dir(ws.dir.path())
            .env("SLUICE_MODEL", &model)
            .env_remove("SLUICE_DATA")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sluice {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let p = "pipelines/quickstart.yaml";
    sluice(&["run", "--no-progress", p]);
    let queries = script_queries();
    assert!(queries.len() >= 5, "{queries:?}");
    for q in &queries {
        let out = sluice(&["sql", "--pipeline", p, "--format", "json", q]);
        let rows: Vec<serde_json::Value> = serde_json::from_str(out.trim()).unwrap();
        assert!(!rows.is_empty(), "no rows for {q}");
    }
    assert!(sluice(&["dlq", "list", "--pipeline", p]).contains("no dead letters"));
}
