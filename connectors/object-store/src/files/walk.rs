//! Listing a local folder so that no single entry can stop the listing.
//!
//! object_store's local listing fails as a whole on the first odd entry (a name
//! that is not UTF-8 or holds a control character, a symbolic-link loop, a
//! sub-folder it may not read), and it follows every symbolic link, out of the
//! folder too. This walk lists what it can; every entry it cannot list becomes a
//! [`Refused`] entry that the source turns into a dead letter. Only a root that
//! cannot be read at all is an error.
//!
//! Symbolic links are followed while their target stays inside the root (after
//! resolving every link on the way); a link out of it is refused unless the
//! source sets `follow_external_links`. A folder is listed once, however many
//! links lead to it, so loops end.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use object_store::path::Path as ObjectPath;
use object_store::ObjectMeta;
use url::Url;

/// An entry that could not be listed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Its path inside the root, `/`-separated, with odd bytes replaced.
    pub rel: String,
    /// Changes when the entry changes (mtime and size, where they can be read),
    /// so the same refusal is not reported on every listing.
    pub version: String,
    pub error: String,
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Walked {
    pub objects: Vec<ObjectMeta>,
    pub refused: Vec<Refused>,
}

struct Walker<'a> {
    root: &'a Path,
    root_url: Url,
    follow_external: bool,
    visited: HashSet<PathBuf>,
    out: Walked,
}

/// List every file under `root` (a canonical folder path).
pub fn walk(root: &Path, follow_external: bool) -> std::io::Result<Walked> {
    let root_url = Url::from_directory_path(root)
        .map_err(|_| std::io::Error::other(format!("{} is not an absolute path", root.display())))?;
    let mut w = Walker {
        root,
        root_url,
        follow_external,
        visited: HashSet::from([root.to_path_buf()]),
        out: Walked::default(),
    };
    // The root itself must be readable: that is the system's fault, not a document's.
    let first = fs::read_dir(root)?;
    let mut stack = vec![(root.to_path_buf(), Some(first))];
    while let Some((dir, listed)) = stack.pop() {
        let entries = match listed.map_or_else(|| fs::read_dir(&dir), Ok) {
            Ok(entries) => entries,
            Err(e) => {
                w.refuse(&dir, None, format!("cannot list the folder: {e}"));
                continue;
            }
        };
        for entry in entries {
            match entry {
                Ok(entry) => {
                    if let Some(sub) = w.entry(&entry.path()) {
                        stack.push((sub, None));
                    }
                }
                Err(e) => {
                    w.refuse(&dir, None, format!("cannot list the folder: {e}"));
                    break;
                }
            }
        }
    }
    Ok(w.out)
}

impl Walker<'_> {
    /// Handle one entry; a folder to list comes back.
    fn entry(&mut self, path: &Path) -> Option<PathBuf> {
        let own = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.refuse(path, None, format!("cannot read the entry: {e}"));
                return None;
            }
        };
        let meta = if own.file_type().is_symlink() {
            let target = match fs::canonicalize(path) {
                Ok(t) => t,
                Err(e) => {
                    self.refuse(path, Some(&own), format!("broken symbolic link: {e}"));
                    return None;
                }
            };
            if !self.follow_external && !target.starts_with(self.root) {
                let error = format!(
                    "symbolic link to {}, outside the source folder (set follow_external_links: true to read it)",
                    target.display()
                );
                self.refuse(path, Some(&own), error);
                return None;
            }
            match fs::metadata(&target) {
                Ok(m) => m,
                Err(e) => {
                    self.refuse(path, Some(&own), format!("cannot read the link's target: {e}"));
                    return None;
                }
            }
        } else {
            own
        };
        if meta.is_dir() {
            let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            if self.visited.insert(canonical) {
                return Some(path.to_path_buf());
            }
            let error = "symbolic link to a folder that is listed already (a loop, or a second path to it)";
            self.refuse(path, Some(&meta), error.into());
            return None;
        }
        // Sockets, FIFOs and devices are no documents (reading a FIFO blocks).
        if !meta.is_file() {
            return None;
        }
        match self.object_path(path) {
            Ok(location) if is_upload_leftover(&location) => {}
            Ok(location) => self.out.objects.push(ObjectMeta {
                location,
                last_modified: meta
                    .modified()
                    .map(Into::into)
                    .unwrap_or_else(|_| chrono::DateTime::<chrono::Utc>::UNIX_EPOCH),
                size: meta.len(),
                e_tag: None,
                version: None,
            }),
            Err(e) => self.refuse(path, Some(&meta), format!("the file name cannot be used: {e}")),
        }
        None
    }

    /// The object path object_store's local store gives `path` (so its reads
    /// find it, and doc_ids stay what they were).
    fn object_path(&self, path: &Path) -> Result<ObjectPath, NameError> {
        let url = Url::from_file_path(path).map_err(|_| NameError::NotAbsolute)?;
        let rel = url
            .path()
            .strip_prefix(self.root_url.path())
            .ok_or(NameError::Outside)?;
        Ok(ObjectPath::from_url_path(rel)?)
    }

    fn refuse(&mut self, path: &Path, meta: Option<&fs::Metadata>, error: String) {
        let rel = path.strip_prefix(self.root).unwrap_or(path);
        let rel = rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
        let version = match meta {
            Some(m) => {
                let mtime = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_micros())
                    .unwrap_or(0);
                format!("refused-{mtime}-{}", m.len())
            }
            None => "refused".into(),
        };
        self.out.refused.push(Refused { rel, version, error });
    }
}

/// object_store's local store hides `name#<digits>` files (its own unfinished
/// uploads); so does this listing, to list exactly what it did.
fn is_upload_leftover(path: &ObjectPath) -> bool {
    path.filename()
        .and_then(|f| f.rsplit_once('#'))
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Why a file's name cannot be an object path (the file is a dead letter).
#[derive(Debug, thiserror::Error)]
enum NameError {
    #[error("not an absolute path")]
    NotAbsolute,
    #[error("outside the source folder")]
    Outside,
    #[error(transparent)]
    Path(#[from] object_store::path::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn rels(w: &Walked) -> Vec<String> {
        let mut v: Vec<String> = w.objects.iter().map(|m| m.location.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn odd_entries_are_refused_one_by_one_and_the_rest_is_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret.txt"), "secret").unwrap();
        fs::create_dir_all(root.join("sub/inner")).unwrap();
        fs::write(root.join("a.md"), "a").unwrap();
        fs::write(root.join("my doc [1].md"), "b").unwrap();
        fs::write(root.join("sub/inner/c.txt"), "c").unwrap();
        fs::write(root.join("bell\u{7}.txt"), "control character").unwrap();
        fs::write(
            root.join(std::ffi::OsStr::from_bytes(b"bad-\xff.txt")),
            "not UTF-8",
        )
        .unwrap();
        symlink(root.join("a.md"), root.join("link-inside.md")).unwrap();
        symlink(outside.path().join("secret.txt"), root.join("link-out.txt")).unwrap();
        symlink(&root, root.join("sub/loop")).unwrap();
        symlink(root.join("nowhere"), root.join("dangling.txt")).unwrap();
        fs::create_dir(root.join("locked")).unwrap();
        fs::write(root.join("locked/x.txt"), "x").unwrap();
        fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
        let root_user = fs::read_dir(root.join("locked")).is_ok();

        let w = walk(&root, false).unwrap();
        fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
        let mut want: Vec<String> = ["a.md", "link-inside.md", "my doc [1].md", "sub/inner/c.txt"]
            .into_iter()
            .chain(root_user.then_some("locked/x.txt"))
            .map(String::from)
            .collect();
        want.sort();
        assert_eq!(rels(&w), want);
        let mut refused: Vec<(&str, &str)> = w
            .refused
            .iter()
            .map(|r| (r.rel.as_str(), r.error.as_str()))
            .collect();
        refused.sort();
        let find = |rel: &str| refused.iter().find(|(r, _)| *r == rel).map(|(_, e)| *e);
        assert!(
            find("bell\u{7}.txt").unwrap().contains("file name"),
            "{refused:?}"
        );
        assert!(
            find("bad-\u{fffd}.txt").unwrap().contains("file name"),
            "{refused:?}"
        );
        assert!(
            find("link-out.txt")
                .unwrap()
                .contains("outside the source folder"),
            "{refused:?}"
        );
        assert!(
            find("sub/loop").unwrap().contains("listed already"),
            "{refused:?}"
        );
        assert!(
            find("dangling.txt").unwrap().contains("broken symbolic link"),
            "{refused:?}"
        );
        if !root_user {
            assert!(
                find("locked").unwrap().contains("cannot list the folder"),
                "{refused:?}"
            );
        }

        // With the key set, the link out is read.
        let w = walk(&root, true).unwrap();
        assert!(rels(&w).contains(&"link-out.txt".to_string()));
    }

    #[test]
    fn an_unreadable_root_is_an_error() {
        assert!(walk(Path::new("/no/such/folder"), false).is_err());
    }
}
