//! The `files` source on an S3 server (moto): listing pages through more than
//! 1,000 objects, include/exclude globs, ETag versions, and changes and deletes
//! across runs.

use crate::util;

use std::process::Command;

use util::{s3_objects, services, unique, Workspace};

fn pipeline(bucket: &str, endpoint: &str) -> String {
    format!(
        r#"name: s3
source:
  type: files
  path: s3://{bucket}/docs
  include: ["**/*.txt", "**/*.md"]
  exclude: ["drafts/**"]
  read_concurrency: 16
  storage_options: {{endpoint: "{endpoint}", region: us-east-1, access_key_id: test, secret_access_key: test}}
stages:
  - {{name: parse, type: parse, tap: true}}
  - {{name: chunks, type: chunk, max_tokens: 64, overlap_tokens: 0}}
sinks:
  - {{name: out, type: parquet, path: ./out}}
"#
    )
}

/// `N documents` from the run summary.
fn documents(summary: &str) -> u64 {
    let head = summary.split(" documents").next().unwrap();
    head.split_whitespace().last().unwrap().parse().unwrap()
}

#[test]
fn s3_listing_pages_past_1000_and_reruns_emit_only_changes_and_deletes() {
    let s3 = services().s3;
    let bucket = unique("docs");
    let n = 1_050;
    s3_objects(
        &s3,
        &bucket,
        serde_json::json!({
            "create_bucket": true,
            "generate": {"prefix": "docs/a/", "count": n, "size": 300},
            "put": {
                "docs/readme.md": "# Read me\n\nAbout the corpus.",
                "docs/drafts/wip.txt": "excluded by a glob",
                "docs/a/image.png": "not included",
                "other/outside.txt": "outside the prefix",
            },
        }),
    );
    let ws = Workspace::new();
    ws.write("p.yaml", pipeline(&bucket, &s3));
    ws.ok(&["validate", "p.yaml"]);
    let first = ws.ok(&["run", "p.yaml"]);
    let total = n as u64 + 1;
    assert_eq!(documents(&first), total, "{first}");
    let q = |sql: &str| ws.count("p.yaml", sql);
    assert_eq!(q("SELECT count(DISTINCT doc_id) FROM out"), total);
    let prefix = format!("s3://{bucket}/docs/");
    assert_eq!(
        q(&format!(
            "SELECT count(*) FROM parse WHERE starts_with(doc_id, '{prefix}')"
        )),
        total,
        "doc_ids are s3:// URLs"
    );
    // The version is the ETag: moto's is the MD5 of the content.
    let readme = ws.query(
        "p.yaml",
        &format!("SELECT version, text FROM parse WHERE doc_id = '{prefix}readme.md'"),
    );
    assert_eq!(readme[0]["version"], md5("# Read me\n\nAbout the corpus."));
    assert!(readme[0]["text"].as_str().unwrap().contains("About the corpus"));

    // Change 3, delete 2, add 1; the re-run emits exactly those 6.
    s3_objects(
        &s3,
        &bucket,
        serde_json::json!({
            "put": {
                "docs/a/00001.txt": "changed one",
                "docs/a/00500.txt": "changed two",
                "docs/readme.md": "# Read me\n\nRewritten.",
                "docs/b/new.txt": "a new document",
            },
            "delete": ["docs/a/00002.txt", "docs/a/01049.txt"],
        }),
    );
    let second = ws.ok(&["run", "p.yaml"]);
    assert_eq!(documents(&second), 6, "{second}");
    assert_eq!(q("SELECT count(DISTINCT doc_id) FROM out"), total - 2 + 1);
    assert_eq!(
        q(&format!(
            "SELECT count(*) FROM out WHERE doc_id IN ('{prefix}a/00002.txt', '{prefix}a/01049.txt')"
        )),
        0
    );
    assert_eq!(
        q(&format!(
            "SELECT count(*) FROM out WHERE doc_id = '{prefix}a/00001.txt' AND text = 'changed one'"
        )),
        1
    );
    assert_eq!(
        q("SELECT count(*) FROM out_log WHERE op = 'delete'"),
        2,
        "each vanished object is one delete row"
    );
    // Nothing changed: a third run emits nothing.
    let third = ws.ok(&["run", "p.yaml"]);
    assert_eq!(documents(&third), 0, "{third}");
}

#[test]
fn a_bad_store_config_is_a_validate_error_with_the_key() {
    let ws = Workspace::new();
    ws.write(
        "p.yaml",
        "name: bad\nsource:\n  type: files\n  path: s3://bucket/x\n  storage_options: {endpiont: http://127.0.0.1:1}\nsinks:\n  - {name: out, type: parquet, path: ./out}\n",
    );
    let out = ws.sluice(&["validate", "p.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`endpiont` is not known"), "{stderr}");
    assert!(stderr.contains("p.yaml:5:"), "{stderr}");
}

#[test]
fn an_unreachable_s3_server_stops_the_run_with_a_clear_error() {
    let ws = Workspace::new();
    // Nothing listens on port 1; a short max_outage keeps the test quick.
    ws.write(
        "p.yaml",
        "name: down\nsource:\n  type: files\n  path: s3://bucket/x\n  max_outage: 1s\n  storage_options: {endpoint: 'http://127.0.0.1:1', access_key_id: a, secret_access_key: b, region: us-east-1}\nsinks:\n  - {name: out, type: parquet, path: ./out}\n",
    );
    let out = ws.sluice(&["run", "p.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
}

fn md5(s: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.md5(sys.argv[1].encode()).hexdigest())",
            s,
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
