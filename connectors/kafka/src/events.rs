//! Object-store event messages: S3 event notifications (`Records[].s3`) and
//! `{"url": "s3://bucket/key"}`.

use serde::Deserialize;

/// What one event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectEvent {
    /// Fetch the object at this URL (`s3://bucket/key`) and ingest it.
    Upsert { url: String },
    /// The object is gone: delete the document.
    Delete { url: String },
}

/// What is wrong with an event message or a URL in it (the message becomes
/// a dead letter with this reason), or with an `allow` prefix.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("not an S3 event notification: {0}")]
    NotNotification(#[source] serde_json::Error),
    #[error("`url` must be a string: {0}")]
    UrlNotString(#[source] serde_json::Error),
    #[error("neither an S3 event notification (`Records`) nor `{{\"url\": ...}}`")]
    Unknown,
    #[error("object key `{0}` is not UTF-8 once decoded")]
    KeyNotUtf8(String),
    #[error("`{0}` is not a URL like s3://bucket/key")]
    NotUrl(String),
    #[error("`{0}` has a `.` or `..` segment")]
    DotSegment(String),
    #[error("`{url}` is outside the source's `allow` prefixes ({})", allow.join(", "))]
    NotAllowed { url: String, allow: Vec<String> },
    #[error("`{0}` is not a URL prefix; write e.g. s3://bucket/incoming/")]
    NotPrefix(String),
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Records")]
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventName", default)]
    event_name: String,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Bucket,
    object: Object,
}

#[derive(Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Deserialize)]
struct Object {
    key: String,
}

#[derive(Deserialize)]
struct UrlEvent {
    url: String,
}

/// Decode one message value into its events. Errors are for the dead-letter
/// store: they say what is wrong with the message.
pub fn decode_event(value: &[u8]) -> Result<Vec<ObjectEvent>, EventError> {
    let json: serde_json::Value = serde_json::from_slice(value).map_err(EventError::NotJson)?;
    if json.get("Records").is_some() {
        let n: Notification = serde_json::from_value(json).map_err(EventError::NotNotification)?;
        return n
            .records
            .into_iter()
            .map(|r| {
                let url = format!("s3://{}/{}", r.s3.bucket.name, decode_key(&r.s3.object.key)?);
                Ok(if r.event_name.starts_with("ObjectRemoved") {
                    ObjectEvent::Delete { url }
                } else {
                    ObjectEvent::Upsert { url }
                })
            })
            .collect();
    }
    if json.get("url").is_some() {
        let e: UrlEvent = serde_json::from_value(json).map_err(EventError::UrlNotString)?;
        if !e.url.contains("://") {
            return Err(EventError::NotUrl(e.url));
        }
        return Ok(vec![ObjectEvent::Upsert { url: e.url }]);
    }
    Err(EventError::Unknown)
}

/// S3 notifications URL-encode keys, with `+` for a space.
fn decode_key(key: &str) -> Result<String, EventError> {
    percent_encoding::percent_decode_str(&key.replace('+', " "))
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| EventError::KeyNotUtf8(key.to_string()))
}

/// Whether `url` may be fetched: under one of the `allow` prefixes, with no
/// `.` or `..` segment that could climb out of it. The reason when not.
pub fn permitted(url: &str, allow: &[String]) -> Result<(), EventError> {
    let Some((_, rest)) = url.split_once("://") else {
        return Err(EventError::NotUrl(url.to_string()));
    };
    if rest.split('/').skip(1).any(|seg| matches!(seg, "." | "..")) {
        return Err(EventError::DotSegment(url.to_string()));
    }
    if allow.iter().any(|p| url.starts_with(p.as_str())) {
        Ok(())
    } else {
        Err(EventError::NotAllowed {
            url: url.to_string(),
            allow: allow.to_vec(),
        })
    }
}

/// A prefix for `allow`: `scheme://bucket/...`.
pub fn check_prefix(prefix: &str) -> Result<(), EventError> {
    match prefix.split_once("://") {
        Some((scheme, rest)) if !scheme.is_empty() && !rest.is_empty() => {
            if rest.split('/').any(|seg| matches!(seg, "." | "..")) {
                return Err(EventError::DotSegment(prefix.to_string()));
            }
            Ok(())
        }
        _ => Err(EventError::NotPrefix(prefix.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_notifications_become_upserts_and_deletes() {
        let msg = br#"{"Records": [
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "docs/a+b%2Bc.md", "eTag": "x"}}},
            {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "b"}, "object": {"key": "old.txt"}}}
        ]}"#;
        assert_eq!(
            decode_event(msg).unwrap(),
            vec![
                ObjectEvent::Upsert {
                    url: "s3://b/docs/a b+c.md".into()
                },
                ObjectEvent::Delete {
                    url: "s3://b/old.txt".into()
                },
            ]
        );
    }

    #[test]
    fn url_events_and_bad_messages() {
        assert_eq!(
            decode_event(br#"{"url": "s3://b/k.txt"}"#).unwrap(),
            vec![ObjectEvent::Upsert {
                url: "s3://b/k.txt".into()
            }]
        );
        assert!(decode_event(b"{oops")
            .unwrap_err()
            .to_string()
            .starts_with("not JSON"));
        assert!(decode_event(br#"{"url": 3}"#)
            .unwrap_err()
            .to_string()
            .contains("must be a string"));
        assert!(decode_event(br#"{"url": "k.txt"}"#)
            .unwrap_err()
            .to_string()
            .contains("not a URL"));
        assert!(decode_event(br#"{"other": 1}"#)
            .unwrap_err()
            .to_string()
            .contains("neither"));
        assert!(decode_event(br#"{"Records": [{"s3": {}}]}"#).is_err());
    }

    #[test]
    fn only_urls_under_an_allowed_prefix_may_be_fetched() {
        let allow = vec!["s3://docs/incoming/".to_string()];
        assert!(permitted("s3://docs/incoming/a.md", &allow).is_ok());
        for bad in [
            "file:///etc/hostname",
            "s3://docs/private/a.md",
            "s3://other/incoming/a.md",
            "s3://docs/incoming/../private/a.md",
            "http://169.254.169.254/latest/meta-data",
            "no-scheme",
        ] {
            assert!(permitted(bad, &allow).is_err(), "{bad} was permitted");
        }
        assert!(check_prefix("s3://docs/").is_ok());
        assert!(check_prefix("docs/").is_err());
        assert!(check_prefix("s3://docs/../x").is_err());
    }
}
