//! Configuration of the `files` source.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use sluice_connector_sdk::{
    BackfillOptions, ByteSize, ConfigIssue, ConnectorError, HumanDuration, ListedObject, PlanContext, Result,
    Source, SourceConfig, SourceContext,
};

use super::FilesSource;
use crate::location::{check_cloud, cloud_scheme, resolve_with, StoreOptions};

/// ```yaml
/// source:
///   type: files
///   path: ./data            # folder, relative to the pipeline file, a file:// URL,
///                           # or s3://bucket/prefix, gs://bucket/prefix, az://container/prefix
///   include: ["**/*.md"]    # globs on the path inside the folder; default: everything
///   exclude: ["drafts/**"]
///   max_file_size: 20MB     # larger files go to the dead-letter store
///   watch: false            # true: list again every poll_interval, forever
///   poll_interval: 2s
///   min_file_age: 1s        # watch, local folders: a file modified less than this
///                           # long ago is still being written; a later poll reads it
///   batch_size: 16          # documents per batch
///   read_concurrency: 8     # objects read at once
///   follow_external_links: false  # local folders: read symbolic links that
///                           # lead out of the folder (refused by default)
///   storage_options:        # cloud stores: object_store keys, over the AWS_*/GOOGLE_*/AZURE_* env
///     endpoint: http://127.0.0.1:9000
///   max_outage: 60s         # cloud stores: how long to retry a failing request
/// ```
///
/// On a cloud store the version is the ETag; locally it is mtime and size.
#[derive(Debug, Clone, Deserialize)]
pub struct FilesSourceConfig {
    pub path: String,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default = "default_max_file_size")]
    pub max_file_size: ByteSize,
    #[serde(default)]
    pub watch: bool,
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// Watching a local folder: how long a file must have been left unmodified
    /// before it is read. A writer that creates a file and then fills it would
    /// otherwise be read half-written (an empty or cut document, a dead letter).
    /// A one-shot run reads everything, whatever its age; a cloud store's object
    /// appears whole, so its age is not looked at.
    #[serde(default = "default_min_file_age")]
    pub min_file_age: HumanDuration,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_read_concurrency")]
    pub read_concurrency: usize,
    #[serde(default)]
    pub storage_options: BTreeMap<String, String>,
    #[serde(default = "default_max_outage")]
    pub max_outage: HumanDuration,
    #[serde(default)]
    pub follow_external_links: bool,
    /// Set by `sluice backfill`, never from YAML: the prefix and modified-time
    /// window objects must fall in.
    #[serde(skip)]
    pub window: BackfillOptions,
}

fn default_max_file_size() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_poll_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(2))
}
fn default_min_file_age() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_batch_size() -> usize {
    16
}
fn default_read_concurrency() -> usize {
    8
}
fn default_max_outage() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

impl FilesSourceConfig {
    fn store_options(&self) -> StoreOptions {
        StoreOptions {
            options: self.storage_options.clone(),
            max_outage: Some(self.max_outage.0),
        }
    }
}

pub(super) fn glob_set(patterns: &[String]) -> std::result::Result<GlobSet, globset::Error> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p)?);
    }
    b.build()
}

impl SourceConfig for FilesSourceConfig {
    /// Forget the versions of `doc_ids` in the manifest: the next listing sees
    /// them as changed (or as deleted, if the files are gone).
    fn replay(&self, state: serde_json::Value, doc_ids: &[String]) -> Result<serde_json::Value> {
        let mut manifest: super::manifest::Manifest = serde_json::from_value(state)
            .map_err(|e| ConnectorError::internal("checkpointed manifest does not decode").with_source(e))?;
        for id in doc_ids {
            if let Some(v) = manifest.versions.get_mut(id) {
                v.clear();
            }
        }
        serde_json::to_value(&manifest)
            .map_err(|e| ConnectorError::internal("manifest does not encode").with_source(e))
    }

    fn validate(&self, ctx: &PlanContext) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        for (key, patterns) in [("include", &self.include), ("exclude", &self.exclude)] {
            for p in patterns {
                if let Err(e) = Glob::new(p) {
                    issues.push(ConfigIssue::new(Some(key), format!("bad glob `{p}`: {e}")));
                }
            }
        }
        if self.batch_size == 0 {
            issues.push(ConfigIssue::new(Some("batch_size"), "must be at least 1"));
        }
        if self.max_file_size.0 == 0 {
            issues.push(ConfigIssue::new(Some("max_file_size"), "must be more than 0"));
        }
        if self.read_concurrency == 0 {
            issues.push(ConfigIssue::new(Some("read_concurrency"), "must be at least 1"));
        }
        if cloud_scheme(&self.path).is_some() {
            for issue in check_cloud(&self.path, "path", &self.store_options()) {
                issues.push(
                    issue.with_hint(
                        "credentials come from AWS_*/GOOGLE_*/AZURE_* variables or storage_options",
                    ),
                );
            }
        } else {
            if !self.storage_options.is_empty() {
                issues.push(ConfigIssue::new(
                    Some("storage_options"),
                    "storage_options apply to s3://, gs:// and az:// paths only",
                ));
            }
            let local = self.path.strip_prefix("file://").unwrap_or(&self.path);
            let folder = ctx.resolve(local);
            if !folder.is_dir() {
                let what = if folder.exists() {
                    "is not a folder"
                } else {
                    "does not exist"
                };
                issues.push(
                    ConfigIssue::new(Some("path"), format!("folder `{local}` {what}"))
                        .with_hint("relative paths resolve against the pipeline file's folder"),
                );
            }
        }
        issues
    }

    fn build(&self, ctx: &SourceContext) -> Result<Box<dyn Source>> {
        Ok(Box::new(self.source(ctx)?))
    }

    fn backfill(&self, options: &BackfillOptions) -> Result<Box<dyn SourceConfig>> {
        if options.from_beginning {
            return Err(ConnectorError::user(
                "--from-beginning applies to Kafka sources; a files source always lists everything",
            ));
        }
        let mut bounded = self.clone();
        bounded.watch = false;
        if let Some(n) = options.concurrency {
            if n == 0 {
                return Err(ConnectorError::user("--concurrency must be at least 1"));
            }
            bounded.read_concurrency = n;
        }
        bounded.window = options.clone();
        Ok(Box::new(bounded))
    }

    fn list(&self, ctx: &SourceContext) -> Option<BoxFuture<'static, Result<Vec<ListedObject>>>> {
        let source = self.source(ctx);
        Some(Box::pin(async move { source?.listing().await }))
    }
}

impl FilesSourceConfig {
    pub(super) fn source(&self, ctx: &SourceContext) -> Result<FilesSource> {
        let location = resolve_with(&self.path, &ctx.base_dir, false, &self.store_options())?;
        let include = glob_set(&self.include).map_err(|e| ConnectorError::user(e.to_string()))?;
        let exclude = glob_set(&self.exclude).map_err(|e| ConnectorError::user(e.to_string()))?;
        Ok(FilesSource::new(
            self.clone(),
            location,
            include,
            exclude,
            ctx.clone(),
        ))
    }
}
