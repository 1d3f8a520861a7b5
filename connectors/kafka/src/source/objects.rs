//! Mode `object_events`: each message names objects (S3 notifications or
//! `{"url": ...}`); permitted ones are fetched from their store, in order.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use sluice_connector_sdk::documents::DocumentRow;
use sluice_connector_sdk::location::{resolve_with, StoreOptions};
use sluice_connector_sdk::{ConnectorError, DeadLetter, Result};

use super::decode::{metadata, Received};
use super::KafkaSource;
use crate::events::{decode_event, ObjectEvent};

impl KafkaSource {
    /// The object store holding `url` (`s3://bucket/key`), and the key's path.
    pub(super) fn store_for(
        &mut self,
        url: &str,
    ) -> Result<(Arc<dyn ObjectStore>, object_store::path::Path)> {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let root = format!("{scheme}://{bucket}/");
        if !self.stores.contains_key(&root) {
            let opts = StoreOptions {
                options: self.config.storage_options.clone(),
                max_outage: None,
            };
            let location = resolve_with(&root, &self.ctx.base_dir, false, &opts)?;
            self.stores.insert(root.clone(), location.store);
        }
        let path = object_store::path::Path::parse(key)
            .map_err(|e| ConnectorError::user(format!("`{url}`: bad key: {e}")))?;
        Ok((self.stores[&root].clone(), path))
    }

    /// The rows and dead letters of the inbox's object events: deletes as they
    /// are, upserts fetched (`read_concurrency` at a time), in message order.
    pub(super) async fn object_events(&mut self) -> Result<(Vec<DocumentRow>, Vec<DeadLetter>)> {
        let (slots, fetches, mut letters) = self.plan_events();
        let results = fetch_all(
            fetches,
            self.config.max_message_size.0,
            self.config.read_concurrency,
        )
        .await;
        let mut results = results.into_iter();
        let mut rows = Vec::with_capacity(slots.len());
        for slot in slots {
            let (msg, url) = match slot {
                Slot::Row(row) => {
                    rows.push(row);
                    continue;
                }
                Slot::Fetch { msg, url } => (msg, url),
            };
            let m = &self.inbox[msg];
            match results.next().expect("one result per fetch") {
                Ok((meta, Some(content))) => rows.push(fetched_row(m, url, &meta, content)),
                Ok((meta, None)) => letters.push(m.letter(
                    url,
                    format!("object is {} bytes, over max_message_size", meta.size),
                )),
                Err(object_store::Error::NotFound { .. }) => {
                    letters.push(m.letter(url.clone(), format!("object {url} not found")))
                }
                Err(
                    e @ (object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }),
                ) => letters.push(m.letter(url, format!("cannot read the object: {e}"))),
                Err(e) => {
                    return Err(
                        ConnectorError::external(format!("fetching {url} ({})", m.at())).with_source(e)
                    );
                }
            }
        }
        Ok((rows, letters))
    }

    /// Decode every message: one slot per event, the fetches the upserts need,
    /// and the dead letters of bad messages and refused URLs.
    fn plan_events(&mut self) -> (Vec<Slot>, Vec<Fetch>, Vec<DeadLetter>) {
        let mut slots = Vec::new();
        let mut letters = Vec::new();
        let mut fetches = Vec::new();
        for i in 0..self.inbox.len() {
            let m = &self.inbox[i];
            if let Some(defect) = &m.defect {
                letters.push(m.letter(m.fallback_id(), defect.clone()));
                continue;
            }
            let events = match m.value.as_deref().map(decode_event) {
                Some(Ok(events)) => events,
                Some(Err(e)) => {
                    letters.push(m.letter(m.fallback_id(), format!("bad object event: {e}")));
                    continue;
                }
                None => {
                    letters.push(m.letter(m.fallback_id(), "an object event needs a value".into()));
                    continue;
                }
            };
            let version = m.version();
            for event in events {
                match event {
                    ObjectEvent::Delete { url } => {
                        slots.push(Slot::Row(DocumentRow::delete(url, version.clone())))
                    }
                    ObjectEvent::Upsert { url } => match crate::events::permitted(&url, &self.config.allow)
                        .map_err(|e| ConnectorError::user(e.to_string()))
                        .and_then(|()| self.store_for(&url))
                    {
                        Ok((store, path)) => {
                            fetches.push((store, path));
                            slots.push(Slot::Fetch { msg: i, url });
                        }
                        Err(e) => letters.push(self.inbox[i].letter(url, e.to_string())),
                    },
                }
            }
        }
        (slots, fetches, letters)
    }
}

/// One output slot per event, in message order.
enum Slot {
    Row(DocumentRow),
    Fetch { msg: usize, url: String },
}

type Fetch = (Arc<dyn ObjectStore>, object_store::path::Path);

/// The document row of a fetched object: its ETag as the version (else the
/// message's), its size and ETag in the metadata.
fn fetched_row(m: &Received, url: String, meta: &object_store::ObjectMeta, content: Vec<u8>) -> DocumentRow {
    let mut extra = serde_json::Map::new();
    extra.insert("size".into(), meta.size.into());
    if let Some(tag) = &meta.e_tag {
        extra.insert("etag".into(), tag.trim_matches('"').into());
    }
    DocumentRow {
        content_type: Some(
            sluice_connector_sdk::detect::content_type(&url, &content[..content.len().min(512)]).into(),
        ),
        version: meta
            .e_tag
            .as_deref()
            .map(|t| t.trim_matches('"').to_string())
            .unwrap_or_else(|| m.version()),
        modified_at: Some(meta.last_modified.timestamp_micros()),
        metadata: Some(metadata(m, extra)),
        content: Some(content),
        doc_id: url,
    }
}

type Fetched = object_store::Result<(object_store::ObjectMeta, Option<Vec<u8>>)>;

/// Fetch every object, `concurrency` at a time, in order; an object over `max`
/// bytes comes back without its content. (Boxed: the future must be provably
/// `Send` for `async_trait`.)
fn fetch_all(fetches: Vec<Fetch>, max: u64, concurrency: usize) -> BoxFuture<'static, Vec<Fetched>> {
    Box::pin(
        futures::stream::iter(fetches)
            .map(move |(store, path)| async move {
                let got = store.get(&path).await?;
                let meta = got.meta.clone();
                if meta.size > max {
                    return Ok((meta, None));
                }
                Ok((meta, Some(got.bytes().await?.to_vec())))
            })
            .buffered(concurrency.max(1))
            .collect(),
    )
}
