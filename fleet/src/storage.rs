//! Where this worker's recordings go and its prompts come from: the region's storage as
//! voxbridge says (`StorageService/GetNodeStorage`), never settings of the host's own,
//! so a fleet host cannot upload somewhere the control plane does not look (the seeds'
//! "fleet MINIO_* does not match the Backend's storage config" incident).
//!
//! [`RegionStorage`] is itself a [`BlobStore`]: each operation runs on the store voxbridge
//! named last. The settings are fetched at start, again when they are a minute old (a
//! region's storage change reaches every worker within a minute), and kept when
//! voxbridge cannot be reached; until the first answer, operations fail and recordings
//! wait in the spool. A worker without voxbridge (`--bridge-url` unset, tests and demos)
//! uses `--recordings-dir`. With voxbridge, `--recordings-dir` is an override for one
//! case only: a region on local storage whose shared folder is mounted at another path
//! on this machine. It wins there, with a warning naming both folders whenever they
//! differ; for an S3 region it is ignored, with a warning. It is never silently followed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use vox_blob::{BlobInfo, BlobStore, LocalDirStore};
use vox_blob_s3::{DEFAULT_PART_SIZE, S3Settings, S3Store};
use vox_domain::{Error, Result};
use vox_node::Bridge;
use vox_proto::backend::v1 as pb;

/// Settings older than this are fetched again before the next operation.
const REFRESH: Duration = Duration::from_secs(60);

/// Where storage settings come from.
#[derive(Debug)]
enum Source {
    /// No voxbridge: this folder.
    Fixed(Arc<LocalDirStore>),
    /// voxbridge's word; `expected_dir` is an explicit `--recordings-dir` to cross-check.
    Bridge { bridge: Bridge, expected_dir: Option<PathBuf> },
}

/// What voxbridge said, and the store made from it.
#[derive(Debug, Clone)]
struct Resolved {
    backend: Backend,
    store: Arc<dyn BlobStore>,
    at: Instant,
}

/// The settings without the secret's value (compared to spot a change; never printed
/// with it).
#[derive(Debug, Clone, PartialEq)]
enum Backend {
    Local(PathBuf),
    S3(S3Settings),
}

#[derive(Debug)]
pub struct RegionStorage {
    source: Source,
    current: tokio::sync::Mutex<Option<Resolved>>,
}

impl RegionStorage {
    /// Storage from voxbridge when `bridge` is set, else `recordings_dir` (or
    /// `vox-data/recordings`).
    pub fn new(bridge: Option<Bridge>, recordings_dir: Option<PathBuf>) -> Self {
        let source = match bridge {
            Some(bridge) => Source::Bridge { bridge, expected_dir: recordings_dir },
            None => Source::Fixed(Arc::new(LocalDirStore::new(
                recordings_dir.unwrap_or_else(|| PathBuf::from("vox-data/recordings")),
            ))),
        };
        RegionStorage { source, current: tokio::sync::Mutex::new(None) }
    }

    /// The store to use now: fetched from voxbridge when never fetched or a minute old.
    pub async fn store(&self) -> Result<Arc<dyn BlobStore>> {
        let bridge = match &self.source {
            Source::Fixed(store) => return Ok(Arc::clone(store) as Arc<dyn BlobStore>),
            Source::Bridge { bridge, .. } => bridge,
        };
        let mut current = self.current.lock().await;
        if let Some(r) = current.as_ref()
            && r.at.elapsed() < REFRESH
        {
            return Ok(Arc::clone(&r.store));
        }
        match fetch(bridge).await {
            Ok(said) => {
                let backend = self.apply_override(&said);
                let store = match current.as_ref() {
                    Some(r) if r.backend == backend => Arc::clone(&r.store),
                    previous => {
                        let store = open(&backend)?;
                        match previous {
                            None => tracing::info!(storage = %describe(&backend), "storage from voxbridge"),
                            Some(_) => {
                                tracing::warn!(storage = %describe(&backend), "voxbridge changed this region's storage; using the new one")
                            }
                        }
                        store
                    }
                };
                *current = Some(Resolved { backend, store: Arc::clone(&store), at: Instant::now() });
                Ok(store)
            }
            Err(e) => match current.as_mut() {
                Some(r) => {
                    tracing::warn!(error = %e.message, "cannot refresh the storage settings; keeping the last ones");
                    r.at = Instant::now();
                    Ok(Arc::clone(&r.store))
                }
                None => Err(e),
            },
        }
    }

    /// What this worker uses given what voxbridge said: `--recordings-dir` wins over
    /// voxbridge's folder (the same share mounted elsewhere), never over S3; each
    /// disagreement is logged as a warning.
    fn apply_override(&self, said: &Backend) -> Backend {
        let Source::Bridge { expected_dir: Some(flag), .. } = &self.source else { return said.clone() };
        let flag = std::path::absolute(flag).unwrap_or_else(|_| flag.clone());
        match said {
            Backend::Local(dir) if *dir == flag => said.clone(),
            Backend::Local(dir) => {
                tracing::warn!(
                    voxbridge = %dir.display(),
                    recordings_dir = %flag.display(),
                    "--recordings-dir differs from the folder voxbridge names for this region; using --recordings-dir. \
                     It must be the same folder (a share mounted at another path), or voxbridge cannot play these recordings"
                );
                Backend::Local(flag)
            }
            Backend::S3(s) => {
                tracing::warn!(
                    recordings_dir = %flag.display(),
                    bucket = %s.bucket,
                    "--recordings-dir is ignored: this region stores recordings in S3, as voxbridge says"
                );
                said.clone()
            }
        }
    }

    /// Fetches the settings now, so a worker reports its storage (or why it has none) at
    /// start rather than at its first recording.
    pub async fn announce(&self) {
        if let Err(e) = self.store().await {
            tracing::warn!(error = %e.message, "no storage settings from voxbridge yet; recordings wait in the spool until it answers");
        }
    }
}

async fn fetch(bridge: &Bridge) -> Result<Backend> {
    let mut req = tonic::Request::new(pb::GetNodeStorageRequest {});
    req.set_timeout(Duration::from_secs(5));
    let reply = bridge.storage().get_node_storage(req).await.map_err(|s| {
        Error::new(
            vox_domain::ErrorCode::from_grpc(s.code()),
            format!("fetch storage settings from voxbridge: {}", s.message()),
        )
    })?;
    let backend = match reply.into_inner().backend {
        Some(pb::node_storage::Backend::Local(l)) => Backend::Local(PathBuf::from(l.directory)),
        Some(pb::node_storage::Backend::S3(s)) => Backend::S3(S3Settings {
            endpoint_url: s.endpoint_url,
            bucket: s.bucket,
            access_key: s.access_key,
            secret_key: s.secret_key,
            signing_region: s.signing_region,
            force_path_style: s.force_path_style,
            create_bucket: s.create_bucket,
            part_size: DEFAULT_PART_SIZE,
        }),
        None => return Err(Error::unavailable("voxbridge sent storage settings without a backend")),
    };
    Ok(backend)
}

fn open(backend: &Backend) -> Result<Arc<dyn BlobStore>> {
    Ok(match backend {
        Backend::Local(dir) => Arc::new(LocalDirStore::new(dir)),
        Backend::S3(s) => Arc::new(S3Store::new(s.clone())?),
    })
}

fn describe(backend: &Backend) -> String {
    match backend {
        Backend::Local(dir) => format!("folder {}", dir.display()),
        Backend::S3(s) => format!("S3 bucket {} at {}", s.bucket, s.endpoint_url),
    }
}

#[async_trait]
impl BlobStore for RegionStorage {
    async fn put_file(&self, key: &str, path: &Path) -> Result<BlobInfo> {
        self.store().await?.put_file(key, path).await
    }

    async fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<BlobInfo> {
        self.store().await?.put_bytes(key, bytes).await
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.store().await?.get(key).await
    }

    async fn head(&self, key: &str) -> Result<Option<BlobInfo>> {
        self.store().await?.head(key).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.store().await?.delete(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.store().await?.list(prefix).await
    }

    async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<Option<String>> {
        self.store().await?.presign_get(key, expires_in).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s3() -> S3Settings {
        S3Settings {
            endpoint_url: "http://10.0.0.9:9000".into(),
            bucket: "recordings".into(),
            access_key: "ak".into(),
            secret_key: "sk".into(),
            signing_region: "us-east-1".into(),
            force_path_style: true,
            create_bucket: true,
            part_size: DEFAULT_PART_SIZE,
        }
    }

    fn with_flag(flag: Option<&str>) -> RegionStorage {
        let secret =
            vox_node::NodeSecret::parse("secret", "vxn.nd_0123456789abcdef.0123456789abcdefghjkmnpqrstvwxyz").unwrap();
        let bridge = Bridge::new("http://127.0.0.1:9", secret).unwrap();
        RegionStorage::new(Some(bridge), flag.map(PathBuf::from))
    }

    #[tokio::test]
    async fn voxbridge_decides_and_the_flag_only_renames_its_folder() {
        let said = Backend::Local(PathBuf::from("/srv/vox/recordings"));
        assert_eq!(with_flag(None).apply_override(&said), said);
        assert_eq!(with_flag(Some("/srv/vox/recordings")).apply_override(&said), said);
        assert_eq!(
            with_flag(Some("/mnt/share/recordings")).apply_override(&said),
            Backend::Local(PathBuf::from("/mnt/share/recordings")),
            "the same share mounted elsewhere"
        );
        assert_eq!(with_flag(Some("/mnt/share/recordings")).apply_override(&Backend::S3(s3())), Backend::S3(s3()));
        assert!(!format!("{:?}", Backend::S3(s3())).contains("\"sk\""), "the secret is never printed");
    }

    #[tokio::test]
    async fn without_voxbridge_storage_is_the_folder_and_unreachable_voxbridge_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let fixed = RegionStorage::new(None, Some(dir.path().to_path_buf()));
        fixed.put_bytes("recordings/a.wav", b"x").await.unwrap();
        assert!(dir.path().join("recordings/a.wav").is_file());
        let err = with_flag(None).put_bytes("recordings/a.wav", b"x").await.unwrap_err();
        assert_eq!(err.code, vox_domain::ErrorCode::Unavailable, "{err}");
    }
}
