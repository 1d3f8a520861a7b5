//! The running `files` source.

use std::collections::VecDeque;

use arrow::record_batch::RecordBatch;
use futures::{StreamExt, TryStreamExt};
use globset::GlobSet;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use sluice_connector_sdk::documents::{self, DocumentRow};
use sluice_connector_sdk::{
    ByteSize, ConnectorError, DeadLetter, ListedObject, Result, Source, SourceContext, SourceProgress,
};

use super::config::FilesSourceConfig;
use super::manifest::Manifest;
use super::walk::{walk, Refused};
use crate::location::Location;
use sluice_connector_sdk::detect::content_type;

enum Pending {
    Upsert(ObjectMeta),
    Delete {
        doc_id: String,
        version: String,
    },
    /// Listed but unusable (an odd name, a link out of the folder): a dead letter.
    Refuse {
        doc_id: String,
        version: String,
        error: String,
    },
}

/// Lists a folder, diffs it against the manifest and emits `documents` batches.
pub struct FilesSource {
    config: FilesSourceConfig,
    location: Location,
    include: GlobSet,
    exclude: GlobSet,
    ctx: SourceContext,
    manifest: Manifest,
    pending: VecDeque<Pending>,
    /// When the folder was last listed. The next listing waits for
    /// `poll_interval` after it, however often `next_batch` is cancelled (the
    /// engine drops it at every checkpoint tick; restarting the wait each time
    /// starved the listing when ticks came faster than the poll).
    last_listed: Option<tokio::time::Instant>,
    progress: SourceProgress,
}

impl FilesSource {
    pub fn new(
        config: FilesSourceConfig,
        location: Location,
        include: GlobSet,
        exclude: GlobSet,
        ctx: SourceContext,
    ) -> Self {
        Self {
            config,
            location,
            include,
            exclude,
            ctx,
            manifest: Manifest::default(),
            pending: VecDeque::new(),
            last_listed: None,
            progress: SourceProgress::default(),
        }
    }

    fn doc_id(&self, meta: &ObjectMeta) -> String {
        format!("{}{}", self.location.url, meta.location)
    }

    /// The ETag on a cloud store (it changes on every overwrite); mtime and size
    /// on a local one.
    fn version(&self, meta: &ObjectMeta) -> String {
        match (&meta.e_tag, self.location.remote) {
            (Some(tag), true) => tag.trim_matches('"').to_string(),
            _ => format!("{}-{}", meta.last_modified.timestamp_micros(), meta.size),
        }
    }

    fn relative<'a>(&self, meta: &'a ObjectMeta) -> &'a str {
        let full = meta.location.as_ref();
        let prefix = self.location.prefix.as_ref();
        full.strip_prefix(prefix).unwrap_or(full).trim_start_matches('/')
    }

    /// Watching a local folder, a file modified less than `min_file_age` ago may
    /// still be being written. A modified time in the future counts as settled:
    /// a wrong clock must not hide a file for good.
    fn still_written(&self, meta: &ObjectMeta, now: chrono::DateTime<chrono::Utc>) -> bool {
        let age = now.signed_duration_since(meta.last_modified);
        self.config.watch
            && !self.location.remote
            && age >= chrono::TimeDelta::zero()
            && age.to_std().is_ok_and(|a| a < self.config.min_file_age.0)
    }

    /// Included, not excluded, and in a backfill's prefix and time window.
    fn selected(&self, meta: &ObjectMeta) -> bool {
        self.selected_rel(self.relative(meta))
            && self
                .config
                .window
                .in_window(meta.last_modified.timestamp_millis())
    }

    /// Included, not excluded, and under a backfill's prefix.
    fn selected_rel(&self, rel: &str) -> bool {
        (self.include.is_empty() || self.include.is_match(rel))
            && !self.exclude.is_match(rel)
            && self.config.window.under_prefix(rel)
    }

    /// Every selected object, sorted by path, and the entries that could not be
    /// listed (a local folder only: see [`super::walk`]).
    async fn selected_objects(&self) -> Result<(Vec<ObjectMeta>, Vec<Refused>)> {
        let started = std::time::Instant::now();
        let (mut metas, mut refused) = if self.location.remote {
            let prefix = (!self.location.prefix.as_ref().is_empty()).then_some(&self.location.prefix);
            let metas: Vec<ObjectMeta> = self.location.store.list(prefix).try_collect().await?;
            (metas, Vec::new())
        } else {
            let root = url::Url::parse(&self.location.url)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| {
                    ConnectorError::internal(format!("{} is no local folder", self.location.url))
                })?;
            let follow = self.config.follow_external_links;
            let walked = tokio::task::spawn_blocking(move || walk(&root, follow))
                .await
                .map_err(|e| ConnectorError::internal(format!("listing panicked: {e}")))?
                .map_err(|e| {
                    ConnectorError::external(format!("listing {}", self.location.url)).with_source(e)
                })?;
            (walked.objects, walked.refused)
        };
        tracing::debug!(
            objects = metas.len(),
            refused = refused.len(),
            ms = started.elapsed().as_millis() as u64,
            "listed"
        );
        metas.retain(|m| self.selected(m));
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        refused.retain(|r| self.selected_rel(&r.rel));
        refused.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok((metas, refused))
    }

    /// The selected objects as URLs (their doc_ids) and sizes.
    pub async fn listing(&self) -> Result<Vec<ListedObject>> {
        Ok(self
            .selected_objects()
            .await?
            .0
            .iter()
            .map(|m| ListedObject {
                url: self.doc_id(m),
                size: m.size,
            })
            .collect())
    }

    /// List the folder and queue what changed since the manifest. Cancel-safe: the
    /// queue changes only after the listing completed.
    async fn list_and_enqueue(&mut self) -> Result<()> {
        let (metas, refused) = self.selected_objects().await?;
        let now = chrono::Utc::now();
        let listing = metas
            .into_iter()
            .filter_map(|m| {
                let doc_id = self.doc_id(&m);
                if !self.still_written(&m, now) {
                    return Some((doc_id, self.version(&m), Pending::Upsert(m)));
                }
                // Too fresh to read: a known file keeps its last version (not
                // changed, not deleted), a new one waits for a later poll.
                let last = self.manifest.versions.get(&doc_id)?.clone();
                Some((doc_id, last, Pending::Upsert(m)))
            })
            .chain(refused.into_iter().map(|r| {
                let doc_id = format!("{}{}", self.location.url, r.rel);
                let pending = Pending::Refuse {
                    doc_id: doc_id.clone(),
                    version: r.version.clone(),
                    error: r.error,
                };
                (doc_id, r.version, pending)
            }))
            .collect();
        let diff = self.manifest.diff(listing);
        for item in diff.upserts {
            self.progress.items_total += 1;
            if let Pending::Upsert(meta) = &item {
                self.progress.bytes_total += meta.size;
            }
            self.pending.push_back(item);
        }
        for (doc_id, version) in diff.deletes {
            self.progress.items_total += 1;
            self.pending.push_back(Pending::Delete { doc_id, version });
        }
        Ok(())
    }

    /// Read the head of the queue into rows, up to `read_concurrency` objects at
    /// a time. Returns rows and dead letters; the queue and the manifest are
    /// untouched, so a dropped future loses nothing. A cloud store's failure that
    /// outlasted its retries is an error: the run stops and the next one resumes.
    async fn read_front(&self, n: usize) -> Result<(Vec<DocumentRow>, Vec<DeadLetter>)> {
        let max = self.config.max_file_size;
        // Owned paths and store: the futures must not borrow `self` (async_trait).
        let wanted: Vec<Option<object_store::path::Path>> = (self.pending.iter().take(n))
            .map(|item| match item {
                Pending::Upsert(meta) if meta.size <= max.0 => Some(meta.location.clone()),
                _ => None,
            })
            .collect();
        let store = self.location.store.clone();
        let reads = wanted.into_iter().map(move |path| {
            let store = store.clone();
            async move {
                match path {
                    Some(path) => Some(read(&*store, &path, max.0).await),
                    None => None,
                }
            }
        });
        let results: Vec<_> = futures::stream::iter(reads)
            .buffered(self.config.read_concurrency.max(1))
            .collect()
            .await;
        let mut rows = Vec::with_capacity(n);
        let mut letters = Vec::new();
        for (item, result) in self.pending.iter().zip(results) {
            let meta = match item {
                Pending::Delete { doc_id, version } => {
                    rows.push(DocumentRow::delete(doc_id.clone(), version.clone()));
                    continue;
                }
                Pending::Refuse {
                    doc_id,
                    version,
                    error,
                } => {
                    letters.push(DeadLetter {
                        doc_id: doc_id.clone(),
                        version: version.clone(),
                        stage: "source".into(),
                        error: error.clone(),
                    });
                    continue;
                }
                Pending::Upsert(meta) => meta,
            };
            let doc_id = self.doc_id(meta);
            let version = self.version(meta);
            let Some(result) = result else {
                letters.push(DeadLetter {
                    doc_id,
                    version,
                    stage: "source".into(),
                    error: format!("file is {}, over max_file_size {}", ByteSize(meta.size), max),
                });
                continue;
            };
            match result {
                Ok(None) => letters.push(DeadLetter {
                    doc_id,
                    version,
                    stage: "source".into(),
                    error: format!("file grew over max_file_size {max} after it was listed"),
                }),
                Ok(Some(content)) => {
                    let rel = self.relative(meta);
                    let metadata = match &meta.e_tag {
                        Some(tag) if self.location.remote => {
                            serde_json::json!({ "path": rel, "size": meta.size, "etag": tag.trim_matches('"') })
                        }
                        _ => serde_json::json!({ "path": rel, "size": meta.size }),
                    };
                    rows.push(DocumentRow {
                        content_type: Some(content_type(rel, &content[..content.len().min(512)]).to_string()),
                        doc_id,
                        version,
                        content: Some(content),
                        modified_at: Some(meta.last_modified.timestamp_micros()),
                        metadata: Some(metadata.to_string()),
                    });
                }
                Err(object_store::Error::NotFound { .. }) => {
                    // Vanished between listing and reading: a delete if we ever emitted it.
                    if let Some(v) = self.manifest.versions.get(&doc_id) {
                        rows.push(DocumentRow::delete(doc_id, v.clone()));
                    }
                }
                Err(e) if self.location.remote && !is_refusal(&e) => {
                    return Err(ConnectorError::external(format!("reading {doc_id}")).with_source(e));
                }
                Err(e) => letters.push(DeadLetter {
                    doc_id,
                    version,
                    stage: "source".into(),
                    error: format!("cannot read file: {e}"),
                }),
            }
        }
        Ok((rows, letters))
    }
}

/// An error about this object alone (no access to it), not about the store.
fn is_refusal(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    )
}

/// The object's bytes, or `None` if it is now over `max` bytes: the size is
/// checked again when it is opened, since it may have grown since the listing,
/// and a read never takes more than the size it was opened with.
async fn read(
    store: &dyn ObjectStore,
    path: &object_store::path::Path,
    max: u64,
) -> object_store::Result<Option<Vec<u8>>> {
    let got = store.get(path).await?;
    if got.meta.size > max {
        return Ok(None);
    }
    Ok(Some(got.bytes().await?.to_vec()))
}

#[async_trait::async_trait]
impl Source for FilesSource {
    async fn open(&mut self, state: Option<serde_json::Value>) -> Result<()> {
        if let Some(state) = state {
            self.manifest = serde_json::from_value(state).map_err(|e| {
                ConnectorError::internal("checkpointed manifest does not decode").with_source(e)
            })?;
        }
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if self.pending.is_empty() {
                if let Some(at) = self.last_listed {
                    if !self.config.watch {
                        return Ok(None);
                    }
                    tokio::time::sleep_until(at + self.config.poll_interval.0).await;
                }
                let started = tokio::time::Instant::now();
                self.list_and_enqueue().await?;
                self.last_listed = Some(started);
                continue;
            }
            let n = self.config.batch_size.min(self.pending.len());
            let (rows, letters) = self.read_front(n).await?;
            // Past the last await: commit the step to the queue and the manifest.
            let done: Vec<Pending> = self.pending.drain(..n).collect();
            for item in done {
                self.progress.items_done += 1;
                match item {
                    Pending::Upsert(meta) => {
                        self.progress.bytes_done += meta.size;
                        let version = self.version(&meta);
                        self.manifest.versions.insert(self.doc_id(&meta), version);
                    }
                    Pending::Delete { doc_id, .. } => {
                        self.manifest.versions.remove(&doc_id);
                    }
                    Pending::Refuse { doc_id, version, .. } => {
                        self.manifest.versions.insert(doc_id, version);
                    }
                }
            }
            for r in rows.iter().filter(|r| r.content.is_none()) {
                self.manifest.versions.remove(&r.doc_id);
            }
            for letter in letters {
                self.ctx.dead_letter(letter);
            }
            if rows.is_empty() {
                continue;
            }
            return documents::to_batch(&rows).map(Some);
        }
    }

    fn snapshot(&mut self, _epoch: sluice_connector_sdk::Epoch) -> Result<serde_json::Value> {
        serde_json::to_value(&self.manifest)
            .map_err(|e| ConnectorError::internal("manifest does not encode").with_source(e))
    }

    fn progress(&self) -> Option<SourceProgress> {
        (!self.config.watch).then_some(self.progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_that_grows_after_the_listing_is_not_read_past_max_file_size() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "small").unwrap();
        let config: FilesSourceConfig = serde_json::from_value(serde_json::json!({
            "path": dir.path().to_str().unwrap(),
            "max_file_size": 100,
        }))
        .unwrap();
        let mut source = config.source(&SourceContext::new("p", dir.path())).unwrap();
        source.list_and_enqueue().await.unwrap();
        std::fs::write(dir.path().join("a.txt"), "x".repeat(1000)).unwrap();
        let (rows, letters) = source.read_front(1).await.unwrap();
        assert!(rows.is_empty(), "the grown file was read");
        assert_eq!(letters.len(), 1);
        assert!(
            letters[0].error.contains("grew over max_file_size"),
            "{letters:?}"
        );
    }

    fn set_age(path: &std::path::Path, age: std::time::Duration) {
        let at = std::time::SystemTime::now() - age;
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }

    fn pending(source: &FilesSource) -> Vec<String> {
        let name = |m: &ObjectMeta| m.location.filename().unwrap_or("").to_string();
        (source.pending.iter())
            .map(|p| match p {
                Pending::Upsert(m) => format!("upsert {}", name(m)),
                Pending::Delete { doc_id, .. } => format!("delete {doc_id}"),
                Pending::Refuse { doc_id, .. } => format!("refuse {doc_id}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_watched_file_is_read_only_once_it_stopped_changing() {
        let dir = tempfile::tempdir().unwrap();
        let (old, fresh) = (dir.path().join("old.txt"), dir.path().join("fresh.txt"));
        std::fs::write(&old, "settled").unwrap();
        std::fs::write(&fresh, "").unwrap();
        set_age(&old, std::time::Duration::from_secs(7200));
        let config: FilesSourceConfig = serde_json::from_value(serde_json::json!({
            "path": dir.path().to_str().unwrap(), "watch": true, "min_file_age": "1h",
        }))
        .unwrap();
        let mut source = config.source(&SourceContext::new("p", dir.path())).unwrap();
        source.list_and_enqueue().await.unwrap();
        assert_eq!(pending(&source), ["upsert old.txt"], "a fresh file was read");
        source.next_batch().await.unwrap();
        // The old file is rewritten: it is fresh again, so neither changed nor
        // gone; once it has settled, it is read, and so is the new file.
        std::fs::write(&old, "rewritten").unwrap();
        source.list_and_enqueue().await.unwrap();
        assert_eq!(pending(&source), Vec::<String>::new());
        set_age(&old, std::time::Duration::from_secs(3601));
        set_age(&fresh, std::time::Duration::from_secs(3601));
        source.list_and_enqueue().await.unwrap();
        assert_eq!(pending(&source), ["upsert fresh.txt", "upsert old.txt"]);
    }

    #[tokio::test]
    async fn a_one_shot_run_and_a_future_modified_time_do_not_wait() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("now.txt"), "x").unwrap();
        std::fs::write(dir.path().join("later.txt"), "x").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(86400);
        (std::fs::File::options()
            .write(true)
            .open(dir.path().join("later.txt")))
        .unwrap()
        .set_modified(later)
        .unwrap();
        for (watch, want) in [
            (false, vec!["upsert later.txt", "upsert now.txt"]),
            (true, vec!["upsert later.txt"]),
        ] {
            let config: FilesSourceConfig = serde_json::from_value(serde_json::json!({
                "path": dir.path().to_str().unwrap(), "watch": watch, "min_file_age": "1h",
            }))
            .unwrap();
            let mut source = config.source(&SourceContext::new("p", dir.path())).unwrap();
            source.list_and_enqueue().await.unwrap();
            assert_eq!(pending(&source), want, "watch: {watch}");
        }
    }
}
