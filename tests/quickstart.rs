//! The quickstart, as `scripts/quickstart.sh` runs it: the pipeline over the
//! bundled corpus, then every query the script prints and its closing eval over
//! the shipped question set. Regression: the script
//! queried a stage (`embed`) that has no tap, so the first command failed.

use crate::util;

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

    // The planted support ticket and partner page: the guard report the
    // script prints counts them, and no store holds a planted value.
    assert!(script_line("\"$SLUICE\" guard report ").contains("--pipeline \"$P\""));
    let report = sluice(&["guard", "report", "--pipeline", p, "--format", "json"]);
    for kind in [
        "\"email\"",
        "\"phone\"",
        "\"credit_card\"",
        "\"iban\"",
        "\"prompt_injection\"",
    ] {
        assert!(report.contains(kind), "{kind} not in {report}");
    }
    for raw in [
        "dana.whitfield@example.net",
        "(212) 555-0143",
        "5555 5555 5555 4444",
        "GB82 WEST 1234 5698 7654 32",
    ] {
        for table in ["chunk_store", "vectors", "guard"] {
            let q = format!("SELECT count(*) AS n FROM {table} WHERE strpos(text, '{raw}') > 0");
            let out = sluice(&["sql", "--pipeline", p, "--format", "json", &q]);
            assert!(out.contains("\"n\":0"), "{table} holds {raw}: {out}");
        }
    }
    let flagged = sluice(&["sql", "--pipeline", p, "--format", "json",
        "SELECT count(*) AS n FROM guard_findings WHERE kind = 'prompt_injection' AND action = 'flag' AND document LIKE '%partner-page.html'"]);
    assert!(!flagged.contains("\"n\":0"), "{flagged}");

    // The eval the script ends with: the shipped questions, every mode, and a
    // floor on what the default model finds (measured: recall@10 = 1.0 in
    // each mode, recall@1 0.89 to 0.97).
    let line = script_line("\"$SLUICE\" eval ");
    assert!(
        line.contains("--questions pipelines/quickstart-questions.jsonl"),
        "{line}"
    );
    let q = "pipelines/quickstart-questions.jsonl";
    let out = sluice(&["eval", "--pipeline", p, "--questions", q, "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["questions"].as_u64().unwrap() >= 30, "{report:#}");
    let modes = report["modes"].as_array().unwrap();
    assert_eq!(modes.len(), 3, "vector, text and hybrid: {report:#}");
    for m in modes {
        let at10 = m["at_k"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["k"] == 10)
            .unwrap();
        assert!(at10["recall"].as_f64().unwrap() >= 0.9, "{m:#}");
    }
}

/// The script's line that starts with `prefix`.
fn script_line(prefix: &str) -> String {
    let script = std::fs::read_to_string(util::repo_root().join("scripts/quickstart.sh")).unwrap();
    script
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix}"))
        .to_string()
}

/// Each package's features as `cargo tree` resolves them, with or without the
/// dev-dependencies.
fn resolved_features(with_dev: bool) -> std::collections::BTreeMap<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(util::repo_root())
        .args(["tree", "--workspace", "--offline", "--prefix", "none"])
        .args(["--format", "{p}|{f}"]);
    if !with_dev {
        cmd.args(["--edges", "no-dev"]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut features = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let line = line.trim_end_matches(" (*)");
        if let Some((package, list)) = line.split_once('|') {
            let set = features.entry(package.to_string()).or_default();
            set.extend(list.split(',').filter(|f| !f.is_empty()).map(str::to_string));
        }
    }
    features
        .into_iter()
        .map(|(p, f)| (p, f.into_iter().collect::<Vec<_>>().join(",")))
        .collect()
}

/// The quickstart builds only the binary (`cargo build --workspace --bins`);
/// the test command builds the tests on top of it. That reuses the
/// quickstart's build only if no dev-dependency changes a feature of a crate
/// the binary uses (two did: tiktoken-rs turned on bstr's defaults, and the SDK
/// had a tests-only feature; either recompiled the engine and every connector).
#[test]
fn no_dev_dependency_changes_a_feature_the_binary_is_built_with() {
    let binary = resolved_features(false);
    let tests = resolved_features(true);
    let changed: Vec<String> = binary
        .iter()
        .filter(|(package, features)| tests.get(*package) != Some(features))
        .map(|(package, features)| {
            format!(
                "{package}: [{features}] for the binary, [{}] for the tests",
                tests.get(package).map_or("not built", String::as_str)
            )
        })
        .collect();
    assert!(
        changed.is_empty(),
        "the test build would recompile these:\n{}",
        changed.join("\n")
    );
}
