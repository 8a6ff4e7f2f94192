//! Uploading finished recordings from the spool to storage, with retries. A recording
//! leaves the spool only after the store confirmed it; the call is pointed at it only
//! then. At start, whatever a previous run left (a crash mid-call or mid-upload) is
//! repaired and uploaded; a file whose name is not a call id is left alone, never
//! turned into a path or a voxbridge request.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use vox_blob::BlobStore;
use vox_domain::ids;
use vox_proto::backend::v1 as pb;

use crate::recording::Ticket;

#[derive(Debug, Clone)]
pub struct Uploader {
    tx: tokio::sync::mpsc::UnboundedSender<String>,
}

impl Uploader {
    /// Starts the upload task and queues what the spool already holds.
    pub fn start(spool: PathBuf, store: Arc<dyn BlobStore>, bridge: Option<vox_node::Bridge>) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let uploader = Uploader { tx };
        if let Ok(entries) = std::fs::read_dir(&spool) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let Some(call_id) = name.strip_suffix(".json") else { continue };
                if !ids::has_prefix(call_id, ids::CALL) {
                    tracing::warn!(file = %entry.path().display(), "ignoring a spool file not named by a call id");
                    continue;
                }
                tracing::info!(call_id, "found a recording left by an earlier run; finishing its upload");
                uploader.queue(call_id);
            }
        }
        tokio::spawn(async move {
            while let Some(call_id) = rx.recv().await {
                let mut delay = Duration::from_millis(500);
                loop {
                    match upload_one(&spool, store.as_ref(), bridge.as_ref(), &call_id).await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(call_id, error = %e, retry_in_ms = delay.as_millis() as u64, "recording upload failed; it stays in the spool");
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(30));
                        }
                    }
                }
            }
        });
        uploader
    }

    /// Queues `call_id`'s recording for upload; anything but a call id is refused here.
    pub fn queue(&self, call_id: &str) {
        if !ids::has_prefix(call_id, ids::CALL) {
            tracing::error!(call_id, "not queueing an upload for a name that is not a call id");
            return;
        }
        let _ = self.tx.send(call_id.to_string());
    }
}

async fn upload_one(
    spool: &std::path::Path,
    store: &dyn BlobStore,
    bridge: Option<&vox_node::Bridge>,
    call_id: &str,
) -> anyhow::Result<()> {
    let (ticket_path, wav) = match (Ticket::path(spool, call_id), Ticket::wav_path(spool, call_id)) {
        (Ok(t), Ok(w)) => (t, w),
        (Err(e), _) | (_, Err(e)) => {
            // `queue` lets none through; retrying could never help.
            tracing::error!(call_id, error = %e, "not uploading a recording whose name is not a call id");
            return Ok(());
        }
    };
    let ticket: Ticket = match std::fs::read(&ticket_path) {
        Ok(bytes) => serde_json::from_slice(&bytes)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()), // already done
        Err(e) => return Err(e.into()),
    };
    if !ticket.is_for(call_id) {
        tracing::error!(call_id, ticket_call_id = %ticket.call_id, key = %ticket.key, "a spool ticket that does not match its file name; left in the spool for an operator");
        return Ok(());
    }
    if !wav.exists() {
        tracing::warn!(call_id, "recording ticket without audio; dropping it");
        std::fs::remove_file(&ticket_path)?;
        return Ok(());
    }
    // A crash leaves the header sizes unset; repair is idempotent, so always run it.
    let wav_for_repair = wav.clone();
    let info = tokio::task::spawn_blocking(move || vox_audio::wav::repair(&wav_for_repair)).await??;
    if !ticket.finished {
        tracing::info!(call_id, duration_ms = info.duration_ms, "repaired a partial recording");
    }
    let stored =
        store.put_file(&ticket.key, &wav).await.map_err(|e| anyhow::anyhow!("store {}: {}", ticket.key, e.message))?;
    if let Some(bridge) = bridge {
        let req = pb::SetCallRecordingRequest {
            call_id: call_id.to_string(),
            recording: Some(pb::Recording {
                key: ticket.key.clone(),
                duration_ms: info.duration_ms,
                size_bytes: stored.size_bytes,
            }),
        };
        match bridge.calls().set_call_recording(req).await {
            Ok(_) => {}
            // The call is gone (deleted, or never known to this control plane): keep the object, drop the ticket.
            Err(s) if s.code() == tonic::Code::NotFound => {
                tracing::warn!(call_id, "uploaded a recording for an unknown call")
            }
            Err(s) => anyhow::bail!("point call {call_id} at its recording: {}", s.message()),
        }
    }
    std::fs::remove_file(&wav)?;
    std::fs::remove_file(&ticket_path)?;
    tracing::info!(call_id, key = %ticket.key, size_bytes = stored.size_bytes, duration_ms = info.duration_ms, "recording uploaded");
    Ok(())
}
