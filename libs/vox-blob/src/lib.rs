//! Object storage for recordings and prompts.
//!
//! [`BlobStore`] is what the fleet writes recordings to and reads prompts from, and what
//! voxbridge lists, checks and hands out playback URLs for. The embedded default is
//! [`LocalDirStore`], a directory; `vox-blob-s3` is the production one (S3, MinIO,
//! RustFS), chosen per region by the region's storage settings. Every implementation
//! passes [`conformance`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use vox_domain::{Error, Result};

pub mod conformance;

/// What a stored object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub size_bytes: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
}

#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Stores the file at `path` under `key`, whole or not at all; replaces an existing one.
    async fn put_file(&self, key: &str, path: &Path) -> Result<BlobInfo>;
    async fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<BlobInfo>;
    /// NotFound when there is no such object.
    async fn get(&self, key: &str) -> Result<Vec<u8>>;
    async fn head(&self, key: &str) -> Result<Option<BlobInfo>>;
    /// Deleting what is not there succeeds.
    async fn delete(&self, key: &str) -> Result<()>;
    /// The keys that start with `prefix` (a folder such as `recordings/2026/`, or any key
    /// prefix), sorted. Half-written objects are never listed.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// A URL that reads the object without credentials until `expires_in` has passed, when
    /// the store can make one (S3); `None` when it cannot (a local directory), and the
    /// control plane serves the object through its own signed URL instead.
    async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<Option<String>>;
}

/// Keys are relative paths of letters, digits and `-_./`, without `..` or a leading `/`.
pub fn validate_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && !key.starts_with('/')
        && key.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok { Ok(()) } else { Err(Error::invalid("key", format!("{key:?} is not an object key"))) }
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Tells apart the temporary files of concurrent writes in one process.
static PARTIAL: AtomicU64 = AtomicU64::new(0);

/// Objects as files under a root directory.
#[derive(Debug, Clone)]
pub struct LocalDirStore {
    root: PathBuf,
}

impl LocalDirStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDirStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds `key` (for streaming it out without reading it whole).
    pub fn object_path(&self, key: &str) -> Result<PathBuf> {
        self.path(key)
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io(op: &str, key: &str) -> impl Fn(std::io::Error) -> Error {
    let msg = format!("{op} {key}");
    move |e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::not_found("object", &msg)
        } else {
            Error::unavailable(format!("{msg}: {e}"))
        }
    }
}

#[async_trait]
impl BlobStore for LocalDirStore {
    async fn put_file(&self, key: &str, path: &Path) -> Result<BlobInfo> {
        let bytes = tokio::fs::read(path).await.map_err(io("read", &path.display().to_string()))?;
        self.put_bytes(key, &bytes).await
    }

    async fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<BlobInfo> {
        let dest = self.path(key)?;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io("create folder for", key))?;
        }
        // Write beside, sync, then rename: readers never see half an object.
        let tmp =
            dest.with_extension(format!("partial-{}-{}", std::process::id(), PARTIAL.fetch_add(1, Ordering::Relaxed)));
        let mut f = tokio::fs::File::create(&tmp).await.map_err(io("create", key))?;
        f.write_all(bytes).await.map_err(io("write", key))?;
        f.sync_all().await.map_err(io("sync", key))?;
        drop(f);
        tokio::fs::rename(&tmp, &dest).await.map_err(io("publish", key))?;
        Ok(BlobInfo { size_bytes: bytes.len() as u64, sha256: sha256_hex(bytes) })
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>> {
        tokio::fs::read(self.path(key)?).await.map_err(io("read", key))
    }

    async fn head(&self, key: &str) -> Result<Option<BlobInfo>> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(bytes) => Ok(Some(BlobInfo { size_bytes: bytes.len() as u64, sha256: sha256_hex(&bytes) })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", key)(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("delete", key)(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            walk(&root, "", &prefix, &mut keys).map_err(io("list", &prefix))?;
            keys.sort();
            Ok(keys)
        })
        .await
        .map_err(|e| Error::internal(format!("list task: {e}")))?
    }

    async fn presign_get(&self, key: &str, _expires_in: Duration) -> Result<Option<String>> {
        validate_key(key)?;
        Ok(None)
    }
}

/// Collects the keys under `dir` (whose key prefix is `at`) that start with `prefix`,
/// skipping folders that cannot hold one and the `.partial-*` files of writes in flight.
fn walk(dir: &Path, at: &str, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        let key = format!("{at}{name}");
        if entry.file_type()?.is_dir() {
            let folder = format!("{key}/");
            if folder.starts_with(prefix) || prefix.starts_with(&folder) {
                walk(&entry.path(), &folder, prefix, out)?;
            }
        } else if key.starts_with(prefix) && validate_key(&key).is_ok() && !name.contains(".partial-") {
            out.push(key);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys() {
        assert!(validate_key("recordings/2026/11/23/ca_1.wav").is_ok());
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "sp ace", "./x"] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn local_dir_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        conformance::run_all(&LocalDirStore::new(dir.path())).await;
    }
}
