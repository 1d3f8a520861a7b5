//! A local path or URL, resolved to an object store and the prefix inside it.

use std::path::Path as FsPath;
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;
use sluice_connector_sdk::{ConnectorError, Result};
use url::Url;

/// Where a connector reads or writes.
#[derive(Debug, Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The folder as a URL, ending in `/`, e.g. `file:///abs/out/`.
    pub url: String,
}

/// Resolve `spec` (a path relative to `base_dir`, an absolute path, or a URL).
/// A local folder is created when `create` is set.
pub fn resolve(spec: &str, base_dir: &FsPath, create: bool) -> Result<Location> {
    if spec.contains("://") && !spec.starts_with("file://") {
        let scheme = spec.split("://").next().unwrap_or_default();
        return Err(ConnectorError::user(format!(
            "`{spec}`: the {scheme}:// scheme is not built into this sluice; local paths and file:// URLs are"
        )));
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
    })
}
