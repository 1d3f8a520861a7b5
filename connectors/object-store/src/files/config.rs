//! Configuration of the `files` source.

use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use sluice_connector_sdk::{
    ByteSize, ConfigIssue, ConnectorError, HumanDuration, PlanContext, Result, Source, SourceConfig,
    SourceContext,
};

use super::FilesSource;

/// ```yaml
/// source:
///   type: files
///   path: ./data            # folder, relative to the pipeline file, or file:// URL
///   include: ["**/*.md"]    # globs on the path inside the folder; default: everything
///   exclude: ["drafts/**"]
///   max_file_size: 20MB     # larger files go to the dead-letter store
///   watch: false            # true: list again every poll_interval, forever
///   poll_interval: 2s
///   batch_size: 16          # documents per batch
/// ```
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
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

fn default_max_file_size() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_poll_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(2))
}
fn default_batch_size() -> usize {
    16
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
        if self.path.contains("://") && !self.path.starts_with("file://") {
            issues.push(
                ConfigIssue::new(
                    Some("path"),
                    format!(
                        "`{}`: only local folders and file:// URLs are built in",
                        self.path
                    ),
                )
                .with_hint("object-store URLs such as s3:// arrive with the S3 connector"),
            );
        } else {
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
        let location = crate::location::resolve(&self.path, &ctx.base_dir, false)?;
        let include = glob_set(&self.include).map_err(|e| ConnectorError::user(e.to_string()))?;
        let exclude = glob_set(&self.exclude).map_err(|e| ConnectorError::user(e.to_string()))?;
        Ok(Box::new(FilesSource::new(
            self.clone(),
            location,
            include,
            exclude,
            ctx.clone(),
        )))
    }
}
