//! Uploading finished recordings from the spool to storage. A recording leaves the
//! spool only after the store confirmed it; the call is pointed at it only then. At
//! start, whatever a previous run left (a crash mid-call or mid-upload) is repaired and
//! uploaded; a file whose name is not a call id is left alone, never turned into a path
//! or a voxbridge request.
//!
//! A recording locked by its call (a sibling worker sharing the spool) is left to that
//! worker, which queues it when the call ends.
//!
//! Every ticket retries on its own schedule ([`UploadPolicy`]: exponential backoff with
//! a cap, a bounded number of attempts), so one recording that cannot go up never holds
//! back the ones behind it. What can never go up (a recording `repair` refuses, a ticket
//! that is not JSON or names another call, a ticket out of attempts) moves to
//! `<spool>/quarantine/` ([`QUARANTINE`]), is logged with the call id and the reason,
//! and is kept for an operator: nothing is deleted that the store did not confirm.
//! Moving a quarantined recording's two files back into the spool retries it at the
//! worker's next start. The backlog is [`SpoolStats`], logged as `spool` every
//! [`UploadPolicy::report_every`], for the metrics endpoint to read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use vox_blob::BlobStore;
use vox_domain::ids;
use vox_proto::backend::v1 as pb;

use crate::recording::{Ticket, spool_file};

/// The folder under the spool where recordings that cannot be uploaded are kept.
pub const QUARANTINE: &str = "quarantine";

/// How hard the uploader tries one recording before it quarantines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadPolicy {
    /// Failed attempts after which a ticket goes to quarantine.
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub first_backoff: Duration,
    /// The longest wait between two attempts of one ticket.
    pub max_backoff: Duration,
    /// How often the `spool` log line reports the backlog.
    pub report_every: Duration,
}

impl Default for UploadPolicy {
    /// 60 attempts over about 4 hours (0.5 s doubling to a 5-minute cap): an outage of
    /// the region's storage for a few hours quarantines nothing (a recording is not
    /// moved aside for a fault that is not its own), a recovered store sees each waiting
    /// recording again within 5 minutes, and a recording that keeps failing still stops
    /// being retried the same day.
    fn default() -> Self {
        UploadPolicy {
            max_attempts: 60,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            report_every: Duration::from_secs(60),
        }
    }
}

impl UploadPolicy {
    /// The wait after the `failures`-th failed attempt (1 = the first).
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.first_backoff.saturating_mul(1u32 << doublings).min(self.max_backoff)
    }
}

/// The spool's backlog, as the worker's metrics report it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Finished recordings waiting for upload (queued or between attempts).
    pub pending: u64,
    /// Files in `<spool>/quarantine/` (a recording is its `.wav` and its `.json`).
    pub quarantined: u64,
    /// Failed upload attempts since the worker started.
    pub upload_failures: u64,
    /// Recordings the store confirmed since the worker started.
    pub uploaded: u64,
}

#[derive(Debug, Default)]
struct Counters {
    pending: AtomicU64,
    quarantined: AtomicU64,
    upload_failures: AtomicU64,
    uploaded: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct Uploader {
    tx: mpsc::UnboundedSender<String>,
    counters: Arc<Counters>,
}

impl Uploader {
    /// Starts the upload task with the [`UploadPolicy::default`] and queues what the
    /// spool already holds.
    pub fn start(spool: PathBuf, store: Arc<dyn BlobStore>, bridge: Option<vox_node::Bridge>) -> Self {
        Uploader::start_with(spool, store, bridge, UploadPolicy::default())
    }

    pub fn start_with(
        spool: PathBuf,
        store: Arc<dyn BlobStore>,
        bridge: Option<vox_node::Bridge>,
        policy: UploadPolicy,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        let counters = Arc::new(Counters::default());
        counters.quarantined.store(count_files(&spool.join(QUARANTINE)), Ordering::Relaxed);
        let uploader = Uploader { tx, counters: Arc::clone(&counters) };
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
        let task = Task { spool, store, bridge, policy, counters, waiting: HashMap::new(), next_seq: 0 };
        tokio::spawn(task.run(rx));
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

    /// The backlog now; what the metrics endpoint reads.
    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            pending: self.counters.pending.load(Ordering::Relaxed),
            quarantined: self.counters.quarantined.load(Ordering::Relaxed),
            upload_failures: self.counters.upload_failures.load(Ordering::Relaxed),
            uploaded: self.counters.uploaded.load(Ordering::Relaxed),
        }
    }
}

fn count_files(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map(|entries| entries.flatten().count() as u64).unwrap_or(0)
}

/// A ticket between attempts.
#[derive(Debug)]
struct Waiting {
    failures: u32,
    due: Instant,
    /// Queue order, so tickets due at once go in the order they came.
    seq: u64,
}

/// Why one attempt did not upload a recording.
#[derive(Debug)]
enum Failure {
    /// Worth another attempt (the store or voxbridge away, a disk error).
    Retry(anyhow::Error),
    /// No attempt can ever succeed; the reason goes to the log.
    Quarantine(String),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Retry(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Retry(e.into())
    }
}

struct Task {
    spool: PathBuf,
    store: Arc<dyn BlobStore>,
    bridge: Option<vox_node::Bridge>,
    policy: UploadPolicy,
    counters: Arc<Counters>,
    waiting: HashMap<String, Waiting>,
    next_seq: u64,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<String>) {
        let mut open = true;
        let mut report_at = Instant::now() + self.policy.report_every;
        loop {
            while let Ok(call_id) = rx.try_recv() {
                self.add(call_id);
            }
            let now = Instant::now();
            if now >= report_at {
                self.report();
                report_at = now + self.policy.report_every;
            }
            let next = self.waiting.iter().min_by_key(|(_, w)| (w.due, w.seq)).map(|(id, w)| (id.clone(), w.due));
            match next {
                Some((call_id, due)) if due <= now => {
                    self.attempt(call_id).await;
                    continue;
                }
                None if !open => return,
                _ => {}
            }
            let wake = next.map_or(report_at, |(_, due)| due.min(report_at));
            tokio::select! {
                msg = rx.recv(), if open => match msg {
                    Some(call_id) => self.add(call_id),
                    None => open = false,
                },
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn add(&mut self, call_id: String) {
        // Already waiting (queued at start and again at the call's end): keep its count.
        if !self.waiting.contains_key(&call_id) {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.waiting.insert(call_id, Waiting { failures: 0, due: Instant::now(), seq });
            self.counters.pending.store(self.waiting.len() as u64, Ordering::Relaxed);
        }
    }

    fn report(&self) {
        let s = SpoolStats {
            pending: self.counters.pending.load(Ordering::Relaxed),
            quarantined: self.counters.quarantined.load(Ordering::Relaxed),
            upload_failures: self.counters.upload_failures.load(Ordering::Relaxed),
            uploaded: self.counters.uploaded.load(Ordering::Relaxed),
        };
        tracing::info!(
            pending = s.pending,
            quarantined = s.quarantined,
            upload_failures = s.upload_failures,
            uploaded = s.uploaded,
            "spool"
        );
    }

    async fn attempt(&mut self, call_id: String) {
        let outcome = upload_one(&self.spool, self.store.as_ref(), self.bridge.as_ref(), &call_id).await;
        let done = match outcome {
            Ok(Uploaded::Yes) => {
                self.counters.uploaded.fetch_add(1, Ordering::Relaxed);
                true
            }
            Ok(Uploaded::NothingToDo) => true,
            Err(Failure::Quarantine(why)) => {
                self.quarantine(&call_id, &why);
                true
            }
            Err(Failure::Retry(e)) => {
                self.counters.upload_failures.fetch_add(1, Ordering::Relaxed);
                let max = self.policy.max_attempts;
                match self.waiting.get_mut(&call_id) {
                    Some(w) if w.failures + 1 < max => {
                        w.failures += 1;
                        let delay = self.policy.backoff(w.failures);
                        w.due = Instant::now() + delay;
                        tracing::warn!(call_id, error = %e, attempt = w.failures, max_attempts = max, retry_in_ms = delay.as_millis() as u64, "recording upload failed; it stays in the spool");
                        false
                    }
                    _ => {
                        self.quarantine(&call_id, &format!("{max} upload attempts failed; the last: {e:#}"));
                        true
                    }
                }
            }
        };
        if done {
            self.waiting.remove(&call_id);
            self.counters.pending.store(self.waiting.len() as u64, Ordering::Relaxed);
        }
    }

    /// Moves the recording's files aside, kept and never retried by this run.
    fn quarantine(&self, call_id: &str, why: &str) {
        match quarantine(&self.spool, call_id) {
            Ok(moved) => {
                self.counters.quarantined.fetch_add(moved.len() as u64, Ordering::Relaxed);
                let files: Vec<String> = moved.iter().map(|p| p.display().to_string()).collect();
                tracing::error!(
                    call_id,
                    reason = why,
                    ?files,
                    "recording moved to quarantine; kept there for an operator and not retried"
                );
            }
            Err(e) => {
                tracing::error!(call_id, reason = why, error = %e, "recording cannot be uploaded nor moved to quarantine; left in the spool until the next start")
            }
        }
    }
}

/// Moves `call_id`'s `.wav` and `.json` into `<spool>/quarantine/`, never over a file
/// already there (a second quarantine of one call id gets `<call id>.<n>.<ext>`).
pub fn quarantine(spool: &Path, call_id: &str) -> std::io::Result<Vec<PathBuf>> {
    let dir = spool.join(QUARANTINE);
    std::fs::create_dir_all(&dir)?;
    let mut moved = Vec::new();
    for ext in ["wav", "json"] {
        let from = spool_file(spool, call_id, ext)?;
        if std::fs::symlink_metadata(&from).is_err() {
            continue;
        }
        moved.push(move_into(&from, &dir, call_id, ext)?);
    }
    Ok(moved)
}

fn move_into(from: &Path, dir: &Path, call_id: &str, ext: &str) -> std::io::Result<PathBuf> {
    for n in 0..1000u32 {
        let to = dir.join(if n == 0 { format!("{call_id}.{ext}") } else { format!("{call_id}.{n}.{ext}") });
        // A hard link fails rather than replace a file: no earlier quarantine is lost.
        match std::fs::hard_link(from, &to) {
            Ok(()) => {
                std::fs::remove_file(from)?;
                return Ok(to);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            // A file system without hard links: rename, having looked first.
            Err(_) if std::fs::symlink_metadata(&to).is_err() => {
                std::fs::rename(from, &to)?;
                return Ok(to);
            }
            Err(_) => continue,
        }
    }
    Err(std::io::Error::other(format!("no free name for {call_id}.{ext} in {}", dir.display())))
}

enum Uploaded {
    Yes,
    /// Already uploaded by an earlier attempt, or a ticket without audio.
    NothingToDo,
}

async fn upload_one(
    spool: &Path,
    store: &dyn BlobStore,
    bridge: Option<&vox_node::Bridge>,
    call_id: &str,
) -> Result<Uploaded, Failure> {
    let (ticket_path, wav) = match (Ticket::path(spool, call_id), Ticket::wav_path(spool, call_id)) {
        (Ok(t), Ok(w)) => (t, w),
        (Err(e), _) | (_, Err(e)) => {
            // `queue` lets none through; retrying could never help.
            tracing::error!(call_id, error = %e, "not uploading a recording whose name is not a call id");
            return Ok(Uploaded::NothingToDo);
        }
    };
    let ticket: Ticket = match std::fs::read(&ticket_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Quarantine(format!("the ticket {} is not a recording ticket: {e}", ticket_path.display()))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Uploaded::NothingToDo), // already done
        Err(e) => return Err(e.into()),
    };
    if !ticket.is_for(call_id) {
        return Err(Failure::Quarantine(format!(
            "the ticket names call {:?} and key {:?}, not this call's recording",
            ticket.call_id, ticket.key
        )));
    }
    if !wav.exists() {
        tracing::warn!(call_id, "recording ticket without audio; dropping it");
        std::fs::remove_file(&ticket_path)?;
        return Ok(Uploaded::NothingToDo);
    }
    // Held until the files are gone: a call still recording (on a sibling worker that
    // shares the spool) or another uploader has it, and will finish it itself.
    let in_use = std::fs::File::open(&wav)?;
    match in_use.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            tracing::info!(call_id, "recording in use by a live call or another upload; left to it");
            return Ok(Uploaded::NothingToDo);
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(anyhow::Error::from(e).context("lock the recording").into());
        }
    }
    // A crash leaves the header sizes unset; repair is idempotent, so always run it.
    let wav_for_repair = wav.clone();
    let info = match tokio::task::spawn_blocking(move || vox_audio::wav::repair(&wav_for_repair))
        .await
        .map_err(anyhow::Error::from)?
    {
        Ok(info) => info,
        Err(vox_audio::wav::WavError::Format(why)) => {
            return Err(Failure::Quarantine(format!("the recording cannot be repaired: {why}")));
        }
        Err(e) => return Err(anyhow::Error::from(e).context("repair the recording").into()),
    };
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
            Err(s) => return Err(anyhow::anyhow!("point call {call_id} at its recording: {}", s.message()).into()),
        }
    }
    std::fs::remove_file(&wav)?;
    std::fs::remove_file(&ticket_path)?;
    drop(in_use);
    tracing::info!(call_id, key = %ticket.key, size_bytes = stored.size_bytes, duration_ms = info.duration_ms, "recording uploaded");
    Ok(Uploaded::Yes)
}
