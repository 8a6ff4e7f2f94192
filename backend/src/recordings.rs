//! Recording post-processing on the durable work queue (queue `recordings`).
//!
//! A fleet worker uploads a call's recording from its spool and points the call at it
//! (`call.recording_ready`). That proves the store accepted an upload, not that the object
//! a CRM or an auditor will fetch is whole. So for every `call.recording_ready` event the
//! feed dispatcher (see [`crate::webhooks`], same cursor, so a crash between the two
//! steps queues the job again and the dedup id drops the copy) queues a job here, and a
//! processor in voxbridge
//! 1. reads the object back from the region's storage (S3 or the local folder);
//! 2. checks it is a whole stereo 16-bit PCM recording (header and length agree;
//!    [`vox_audio::analysis`]) and that its duration is the one the worker reported;
//! 3. measures each side's talk time and the dead air;
//! 4. publishes `call.recording_analyzed` on the activity feed (event stream, webhooks)
//!    and acks.
//!
//! A read that fails or a recording that does not check out is nacked with the reason:
//! retried after 5 s and 10 s (an object store that lags behind its own upload), then a
//! dead letter, which `voxbridge_queue_jobs{queue="recordings",state="dead"}` counts and
//! the `VoxRecordingChecksFailing` alert pages on: a recording that cannot be read back is
//! a compliance problem somebody must look at. A call whose recording was replaced since
//! (a partial recording finished after a crash) drops the old job: the new one has its own.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vox_domain::feed::{FeedEvent, RecordingAnalysis};
use vox_domain::{Error, Result};
use vox_store::queue::{Backoff, EnqueueOptions, Job, Retry};

use crate::bridge::Bridge;

/// The work queue recording jobs go on.
pub const QUEUE: &str = "recordings";
/// How long a processor holds a job (a long recording read from a slow store).
const VISIBILITY: chrono::Duration = chrono::Duration::seconds(120);
/// Recordings processed side by side per voxbridge.
const IN_FLIGHT: usize = 2;
const IDLE: Duration = Duration::from_secs(1);
/// The reported duration and the one read back may differ by a frame of rounding.
const DURATION_TOLERANCE_MS: u64 = 40;

/// One recording to read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingJob {
    pub call_id: String,
    pub key: String,
    /// The duration the worker reported.
    pub duration_ms: u64,
}

/// Queues the job for `event` if it says a recording is ready; true when it did.
pub async fn enqueue_for(bridge: &Bridge, event: &FeedEvent) -> Result<bool> {
    if event.kind != "call.recording_ready" {
        return Ok(false);
    }
    let Some(recording) = event.call().and_then(|c| c.recording.as_ref().map(|r| (c.id.clone(), r.clone()))) else {
        return Ok(false);
    };
    let (call_id, r) = recording;
    let job = RecordingJob { call_id, key: r.key, duration_ms: r.duration_ms };
    let options = EnqueueOptions {
        dedup_id: Some(format!("{}:{}", job.call_id, job.key)),
        backoff: Backoff { base: chrono::Duration::seconds(5), jitter: false },
        ..Default::default()
    };
    let payload = serde_json::to_vec(&job).map_err(|e| Error::internal(format!("encode recording job: {e}")))?;
    bridge.queue.enqueue(QUEUE, &payload, &options, bridge.clock.now()).await?;
    Ok(true)
}

/// Processes recording jobs until the server stops.
pub async fn process_loop(bridge: Arc<Bridge>) {
    let consumer = format!("voxbridge-{}-recordings", std::process::id());
    let mut shutdown = bridge.shutdown.clone();
    loop {
        match bridge.queue.reserve_batch(QUEUE, &consumer, VISIBILITY, IN_FLIGHT, bridge.clock.now()).await {
            Ok(jobs) if !jobs.is_empty() => {
                futures::future::join_all(jobs.into_iter().map(|job| settle(&bridge, job))).await;
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.message, "reserving recording jobs failed; trying again"),
        }
        tokio::select! {
            _ = bridge.webhook_wake.notified() => {}
            _ = tokio::time::sleep(IDLE) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Processes one job and acks or nacks it.
async fn settle(bridge: &Bridge, job: Job) {
    let now = bridge.clock.now();
    let outcome = match job.json::<RecordingJob>() {
        Ok(r) => process(bridge, &r).await.map_err(|e| (e, Retry::Backoff)),
        Err(e) => Err((e, Retry::Never)),
    };
    let settled = match outcome {
        Ok(()) => bridge.queue.ack(&job.receipt, now).await.map(|_| "analyzed"),
        Err((e, retry)) => {
            tracing::warn!(job = %job.id, attempt = job.attempt, error = %e.message, "recording check failed");
            bridge.queue.nack(&job.receipt, &e.message, retry, now).await.map(|_| "failed")
        }
    };
    match settled {
        Ok(outcome) => {
            bridge.metrics.recordings_processed.get_or_create(&crate::metrics::label("outcome", outcome)).inc()
        }
        Err(e) => {
            // Redelivered meanwhile (it took longer than the visibility): the next try settles it.
            tracing::warn!(job = %job.id, error = %e.message, "a recording job could not be settled");
            0
        }
    };
}

/// Reads the recording back, checks and measures it, and publishes the result.
async fn process(bridge: &Bridge, job: &RecordingJob) -> Result<()> {
    let Some(call) = bridge.stores.calls.get_call(&job.call_id).await? else {
        return Err(Error::not_found("call", &job.call_id));
    };
    if call.recording.as_ref().map(|r| r.key.as_str()) != Some(job.key.as_str()) {
        tracing::debug!(call_id = %call.id, key = %job.key, "recording replaced since it was queued; dropping the old job");
        return Ok(());
    }
    let region = bridge
        .stores
        .regions
        .get_region(&call.region_id)
        .await?
        .ok_or_else(|| Error::not_found("region", &call.region_id))?;
    let store = bridge.region_stores.for_region(&region, &bridge.master_key)?;
    let bytes = store.blob().get(&job.key).await.map_err(|e| {
        Error::unavailable(format!("reading recording {} back from {}: {}", job.key, store.describe(), e.message))
    })?;
    let analysis = tokio::task::spawn_blocking(move || vox_audio::analysis::analyse_recording(&bytes))
        .await
        .map_err(|e| Error::internal(format!("recording analysis stopped: {e}")))?
        .map_err(|e| {
            Error::precondition(format!("recording {} in storage is not a whole call recording: {e}", job.key))
        })?;
    if analysis.duration_ms.abs_diff(job.duration_ms) > DURATION_TOLERANCE_MS {
        return Err(Error::precondition(format!(
            "recording {} in storage lasts {} ms but the worker reported {} ms: the stored object is not the recording made",
            job.key, analysis.duration_ms, job.duration_ms
        )));
    }
    let facts = RecordingAnalysis {
        call_id: call.id.clone(),
        key: job.key.clone(),
        duration_ms: analysis.duration_ms,
        caller_speech_ms: analysis.caller_speech_ms,
        agent_speech_ms: analysis.agent_speech_ms,
        silence_ms: analysis.silence_ms,
    };
    bridge.stores.feed.append_feed(&[FeedEvent::recording_analyzed(&call, facts, bridge.clock.now())]).await?;
    bridge.publish(vox_store::ClusterEvent::CallChanged(call.id.clone()));
    Ok(())
}
