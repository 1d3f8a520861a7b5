//! A folder source lists what it can: an odd entry (a name that is not UTF-8
//! or holds a control character, a link loop, a link out of the folder, a
//! folder it may not read) is a dead letter with the reason, and the others are
//! ingested. Nothing outside the folder is read.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;

use crate::util::{basic_pipeline, Workspace};

#[test]
fn odd_entries_are_dead_letters_and_links_do_not_leave_the_folder() {
    let ws = Workspace::new();
    let outside = Workspace::new();
    outside.write("passwd", "root:x:0:0:the secret outside the folder");
    ws.write("data/good.md", "# Good\n\nA fine document.");
    ws.write("data/sub/also.txt", "Another fine document.");
    ws.write("data/bell\u{7}.txt", "A control character in the name.");
    std::fs::write(
        ws.path("data")
            .join(std::ffi::OsStr::from_bytes(b"latin1-\xe9.txt")),
        "A name that is not UTF-8.",
    )
    .unwrap();
    symlink(outside.path("passwd"), ws.path("data/p.txt")).unwrap();
    symlink(ws.path("data"), ws.path("data/sub/loop")).unwrap();
    ws.write("p.yaml", basic_pipeline("", "1s"));

    let summary = ws.ok(&["run", "p.yaml"]);
    assert!(summary.contains("2 documents"), "{summary}");
    assert!(summary.contains("4 dead letters"), "{summary}");
    let texts = ws.query("p.yaml", "SELECT text FROM out");
    assert!(
        !texts
            .iter()
            .any(|r| r["text"].as_str().unwrap().contains("secret")),
        "a file outside the source folder was ingested: {texts:?}"
    );
    let letters = ws.query("p.yaml", "SELECT doc_id, error FROM dead_letters ORDER BY doc_id");
    let reasons: Vec<(String, String)> = letters
        .iter()
        .map(|r| {
            let id = r["doc_id"].as_str().unwrap();
            let name = id.rsplit_once("/data/").map(|(_, n)| n).unwrap_or(id).to_string();
            (name, r["error"].as_str().unwrap().to_string())
        })
        .collect();
    let reason = |name: &str| {
        reasons
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.as_str())
            .unwrap_or_else(|| panic!("no dead letter for {name:?} in {reasons:?}"))
    };
    assert!(reason("bell\u{7}.txt").contains("file name"), "{reasons:?}");
    assert!(reason("latin1-\u{fffd}.txt").contains("file name"), "{reasons:?}");
    assert!(
        reason("p.txt").contains("outside the source folder"),
        "{reasons:?}"
    );
    assert!(reason("sub/loop").contains("listed already"), "{reasons:?}");

    // A second run lists the same odd entries and reports nothing new.
    let again = ws.ok(&["run", "p.yaml"]);
    assert!(again.contains("0 dead letters"), "{again}");

    // With the key, a link out of the folder is read.
    ws.write(
        "follow.yaml",
        basic_pipeline("  follow_external_links: true", "1s")
            .replace("name: test", "name: follow")
            .replace("path: ./out", "path: ./out-follow"),
    );
    ws.ok(&["run", "follow.yaml"]);
    let followed = ws.count(
        "follow.yaml",
        "SELECT count(*) FROM out WHERE text LIKE '%secret outside%'",
    );
    assert_eq!(followed, 1);
}
