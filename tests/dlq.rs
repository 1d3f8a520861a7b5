//! The dead-letter queue you work with: list, show, replay, resolution, retention.

use crate::util;

use util::{basic_pipeline, Workspace};

fn pipeline(max_file_size: &str, dlq: &str) -> String {
    format!(
        "{}{dlq}",
        basic_pipeline(&format!("  max_file_size: {max_file_size}"), "1s")
    )
}

fn open_letters(ws: &Workspace) -> Vec<(String, String, u64)> {
    ws.query(
        "p.yaml",
        "SELECT doc_id, stage, epoch FROM dead_letters ORDER BY doc_id",
    )
    .iter()
    .map(|r| {
        let id = r["doc_id"].as_str().unwrap();
        (
            id.rsplit('/').next().unwrap().to_string(),
            r["stage"].as_str().unwrap().to_string(),
            r["epoch"].as_u64().unwrap(),
        )
    })
    .collect()
}

fn names(letters: &[(String, String, u64)]) -> Vec<&str> {
    letters.iter().map(|l| l.0.as_str()).collect()
}

#[test]
fn letters_are_listed_shown_resolved_replayed_and_pruned() {
    let ws = Workspace::new();
    ws.write("data/good.md", "# Good\n\nThis one parses.\n");
    ws.write("data/broken.json", "{\"text\": \"no closing brace\"");
    ws.write("data/big.txt", "A line of a big text file.\n".repeat(100));
    ws.fixture("random-bytes.pdf", "data/random.pdf");
    ws.write("p.yaml", pipeline("1KB", ""));
    ws.ok(&["run", "p.yaml"]);

    let letters = open_letters(&ws);
    assert_eq!(names(&letters), vec!["big.txt", "broken.json", "random.pdf"]);
    // The random bytes are over 1KB too: the source refuses them first.
    let stages: Vec<&str> = letters.iter().map(|l| l.1.as_str()).collect();
    assert_eq!(stages, vec!["source", "parse", "source"]);

    // `list` shows ids and filters by stage; `show` gives the whole letter.
    let listed = ws.ok(&["dlq", "list", "-p", "p.yaml", "--stage", "parse"]);
    assert!(
        listed.contains("broken.json") && !listed.contains("big.txt"),
        "{listed}"
    );
    let id = ws.query(
        "p.yaml",
        "SELECT id FROM dead_letters WHERE doc_id LIKE '%broken.json'",
    )[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(listed.contains(&id), "{listed}");
    let shown = ws.ok(&["dlq", "show", "-p", "p.yaml", &id]);
    assert!(
        shown.contains("broken.json") && shown.contains("status   open"),
        "{shown}"
    );
    assert!(shown.to_lowercase().contains("json"), "{shown}");
    let missing = ws.sluice(&["dlq", "show", "-p", "p.yaml", "nosuchid"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no dead letter with id"));

    // Fixing the file and running again resolves its letter.
    ws.write("data/broken.json", "{\"text\": \"fixed now\"}");
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(names(&open_letters(&ws)), vec!["big.txt", "random.pdf"]);
    let shown = ws.ok(&["dlq", "show", "-p", "p.yaml", &id]);
    assert!(shown.contains("resolved"), "{shown}");

    // With a higher limit, replaying the source's letters ingests big.txt; the
    // random bytes now reach the parser, which gives up on them.
    ws.write("p.yaml", pipeline("1MB", ""));
    let out = ws.ok(&["dlq", "replay", "-p", "p.yaml", "--stage", "source"]);
    assert!(out.contains("replayed 2: 1 now succeed, 1 failed again"), "{out}");
    let letters = open_letters(&ws);
    assert_eq!(names(&letters), vec!["random.pdf"]);
    assert_eq!(letters[0].1, "parse");
    assert!(
        ws.count(
            "p.yaml",
            "SELECT count(*) AS n FROM out WHERE doc_id LIKE '%big.txt'"
        ) > 0
    );

    // A document that fails again stays, with a new letter.
    let before = open_letters(&ws)[0].2;
    let out = ws.ok(&["dlq", "replay", "-p", "p.yaml"]);
    assert!(out.contains("replayed 1: 0 now succeed, 1 failed again"), "{out}");
    let after = open_letters(&ws);
    assert_eq!(names(&after), vec!["random.pdf"]);
    assert!(after[0].2 > before, "the letter is the replay's: {after:?}");
    assert_eq!(
        ws.count(
            "p.yaml",
            // Epochs in the log: the current-state view would hide a re-read.
            "SELECT count(DISTINCT epoch) AS n FROM out_log WHERE doc_id LIKE '%good.md'"
        ),
        1,
        "replay re-read only the dead letters"
    );

    // Retention prunes old letters when a run starts.
    ws.write("p.yaml", pipeline("1MB", "dlq:\n  retention: 1s\n"));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(
        ws.count("p.yaml", "SELECT count(*) AS n FROM dead_letters_log"),
        0
    );
}
