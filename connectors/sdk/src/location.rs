//! A local path or URL, resolved to an object store and the prefix inside it.
//!
//! Local folders and `file://` URLs use the local file system. `s3://`, `gs://`
//! and `az://` (also `abfs://`) build a cloud store from the environment first
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`, and each cloud's standard credential chain),
//! then from `storage_options` (object_store's keys, such as `endpoint`, `region`,
//! `access_key_id`), so an S3-compatible server needs only an `endpoint`.

use std::collections::BTreeMap;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use crate::{ConnectorError, Result};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, RetryConfig};
use url::Url;

/// Where a connector reads or writes.
#[derive(Debug, Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The URL that object paths are appended to, ending in `/`: the folder for a
    /// local store (`file:///abs/out/`, paths relative to it), the bucket for a
    /// cloud store (`s3://bucket/`, paths are whole keys).
    pub url: String,
    /// A cloud store (versions are ETags; reads go over the network).
    pub remote: bool,
}

/// How a cloud store is reached, beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// object_store configuration keys and values.
    pub options: BTreeMap<String, String>,
    /// How long to keep retrying a failing request (object_store's retry timeout).
    pub max_outage: Option<Duration>,
}

/// The cloud schemes this build understands.
pub const CLOUD_SCHEMES: &[&str] = &["s3", "s3a", "gs", "az", "abfs", "abfss", "azure"];

/// The scheme of `spec` when it is a URL other than `file://`.
pub fn cloud_scheme(spec: &str) -> Option<&str> {
    let (scheme, _) = spec.split_once("://")?;
    (scheme != "file").then_some(scheme)
}

/// Resolve `spec` (a path relative to `base_dir`, an absolute path, or a URL).
/// A local folder is created when `create` is set.
pub fn resolve(spec: &str, base_dir: &FsPath, create: bool) -> Result<Location> {
    resolve_with(spec, base_dir, create, &StoreOptions::default())
}

/// [`resolve`], with options for a cloud store.
pub fn resolve_with(spec: &str, base_dir: &FsPath, create: bool, opts: &StoreOptions) -> Result<Location> {
    if cloud_scheme(spec).is_some() {
        return cloud(spec, opts);
    }
    let path = match spec.strip_prefix("file://") {
        Some(p) => FsPath::new(p).to_path_buf(),
        None => base_dir.join(spec),
    };
    if create {
        std::fs::create_dir_all(&path).map_err(|e| {
            ConnectorError::user(format!("cannot create folder {}", path.display())).with_source(e)
        })?;
    }
    let path = std::fs::canonicalize(&path).map_err(|e| {
        ConnectorError::user(format!("folder {} does not exist", path.display())).with_source(e)
    })?;
    if !path.is_dir() {
        return Err(ConnectorError::user(format!(
            "{} is not a folder",
            path.display()
        )));
    }
    let store = LocalFileSystem::new_with_prefix(&path)?;
    let url = Url::from_directory_path(&path)
        .map_err(|_| ConnectorError::internal(format!("{} is not absolute", path.display())))?;
    Ok(Location {
        store: Arc::new(store),
        prefix: Path::default(),
        url: url.to_string(),
        remote: false,
    })
}

/// Check a cloud URL (the config key `path_key`) and its `storage_options`
/// without connecting: every problem, under the key to blame.
pub fn check_cloud(spec: &str, path_key: &'static str, opts: &StoreOptions) -> Vec<crate::ConfigIssue> {
    let scheme = Url::parse(spec)
        .map(|u| u.scheme().to_string())
        .unwrap_or_default();
    let unknown: Vec<crate::ConfigIssue> = opts
        .options
        .keys()
        .filter(|k| !option_known(&scheme, k))
        .map(|k| crate::ConfigIssue::new(Some("storage_options"), unknown_option(&scheme, k).to_string()))
        .collect();
    if !unknown.is_empty() && CLOUD_SCHEMES.contains(&scheme.as_str()) {
        return unknown;
    }
    match cloud(spec, opts) {
        Ok(_) => Vec::new(),
        Err(e) => vec![crate::ConfigIssue::new(Some(path_key), e.to_string())],
    }
}

/// Whether the store of `scheme` knows the option `key`.
fn option_known(scheme: &str, key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    match scheme {
        "s3" | "s3a" => key.parse::<object_store::aws::AmazonS3ConfigKey>().is_ok(),
        "gs" => key.parse::<object_store::gcp::GoogleConfigKey>().is_ok(),
        "az" | "abfs" | "abfss" | "azure" => key.parse::<object_store::azure::AzureConfigKey>().is_ok(),
        _ => true,
    }
}

fn unknown_option(scheme: &str, key: &str) -> ConnectorError {
    ConnectorError::user(format!(
        "storage option `{key}` is not known to the {scheme}:// store"
    ))
}

fn cloud(spec: &str, opts: &StoreOptions) -> Result<Location> {
    let url = Url::parse(spec).map_err(|e| ConnectorError::user(format!("`{spec}` is not a URL: {e}")))?;
    let scheme = url.scheme().to_string();
    let Some(bucket) = url.host_str().filter(|h| !h.is_empty()).map(str::to_string) else {
        return Err(ConnectorError::user(format!("`{spec}` names no bucket")));
    };
    let mut retry = RetryConfig::default();
    if let Some(t) = opts.max_outage {
        retry.retry_timeout = t;
        retry.max_retries = retry.max_retries.max(100);
    }
    // A plain-HTTP endpoint (an S3-compatible server on the LAN, a test server)
    // needs allow_http; saying `http://` is taken as asking for it.
    let env_endpoint = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .any(|v| v.starts_with("http://"));
    let http_endpoint = env_endpoint
        || opts
            .options
            .iter()
            .any(|(k, v)| k.contains("endpoint") && v.starts_with("http://"));
    let unknown = |k: &str| unknown_option(&scheme, k);
    let store: Arc<dyn ObjectStore> = match scheme.as_str() {
        "s3" | "s3a" => {
            use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
            let mut b = AmazonS3Builder::from_env().with_url(spec).with_retry(retry);
            for (k, v) in &opts.options {
                let key: AmazonS3ConfigKey = k.to_ascii_lowercase().parse().map_err(|_| unknown(k))?;
                b = b.with_config(key, v);
            }
            if http_endpoint {
                b = b.with_allow_http(true);
            }
            Arc::new(b.build()?)
        }
        "gs" => {
            use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
            let mut b = GoogleCloudStorageBuilder::from_env()
                .with_url(spec)
                .with_retry(retry);
            for (k, v) in &opts.options {
                let key: GoogleConfigKey = k.to_ascii_lowercase().parse().map_err(|_| unknown(k))?;
                b = b.with_config(key, v);
            }
            Arc::new(b.build()?)
        }
        "az" | "abfs" | "abfss" | "azure" => {
            use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
            let mut b = MicrosoftAzureBuilder::from_env().with_url(spec).with_retry(retry);
            for (k, v) in &opts.options {
                let key: AzureConfigKey = k.to_ascii_lowercase().parse().map_err(|_| unknown(k))?;
                b = b.with_config(key, v);
            }
            if http_endpoint {
                b = b.with_allow_http(true);
            }
            Arc::new(b.build()?)
        }
        other => {
            return Err(ConnectorError::user(format!(
                "`{spec}`: the {other}:// scheme is not supported; use a local path, file://, or one of {}",
                CLOUD_SCHEMES.join("://, ")
            )))
        }
    };
    let prefix = Path::parse(url.path().trim_matches('/'))
        .map_err(|e| ConnectorError::user(format!("`{spec}`: bad path: {e}")))?;
    Ok(Location {
        store,
        prefix,
        url: format!("{scheme}://{bucket}/"),
        remote: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(spec: &str, options: &[(&str, &str)]) -> Vec<(Option<String>, String)> {
        let opts = StoreOptions {
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            max_outage: None,
        };
        check_cloud(spec, "path", &opts)
            .into_iter()
            .map(|i| (i.key, i.message))
            .collect()
    }

    /// The key to blame comes from what was checked, not from the message.
    #[test]
    fn an_unknown_storage_option_blames_storage_options_and_a_bad_url_the_path() {
        let found = keys("s3://bucket/docs", &[("region", "us-east-1"), ("colour", "blue")]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0.as_deref(), Some("storage_options"));
        assert!(
            found[0].1.contains("`colour` is not known to the s3:// store"),
            "{found:?}"
        );

        let found = keys("ftp://bucket/docs", &[]);
        assert_eq!(found[0].0.as_deref(), Some("path"), "{found:?}");
        assert!(keys("s3://bucket/docs", &[("region", "us-east-1")]).is_empty());
    }
}
