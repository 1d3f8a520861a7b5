//! The feature store: Feast-readable Parquet, Redis that never goes back in time.

use std::collections::BTreeMap;

use crate::common::*;
use crate::util::{self, Workspace};

fn redis_hash(url: &str, key: &str) -> BTreeMap<String, String> {
    redis_cmd(url, redis::cmd("HGETALL").arg(key))
}

/// doc_id → the online `chunk_count` Feast reads for it (null if none).
fn feast_counts(ws: &Workspace, docs: &[&String]) -> BTreeMap<String, serde_json::Value> {
    let docs: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
    util::feast_chunk_counts(&ws.path("feast"), "doc_features", &docs)
}

/// Every offline row as (doc_id, chunk_count, event date folder).
fn offline_rows(dir: &std::path::Path) -> Vec<(String, i64, String)> {
    use arrow::array::AsArray;
    let mut rows = Vec::new();
    for part in std::fs::read_dir(dir).unwrap().flatten() {
        let date = part.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(part.path()).unwrap().flatten() {
            let file = std::fs::File::open(f.path()).unwrap();
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            for b in reader {
                let b = b.unwrap();
                let docs = b.column_by_name("doc_id").unwrap().as_string::<i32>();
                let counts = b
                    .column_by_name("chunk_count")
                    .unwrap()
                    .as_primitive::<arrow::datatypes::Int64Type>();
                assert!(
                    b.column_by_name("event_timestamp").is_some()
                        && b.column_by_name("created_timestamp").is_some()
                );
                for r in 0..b.num_rows() {
                    rows.push((docs.value(r).to_string(), counts.value(r), date.clone()));
                }
            }
        }
    }
    rows.sort();
    rows
}

#[test]
fn feature_store_writes_feast_parquet_and_redis_never_goes_back_in_time() {
    let redis_url = util::services().redis;
    let project = util::unique("docs");
    let ws = Workspace::new();
    corpus(&ws);
    let sink = format!(
        r#"  - name: doc_features
    type: feature_store
    query: >
      SELECT doc_id, op, count(*) AS chunk_count, sum(token_count) AS token_count,
             max(parse_ms) AS parse_ms, max(modified_at) AS event_timestamp
      FROM input GROUP BY doc_id, op
    entity: [doc_id]
    offline: ./features
    online: {{url: "{redis_url}"}}
    feast: {{repo: ./feast, project: {project}}}"#
    );
    ws.write("p.yaml", pipeline(&sink));
    ws.ok(&["run", "p.yaml"]);

    let per_doc: BTreeMap<String, i64> = ws
        .query("p.yaml", "SELECT doc_id, count(*) AS n FROM out GROUP BY doc_id")
        .into_iter()
        .map(|r| {
            (
                r["doc_id"].as_str().unwrap().to_string(),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    let today = chrono::Utc::now().format("date=%Y-%m-%d").to_string();
    let offline = offline_rows(&ws.path("features"));
    assert_eq!(offline.len(), 4);
    for (doc, count, date) in &offline {
        assert_eq!(Some(count), per_doc.get(doc));
        assert_eq!(date, &today);
    }
    assert_eq!(
        ws.count(
            "p.yaml",
            &format!(
                "SELECT count(*) AS n FROM doc_features WHERE date = '{}'",
                &today[5..]
            )
        ),
        4
    );
    let doc0 = offline[0].0.clone();
    // Feast's own online read returns what the run wrote, for every document.
    let all: Vec<&String> = per_doc.keys().collect();
    let online = feast_counts(&ws, &all);
    for (doc, n) in &per_doc {
        assert_eq!(online[doc], serde_json::json!(n), "{doc}");
    }

    // An older event for doc0 (its file dated 2001) reaches the offline history
    // but does not overwrite the newer online values.
    let path = ws.path("data/doc0.md");
    std::fs::write(&path, "# Document 0\n\nShorter now.\n").unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::remove_file(ws.path("data/doc3.md")).unwrap();
    ws.ok(&["run", "p.yaml"]);
    let offline = offline_rows(&ws.path("features"));
    assert!(
        offline
            .iter()
            .any(|(d, _, date)| d == &doc0 && date == "date=2001-09-09"),
        "{offline:?}"
    );
    let doc3 = per_doc.keys().find(|d| d.ends_with("doc3.md")).unwrap();
    let online = feast_counts(&ws, &all);
    assert_eq!(
        online[&doc0],
        serde_json::json!(per_doc[&doc0]),
        "an older event went online"
    );
    assert_eq!(
        online[doc3],
        serde_json::Value::Null,
        "a deleted document stays online"
    );
    let store = std::fs::read_to_string(ws.path("feast/feature_store.yaml")).unwrap();
    assert!(store.contains("type: redis"), "{store}");

    let py = std::fs::read_to_string(ws.path("feast/features.py")).unwrap();
    assert!(
        py.contains("FeatureView(") && py.contains("Field(name=\"chunk_count\", dtype=Int64)"),
        "{py}"
    );

    // Feast itself reads the offline store: a point-in-time join as of now gives
    // each remaining document's newest features (doc0's newest event is the first run's).
    let docs: Vec<&String> = per_doc.keys().filter(|d| !d.ends_with("doc3.md")).collect();
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(util::repo_root().join("tests/python/feast_read.py"))
        .arg(ws.path("feast"))
        .arg("doc_features")
        .args(&docs);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "feast: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: BTreeMap<String, i64> =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    for d in docs {
        assert_eq!(got[d], per_doc[d], "{d}");
    }
}

fn pttl(url: &str, key: impl redis::ToRedisArgs) -> i64 {
    redis_cmd(url, redis::cmd("PTTL").arg(key))
}

/// The keys matching `pattern`, text or Feast's binary.
fn redis_keys(url: &str, pattern: &str) -> Vec<Vec<u8>> {
    redis_cmd(url, redis::cmd("KEYS").arg(pattern))
}

fn redis_cmd<T: redis::FromRedisValue>(url: &str, cmd: &redis::Cmd) -> T {
    runtime().block_on(async {
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        cmd.query_async(&mut conn).await.unwrap()
    })
}

#[test]
fn redis_features_expire_after_the_configured_ttl() {
    let redis_url = util::services().redis;
    let ws = Workspace::new();
    corpus(&ws);
    let (with, without) = (util::unique("ttl"), util::unique("nottl"));
    let sink = |name: &str, prefix: &str, ttl: &str| {
        format!(
            r#"  - name: {name}
    type: feature_store
    query: SELECT doc_id, op, count(*) AS chunk_count, max(modified_at) AS event_timestamp FROM input GROUP BY doc_id, op
    entity: [doc_id]
    offline: ./{name}
    online: {{url: "{redis_url}", layout: sluice, prefix: "{prefix}"{ttl}}}"#
        )
    };
    let sinks = format!(
        "{}\n{}",
        sink("expiring", &with, ", ttl: 1h"),
        sink("lasting", &without, "")
    );
    ws.write("p.yaml", pipeline(&sinks));
    ws.ok(&["run", "p.yaml"]);
    let doc = ws.query("p.yaml", "SELECT min(doc_id) AS d FROM out")[0]["d"]
        .as_str()
        .unwrap()
        .to_string();
    let ms = pttl(&redis_url, format!("{with}:{doc}"));
    assert!((3_500_000..=3_600_000).contains(&ms), "PTTL {ms}");
    let chunks = ws.count(
        "p.yaml",
        &format!("SELECT count(*) AS n FROM out WHERE doc_id = '{doc}'"),
    );
    assert_eq!(
        redis_hash(&redis_url, &format!("{with}:{doc}"))["chunk_count"],
        chunks.to_string()
    );
    assert_eq!(
        pttl(&redis_url, format!("{without}:{doc}")),
        -1,
        "no ttl: no expiry"
    );
}

/// Feast reads every value type the sink writes, under an entity of two key
/// columns (a text and an integer), nulls included.
#[test]
fn feast_reads_every_feature_type_under_a_two_column_entity() {
    let redis_url = util::services().redis;
    let project = util::unique("types");
    let ws = Workspace::new();
    corpus(&ws);
    let sink = format!(
        r#"  - name: chunk_features
    type: feature_store
    query: >
      SELECT doc_id, CAST(chunk_index AS INT) AS part, op,
             CAST(token_count AS INT) AS n32, CAST(token_count AS BIGINT) AS n64,
             CAST(token_count AS FLOAT) AS f32, CAST(token_count AS DOUBLE) / 4 AS f64,
             text AS words, token_count > 10 AS long_chunk, modified_at AS seen,
             CASE WHEN chunk_index = 0 THEN NULL ELSE text END AS maybe,
             modified_at AS event_timestamp
      FROM input
    entity: [doc_id, part]
    offline: ./features
    online: {{url: "{redis_url}", ttl: 1h}}
    feast: {{repo: ./feast, project: {project}}}"#
    );
    ws.write("p.yaml", pipeline(&sink));
    ws.ok(&["run", "p.yaml"]);
    let want = ws.query(
        "p.yaml",
        "SELECT doc_id, CAST(chunk_index AS BIGINT) AS part, CAST(token_count AS BIGINT) AS n, text, \
         CAST(to_unixtime(modified_at) AS BIGINT) AS seen FROM out ORDER BY doc_id, part",
    );
    assert!(want.len() > 8, "{want:?}");
    let rows: Vec<serde_json::Value> = (want.iter())
        .map(|r| serde_json::json!({"doc_id": r["doc_id"], "part": r["part"]}))
        .collect();
    let features = ["n32", "n64", "f32", "f64", "words", "long_chunk", "seen", "maybe"];
    let got = util::feast_online(&ws.path("feast"), "chunk_features", &rows.into(), &features);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        let n = w["n"].as_i64().unwrap();
        let maybe = if w["part"] == 0 {
            serde_json::Value::Null
        } else {
            w["text"].clone()
        };
        assert_eq!(
            (&g["n32"], &g["n64"], g["f32"].as_f64(), g["f64"].as_f64()),
            (
                &serde_json::json!(n),
                &serde_json::json!(n),
                Some(n as f64),
                Some(n as f64 / 4.0)
            ),
            "{g} for {w}"
        );
        assert_eq!(
            (&g["words"], &g["long_chunk"], &g["seen"]),
            (&w["text"], &serde_json::json!(n > 10), &w["seen"]),
            "{g}"
        );
        assert_eq!(g["maybe"], maybe, "{g}");
    }
    let store = std::fs::read_to_string(ws.path("feast/feature_store.yaml")).unwrap();
    assert!(store.contains("key_ttl_seconds: 3600"), "{store}");
    // Every entity's hash expires after the sink's `ttl`, as Feast's own writes do.
    let ttls: Vec<i64> = (redis_keys(&redis_url, &format!("*{project}")).iter())
        .map(|k| pttl(&redis_url, k))
        .collect();
    assert_eq!(ttls.len(), want.len(), "one hash per entity");
    assert!(
        ttls.iter().all(|t| (3_500_000..=3_600_000).contains(t)),
        "{ttls:?}"
    );

    // Regression: a document's delete row has no chunk, so under this
    // per-chunk entity its key has a null part. It addresses no entity; it
    // stopped the run instead. The other documents' features stay readable.
    std::fs::remove_file(ws.path("data/doc3.md")).unwrap();
    ws.ok(&["run", "p.yaml"]);
    let kept: Vec<serde_json::Value> = (want.iter())
        .filter(|w| !w["doc_id"].as_str().unwrap().ends_with("doc3.md"))
        .map(|w| serde_json::json!({"doc_id": w["doc_id"], "part": w["part"]}))
        .collect();
    let got = util::feast_online(
        &ws.path("feast"),
        "chunk_features",
        &kept.clone().into(),
        &["n64"],
    );
    assert!(got.iter().all(|g| g["n64"].is_i64()), "{got:?}");
    assert_eq!(got.len(), kept.len());
}
