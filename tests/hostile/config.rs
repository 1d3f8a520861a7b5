//! Nothing a user can put in a pipeline file or on the command line panics:
//! every bad value is an error with file:line:column and exit 2.

use proptest::prelude::*;

use crate::util::{self, Workspace};

/// Exit 2 with `needle` on stderr: an error, not a panic (exit 101).
fn refused(out: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn out_of_range_durations_and_sizes_are_errors_with_their_place() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("data")).unwrap();
    ws.write(
        "p.yaml",
        "name: p\ncheckpoint:\n  interval: 99999999999999999999999s\nsource:\n  type: files\n  path: ./data\n  max_file_size: 99999999999999999999999GiB\nsinks:\n  - {name: out, type: parquet, path: ./out}\n",
    );
    let out = ws.sluice(&["validate", "p.yaml"]);
    refused(&out, "p.yaml:3:13");
    refused(&out, "durations are at most 3650d");
    refused(&out, "p.yaml:7:18");
    refused(&out, "sizes are at most 1PiB");
}

#[test]
fn a_zero_poll_is_refused_before_the_daemon_starts() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("pipelines")).unwrap();
    let out = ws.sluice(&["daemon", "--pipelines", "pipelines", "--poll", "0"]);
    refused(&out, "is zero");
    let out = ws.sluice(&[
        "daemon",
        "--pipelines",
        "pipelines",
        "--poll",
        "99999999999999999999d",
    ]);
    refused(&out, "too long");
}

#[test]
fn a_billion_laughs_file_is_refused_without_expanding() {
    let ws = Workspace::new();
    let mut src = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        src.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    ws.write("p.yaml", src);
    let out = ws.sluice(&["validate", "p.yaml"]);
    refused(&out, "more than 100000 nodes");
}

/// Valid pipelines to mutate: the examples and the validate snapshots.
fn seeds() -> Vec<String> {
    let root = util::repo_root();
    let mut files: Vec<std::path::PathBuf> = ["pipelines", "tests/golden/validate"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// Values that broke loaders before, or could.
const NASTY: &[&str] = &[
    "99999999999999999999999s",
    "-1",
    "0",
    "1e309",
    "NaN",
    "18446744073709551616",
    "\"[oops\"",
    "*nowhere",
    "&a [*a]",
    "{",
    "]",
    "\"${UNSET_VARIABLE}\"",
    "\"\\u0000\"",
    "!!binary aGk=",
    "|\n  block",
    "~",
    "[[[[[[[[[[]]]]]]]]]]",
];

fn load(src: &str) {
    let dir = std::env::temp_dir();
    // An error is fine; a panic fails the test (proptest reports the input).
    let _ = sluice::spec::load_str("fuzz.yaml", src, &dir, &|_: &str| None::<String>);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_loader(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        load(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_pipelines_never_panic_the_loader(
        seed in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..4, any::<prop::sample::Index>()), 1..6),
    ) {
        let seeds = seeds();
        let mut lines: Vec<String> = seeds[seed.index(seeds.len())].lines().map(String::from).collect();
        for (at, kind, pick) in edits {
            if lines.is_empty() {
                break;
            }
            let i = at.index(lines.len());
            match kind {
                // Replace a value with a nasty one.
                0 => {
                    if let Some((key, _)) = lines[i].split_once(": ") {
                        lines[i] = format!("{key}: {}", NASTY[pick.index(NASTY.len())]);
                    }
                }
                // Drop a line.
                1 => {
                    lines.remove(i);
                }
                // Duplicate one.
                2 => {
                    let l = lines[i].clone();
                    lines.insert(i, l);
                }
                // Cut one short.
                _ => {
                    let l = &lines[i];
                    let cut = pick.index(l.len() + 1);
                    let cut = (0..=cut).rev().find(|c| l.is_char_boundary(*c)).unwrap_or(0);
                    lines[i] = l[..cut].to_string();
                }
            }
        }
        load(&lines.join("\n"));
    }
}

/// Every value of every seed pipeline, replaced by each nasty value in turn:
/// what random mutation finds by chance, found every time.
#[test]
fn every_value_replaced_by_each_nasty_value_never_panics_the_loader() {
    let mut loads = 0;
    for seed in seeds() {
        let lines: Vec<&str> = seed.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some((key, _)) = line.split_once(": ") else {
                continue;
            };
            for nasty in NASTY {
                let mut mutated: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                mutated[i] = format!("{key}: {nasty}");
                load(&mutated.join("\n"));
                loads += 1;
            }
        }
    }
    assert!(loads > 1000, "{loads} loads");
}
