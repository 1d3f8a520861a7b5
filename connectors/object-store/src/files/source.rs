//! The running `files` source.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{ArrayRef, LargeBinaryBuilder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use globset::GlobSet;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use sluice_connector_sdk::documents::{self, OP_DELETE, OP_UPSERT};
use sluice_connector_sdk::{
    ByteSize, ConnectorError, DeadLetter, Result, Source, SourceContext, SourceProgress,
};

use super::config::FilesSourceConfig;
use super::detect::content_type;
use super::manifest::Manifest;
use crate::location::Location;

enum Pending {
    Upsert(ObjectMeta),
    Delete { doc_id: String, version: String },
}

/// One row of the `documents` batch being built.
struct Row {
    doc_id: String,
    version: String,
    content: Option<Vec<u8>>,
    content_type: Option<&'static str>,
    modified_at: Option<i64>,
    metadata: Option<String>,
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
    listed: bool,
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
            listed: false,
            progress: SourceProgress::default(),
        }
    }

    fn doc_id(&self, meta: &ObjectMeta) -> String {
        format!("{}{}", self.location.url, meta.location)
    }

    fn version(meta: &ObjectMeta) -> String {
        format!("{}-{}", meta.last_modified.timestamp_micros(), meta.size)
    }

    fn relative<'a>(&self, meta: &'a ObjectMeta) -> &'a str {
        let full = meta.location.as_ref();
        let prefix = self.location.prefix.as_ref();
        full.strip_prefix(prefix).unwrap_or(full).trim_start_matches('/')
    }

    fn selected(&self, meta: &ObjectMeta) -> bool {
        let rel = self.relative(meta);
        (self.include.is_empty() || self.include.is_match(rel)) && !self.exclude.is_match(rel)
    }

    /// List the folder and queue what changed since the manifest. Cancel-safe: the
    /// queue changes only after the listing completed.
    async fn list_and_enqueue(&mut self) -> Result<()> {
        let prefix = (!self.location.prefix.as_ref().is_empty()).then_some(&self.location.prefix);
        let mut metas: Vec<ObjectMeta> = self.location.store.list(prefix).try_collect().await?;
        metas.retain(|m| self.selected(m));
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        let listing = metas
            .into_iter()
            .map(|m| (self.doc_id(&m), Self::version(&m), m))
            .collect();
        let diff = self.manifest.diff(listing);
        for meta in diff.upserts {
            self.progress.items_total += 1;
            self.progress.bytes_total += meta.size;
            self.pending.push_back(Pending::Upsert(meta));
        }
        for (doc_id, version) in diff.deletes {
            self.progress.items_total += 1;
            self.pending.push_back(Pending::Delete { doc_id, version });
        }
        Ok(())
    }

    /// Read the head of the queue into rows. Returns rows and dead letters; the
    /// queue and the manifest are untouched, so a dropped future loses nothing.
    async fn read_front(&self, n: usize) -> (Vec<Row>, Vec<DeadLetter>) {
        let max = self.config.max_file_size;
        let mut rows = Vec::with_capacity(n);
        let mut letters = Vec::new();
        for item in self.pending.iter().take(n) {
            let meta = match item {
                Pending::Delete { doc_id, version } => {
                    rows.push(Row::delete(doc_id.clone(), version.clone()));
                    continue;
                }
                Pending::Upsert(meta) => meta,
            };
            let doc_id = self.doc_id(meta);
            let version = Self::version(meta);
            if meta.size > max.0 {
                letters.push(DeadLetter {
                    doc_id,
                    version,
                    stage: "source".into(),
                    error: format!("file is {}, over max_file_size {}", ByteSize(meta.size), max),
                });
                continue;
            }
            match read(&*self.location.store, meta).await {
                Ok(content) => {
                    let rel = self.relative(meta);
                    let metadata = serde_json::json!({ "path": rel, "size": meta.size });
                    rows.push(Row {
                        content_type: Some(content_type(rel, &content[..content.len().min(512)])),
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
                        rows.push(Row::delete(doc_id, v.clone()));
                    }
                }
                Err(e) => letters.push(DeadLetter {
                    doc_id,
                    version,
                    stage: "source".into(),
                    error: format!("cannot read file: {e}"),
                }),
            }
        }
        (rows, letters)
    }
}

async fn read(store: &dyn ObjectStore, meta: &ObjectMeta) -> object_store::Result<Vec<u8>> {
    Ok(store.get(&meta.location).await?.bytes().await?.to_vec())
}

impl Row {
    fn delete(doc_id: String, version: String) -> Self {
        Row {
            doc_id,
            version,
            content: None,
            content_type: None,
            modified_at: None,
            metadata: None,
        }
    }
}

fn to_batch(rows: &[Row]) -> Result<RecordBatch> {
    let mut doc_id = StringBuilder::new();
    let mut version = StringBuilder::new();
    let mut op = StringBuilder::new();
    let mut content = LargeBinaryBuilder::new();
    let mut ctype = StringBuilder::new();
    let mut modified = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut metadata = StringBuilder::new();
    for r in rows {
        doc_id.append_value(&r.doc_id);
        version.append_value(&r.version);
        op.append_value(if r.content.is_some() { OP_UPSERT } else { OP_DELETE });
        content.append_option(r.content.as_deref());
        ctype.append_option(r.content_type);
        modified.append_option(r.modified_at);
        metadata.append_option(r.metadata.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(doc_id.finish()),
        Arc::new(version.finish()),
        Arc::new(op.finish()),
        Arc::new(content.finish()),
        Arc::new(ctype.finish()),
        Arc::new(modified.finish()),
        Arc::new(metadata.finish()),
    ];
    Ok(RecordBatch::try_new(documents::schema(), columns)?)
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
                if self.listed && !self.config.watch {
                    return Ok(None);
                }
                if self.listed {
                    tokio::time::sleep(self.config.poll_interval.0).await;
                }
                self.list_and_enqueue().await?;
                self.listed = true;
                continue;
            }
            let n = self.config.batch_size.min(self.pending.len());
            let (rows, letters) = self.read_front(n).await;
            // Past the last await: commit the step to the queue and the manifest.
            for item in self.pending.drain(..n) {
                self.progress.items_done += 1;
                match item {
                    Pending::Upsert(meta) => {
                        self.progress.bytes_done += meta.size;
                        let id = format!("{}{}", self.location.url, meta.location);
                        self.manifest.versions.insert(id, Self::version(&meta));
                    }
                    Pending::Delete { doc_id, .. } => {
                        self.manifest.versions.remove(&doc_id);
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
            return to_batch(&rows).map(Some);
        }
    }

    fn snapshot(&mut self) -> Result<serde_json::Value> {
        serde_json::to_value(&self.manifest)
            .map_err(|e| ConnectorError::internal("manifest does not encode").with_source(e))
    }

    fn progress(&self) -> Option<SourceProgress> {
        (!self.config.watch).then_some(self.progress)
    }
}
