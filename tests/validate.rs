//! Snapshot tests of `sluice validate`: every error at once, each with
//! file:line:column. Set UPDATE_GOLDEN=1 to rewrite the `.expected` files.

use crate::util;

use std::path::PathBuf;

fn golden_dir() -> PathBuf {
    util::repo_root().join("tests/golden/validate")
}

#[test]
fn validate_output_matches_the_snapshots() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 5);
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for case in cases {
        let name = case.file_name().unwrap().to_str().unwrap().to_string();
        let out = util::sluice_in(&golden_dir(), &["validate", &name]);
        let expected_code = if name.starts_with("bad-") { 2 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(expected_code),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let actual = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let snapshot = case.with_extension("expected");
        if update {
            std::fs::write(&snapshot, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&snapshot).unwrap_or_default();
        if expected != actual {
            mismatches.push(format!("--- {name}: expected\n{expected}\n--- actual\n{actual}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn every_example_pipeline_validates() {
    let dir = util::repo_root().join("pipelines");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = util::sluice_in(&dir, &["validate", path.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert!(n >= 1);
}

#[test]
fn validate_reports_several_files_and_exits_2_if_any_is_bad() {
    let out = util::sluice_in(
        &golden_dir(),
        &["validate", "ok-env-defaults.yaml", "bad-syntax.yaml"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("ok-env-defaults.yaml: ok"), "{stdout}");
    assert!(stderr.contains("bad-syntax.yaml:4:"), "{stderr}");
}
