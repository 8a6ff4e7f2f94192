//! `StorageService`: fleet nodes fetch their region's storage (secret included) here, so a
//! host never carries storage settings of its own that could disagree with the control
//! plane (the seeds' "Recordings missing" incident); operators test a region's storage;
//! users get short-lived playback URLs; the gateway streams local recordings.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use tokio::io::AsyncReadExt;
use tonic::{Request, Response, Status};
use vox_domain::node::NodeKind;
use vox_domain::region::Region;
use vox_domain::user::Role;
use vox_domain::{Error, Result, ids, time};
use vox_proto::backend::v1 as pb;
use vox_proto::backend::v1::storage_service_server::StorageService;

use super::{RpcResult, reply, required_id};
use crate::auth::Principal;
use crate::bridge::Bridge;
use crate::storage::{PLAYBACK_URL_TTL, RegionStore};

#[derive(Debug, Clone)]
pub struct Storage(pub Arc<Bridge>);

/// Bytes per chunk of a streamed recording.
const CHUNK: usize = 64 * 1024;

impl Storage {
    async fn region(&self, id: &str) -> Result<Region> {
        self.0.stores.regions.get_region(id).await?.ok_or_else(|| Error::not_found("region", id))
    }

    async fn node_storage(&self, req: Request<pb::GetNodeStorageRequest>) -> Result<pb::NodeStorage> {
        let node = match self.0.auth.reader(req.metadata(), &[NodeKind::Fleet]).await? {
            Principal::Node(n) => n,
            Principal::User(_) => {
                return Err(Error::permission_denied("only fleet nodes fetch their storage settings"));
            }
        };
        let region_id = node
            .region_id
            .clone()
            .ok_or_else(|| Error::precondition(format!("fleet node {} has no region; register it in one", node.id)))?;
        let region = self.region(&region_id).await?;
        let backend = match self.0.region_stores.s3_settings(&region, &self.0.master_key)? {
            Some(s) => pb::node_storage::Backend::S3(pb::S3Storage {
                endpoint_url: s.endpoint_url,
                bucket: s.bucket,
                access_key: s.access_key,
                secret_key: s.secret_key,
                signing_region: s.signing_region,
                force_path_style: s.force_path_style,
                create_bucket: s.create_bucket,
            }),
            None => pb::node_storage::Backend::Local(pb::LocalStorage {
                directory: self.0.region_stores.local().root().display().to_string(),
            }),
        };
        tracing::debug!(node_id = %node.id, region_id = %region.id, backend = match &backend {
            pb::node_storage::Backend::S3(_) => "s3",
            pb::node_storage::Backend::Local(_) => "local",
        }, "handed a fleet node its storage settings");
        Ok(pb::NodeStorage { region_id: region.id, backend: Some(backend) })
    }

    async fn test_region(&self, req: Request<pb::TestRegionStorageRequest>) -> Result<pb::TestRegionStorageResponse> {
        let user = self.0.auth.user(req.metadata(), Role::Operator).await?;
        let region = self.region(&required_id("region_id", &req.get_ref().region_id)?).await?;
        let started = Instant::now();
        let (ok, backend, detail) = match self.0.region_stores.uncached(&region, &self.0.master_key) {
            Ok(store) => {
                let (ok, detail) = match round_trip(&store).await {
                    Ok(bytes) => {
                        (true, format!("wrote, read back and deleted {bytes} bytes in the {}", store.describe()))
                    }
                    Err(e) => (false, format!("{} ({})", e.message, store.describe())),
                };
                (ok, store.backend(), detail)
            }
            Err(e) => (false, "s3", format!("settings: {}", e.message)),
        };
        let elapsed_ms = started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
        tracing::info!(region_id = %region.id, user = %user.email, ok, backend, elapsed_ms, detail, "region storage tested");
        Ok(pb::TestRegionStorageResponse { ok, detail, backend: backend.into(), elapsed_ms })
    }

    async fn recording_url(&self, req: Request<pb::GetRecordingUrlRequest>) -> Result<pb::RecordingUrl> {
        self.0.auth.user(req.metadata(), Role::Viewer).await?;
        let id = required_id("call_id", &req.get_ref().call_id)?;
        let call = self.0.stores.calls.get_call(&id).await?.ok_or_else(|| Error::not_found("call", &id))?;
        let recording =
            call.recording.ok_or_else(|| Error::not_found("recording", &format!("of call {id} (it has none yet)")))?;
        let region = self.region(&call.region_id).await?;
        let expires_at = self.0.clock.now() + chrono::Duration::from_std(PLAYBACK_URL_TTL).unwrap_or_default();
        let url = match self.0.region_stores.for_region(&region, &self.0.master_key)? {
            RegionStore::S3(store) => {
                let presigned =
                    vox_blob::BlobStore::presign_get(store.as_ref(), &recording.key, PLAYBACK_URL_TTL).await?;
                presigned.ok_or_else(|| Error::internal("the S3 store made no presigned URL"))?
            }
            RegionStore::Local(_) => self.0.region_stores.local_url(&recording.key, expires_at)?,
        };
        Ok(pb::RecordingUrl { url, expires_at: Some(time::to_proto(expires_at)), key: recording.key })
    }

    async fn open_recording(&self, r: &pb::ReadRecordingRequest) -> Result<tokio::fs::File> {
        let now = self.0.clock.now();
        self.0.region_stores.check_local_url(&r.key, r.expires, &r.signature, now)?;
        let path = self.0.region_stores.local().object_path(&r.key)?;
        tokio::fs::File::open(&path).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found("recording", &r.key)
            } else {
                Error::unavailable(format!("read recording {}: {e}", r.key))
            }
        })
    }
}

/// Writes, reads back, checks and deletes a small object; the number of bytes on success,
/// or the step that failed.
async fn round_trip(store: &RegionStore) -> Result<usize> {
    let blob = store.blob();
    let key = format!("vox-storage-check/{}.txt", ids::random_token(16).to_ascii_lowercase());
    let body = format!("vox storage check {key}");
    let step = |what: &'static str| move |e: Error| Error::new(e.code, format!("{what}: {}", e.message));
    blob.put_bytes(&key, body.as_bytes()).await.map_err(step("write"))?;
    let read = blob.get(&key).await.map_err(step("read back"))?;
    if read != body.as_bytes() {
        return Err(Error::internal("read back: the object came back different from what was written"));
    }
    blob.delete(&key).await.map_err(step("delete"))?;
    if blob.head(&key).await.map_err(step("check the delete"))?.is_some() {
        return Err(Error::internal("delete: the object is still there"));
    }
    Ok(body.len())
}

type Chunks = Pin<Box<dyn Stream<Item = std::result::Result<pb::RecordingChunk, Status>> + Send>>;

#[tonic::async_trait]
impl StorageService for Storage {
    async fn get_node_storage(&self, req: Request<pb::GetNodeStorageRequest>) -> RpcResult<pb::NodeStorage> {
        reply("GetNodeStorage", self.node_storage(req).await)
    }

    async fn test_region_storage(
        &self,
        req: Request<pb::TestRegionStorageRequest>,
    ) -> RpcResult<pb::TestRegionStorageResponse> {
        reply("TestRegionStorage", self.test_region(req).await)
    }

    async fn get_recording_url(&self, req: Request<pb::GetRecordingUrlRequest>) -> RpcResult<pb::RecordingUrl> {
        reply("GetRecordingUrl", self.recording_url(req).await)
    }

    type ReadRecordingStream = Chunks;

    async fn read_recording(&self, req: Request<pb::ReadRecordingRequest>) -> RpcResult<Chunks> {
        let mut file = reply("ReadRecording", self.open_recording(req.get_ref()).await)?.into_inner();
        let key = req.into_inner().key;
        let stream = async_stream(move |tx| async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match file.read(&mut buf).await {
                    Ok(0) => return,
                    Ok(n) => {
                        if tx.send(Ok(pb::RecordingChunk { data: buf[..n].to_vec() })).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let broke = Error::unavailable(format!("read recording {key}: {e}"));
                        let _ = tx.send(Err(super::status("ReadRecording", broke))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A stream fed by a task through a small channel (the reader waits for the client).
fn async_stream<F, Fut>(f: F) -> Chunks
where
    F: FnOnce(tokio::sync::mpsc::Sender<std::result::Result<pb::RecordingChunk, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
