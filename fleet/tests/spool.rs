//! The uploader against a spool holding bad recordings: a crash in a recording's first
//! moments, files that cannot be repaired, a store that refuses one recording. Each
//! bad recording ends in `<spool>/quarantine/` (kept, never retried) and never holds
//! back the good ones; the backlog shows in `SpoolStats`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use vox_blob::{BlobInfo, BlobStore, LocalDirStore};
use voxcore::recording::{CallRecorder, Ticket, recording_key};
use voxcore::spool::{QUARANTINE, SpoolStats, UploadPolicy, Uploader};

const POISON: &str = "ca_000000000000bad1";
const GOOD: &str = "ca_000000000000g00d";

/// A directory store that refuses every upload of one call's recording.
#[derive(Debug)]
struct Refusing {
    inner: LocalDirStore,
    refused_call: String,
    refusals: AtomicU32,
}

#[async_trait]
impl BlobStore for Refusing {
    async fn put_file(&self, key: &str, path: &Path) -> vox_domain::Result<BlobInfo> {
        if key.contains(&self.refused_call) {
            self.refusals.fetch_add(1, Ordering::SeqCst);
            return Err(vox_domain::Error::unavailable("this test's store refuses that recording"));
        }
        self.inner.put_file(key, path).await
    }
    async fn put_bytes(&self, key: &str, bytes: &[u8]) -> vox_domain::Result<BlobInfo> {
        self.inner.put_bytes(key, bytes).await
    }
    async fn get(&self, key: &str) -> vox_domain::Result<Vec<u8>> {
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> vox_domain::Result<Option<BlobInfo>> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &str) -> vox_domain::Result<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> vox_domain::Result<Vec<String>> {
        self.inner.list(prefix).await
    }
    async fn presign_get(&self, key: &str, expires_in: Duration) -> vox_domain::Result<Option<String>> {
        self.inner.presign_get(key, expires_in).await
    }
}

fn refusing(root: &Path, call_id: &str) -> Arc<Refusing> {
    Arc::new(Refusing { inner: LocalDirStore::new(root), refused_call: call_id.into(), refusals: AtomicU32::new(0) })
}

/// Short waits, so the test sees every attempt in well under a second.
fn quick(max_attempts: u32, first_backoff_ms: u64) -> UploadPolicy {
    UploadPolicy {
        max_attempts,
        first_backoff: Duration::from_millis(first_backoff_ms),
        max_backoff: Duration::from_millis(first_backoff_ms * 2),
        report_every: Duration::from_millis(50),
    }
}

/// A finished one-second recording in the spool.
fn record(spool: &Path, call_id: &str) {
    let mut r = CallRecorder::start(spool, call_id, 8000).unwrap();
    for _ in 0..50 {
        r.caller(&[300; 160]).unwrap();
        r.agent(&[-300; 160]).unwrap();
    }
    r.finish().unwrap();
}

/// A ticket as a crash would leave it, with `wav` as the recording's bytes.
fn ticket_with(spool: &Path, call_id: &str, wav: &[u8]) {
    std::fs::create_dir_all(spool).unwrap();
    Ticket { call_id: call_id.into(), key: recording_key(call_id, chrono::Utc::now()), finished: false }
        .save(spool)
        .unwrap();
    std::fs::write(spool.join(format!("{call_id}.wav")), wav).unwrap();
}

fn stored(root: &Path, call_id: &str) -> Option<PathBuf> {
    let name = format!("{call_id}.wav");
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if entry.file_name().to_string_lossy() == name {
                return Some(path);
            }
        }
    }
    None
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|e| e.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn one_refused_recording_never_holds_back_the_next_and_ends_in_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, root) = (dir.path().join("spool"), dir.path().join("store"));
    let store = refusing(&root, POISON);
    let uploader = Uploader::start_with(spool.clone(), store.clone(), None, quick(3, 200));
    // Two calls end, the refused one first.
    record(&spool, POISON);
    record(&spool, GOOD);
    uploader.queue(POISON);
    uploader.queue(GOOD);

    let good = until("the good recording in the store", || stored(&root, GOOD)).await;
    assert!(store.refusals.load(Ordering::SeqCst) < 3, "the good one went up between the refused one's attempts");
    assert!(spool.join(format!("{POISON}.wav")).is_file(), "the refused one still waits for its next attempt");
    let wav = std::fs::read(&good).unwrap();
    assert_eq!(vox_audio::wav::read_prompt(&wav).unwrap().samples.len(), 8000);

    let quarantine = spool.join(QUARANTINE);
    until("the refused recording in quarantine", || (names(&quarantine).len() == 2).then_some(())).await;
    assert_eq!(names(&quarantine), [format!("{POISON}.json"), format!("{POISON}.wav")]);
    assert_eq!(names(&spool), [QUARANTINE.to_string()], "the spool holds nothing else");
    assert_eq!(store.refusals.load(Ordering::SeqCst), 3, "three attempts, then no more");
    let kept = std::fs::read(quarantine.join(format!("{POISON}.wav"))).unwrap();
    assert_eq!(vox_audio::wav::read_prompt(&kept).unwrap().samples.len(), 8000, "kept whole");

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(store.refusals.load(Ordering::SeqCst), 3, "a quarantined recording is never retried");
    assert_eq!(uploader.stats(), SpoolStats { pending: 0, quarantined: 2, upload_failures: 3, uploaded: 1 });
}

#[tokio::test]
async fn recordings_that_cannot_be_repaired_go_to_quarantine_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, root) = (dir.path().join("spool"), dir.path().join("store"));
    let empty = "ca_00000000000empty";
    let garbage = "ca_000000000garbage";
    let bad_ticket = "ca_0000000000badtkt";
    let other = "ca_0000000000wrng01";
    ticket_with(&spool, empty, b"");
    ticket_with(&spool, garbage, &[0xAB; 500]);
    record(&spool, bad_ticket);
    std::fs::write(spool.join(format!("{bad_ticket}.json")), b"{not json").unwrap();
    // A ticket sending this recording over another call's object.
    record(&spool, other);
    Ticket { call_id: other.into(), key: recording_key(GOOD, chrono::Utc::now()), finished: true }
        .save(&spool)
        .unwrap();
    record(&spool, GOOD);
    // Left by an earlier run: counted, never touched.
    std::fs::create_dir_all(spool.join(QUARANTINE)).unwrap();
    std::fs::write(spool.join(QUARANTINE).join("ca_00000000000prev1.wav"), b"old").unwrap();

    let store = refusing(&root, "nothing-refused");
    let uploader = Uploader::start_with(spool.clone(), store.clone(), None, quick(5, 20));
    until("the good recording in the store", || stored(&root, GOOD)).await;
    let quarantine = spool.join(QUARANTINE);
    until("four recordings in quarantine", || (names(&quarantine).len() == 9).then_some(())).await;
    let mut expected: Vec<String> =
        [empty, garbage, bad_ticket, other].iter().flat_map(|c| [format!("{c}.json"), format!("{c}.wav")]).collect();
    expected.push("ca_00000000000prev1.wav".into());
    expected.sort();
    assert_eq!(names(&quarantine), expected);
    assert_eq!(names(&spool), [QUARANTINE.to_string()]);
    assert_eq!(std::fs::read(quarantine.join("ca_00000000000prev1.wav")).unwrap(), b"old");
    assert_eq!(std::fs::read(quarantine.join(format!("{garbage}.wav"))).unwrap(), [0xAB; 500], "kept as found");
    assert!(stored(&root, empty).is_none() && stored(&root, garbage).is_none() && stored(&root, other).is_none());
    assert_eq!(uploader.stats(), SpoolStats { pending: 0, quarantined: 9, upload_failures: 0, uploaded: 1 });

    // Quarantined again after an operator put back a recording with the same call id:
    // the first copy is kept beside the second.
    ticket_with(&spool, empty, b"");
    uploader.queue(empty);
    until("the second copy in quarantine", || (names(&quarantine).len() == 11).then_some(())).await;
    assert!(quarantine.join(format!("{empty}.1.wav")).is_file() && quarantine.join(format!("{empty}.wav")).is_file());
}

#[tokio::test]
async fn a_recording_cut_by_a_crash_at_once_is_repaired_and_uploaded() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, root) = (dir.path().join("spool"), dir.path().join("store"));
    // What a worker that died before its first flush leaves: the ticket, and the WAV
    // as far as its writer got (the OS let go of the call's lock with the process).
    ticket_with(&spool, GOOD, b"");
    std::fs::remove_file(spool.join(format!("{GOOD}.wav"))).unwrap();
    let mut w = vox_audio::wav::StereoWavWriter::create(&spool.join(format!("{GOOD}.wav")), 8000).unwrap();
    w.write(&[300; 160], &[-300; 160]).unwrap();
    std::mem::forget(w);

    let store = refusing(&root, "nothing-refused");
    let uploader = Uploader::start_with(spool.clone(), store, None, quick(3, 20));
    let wav = until("the crashed recording in the store", || stored(&root, GOOD)).await;
    let bytes = std::fs::read(wav).unwrap();
    assert!(vox_audio::wav::read_prompt(&bytes).is_ok(), "a valid WAV");
    // The spool copy goes once the store has confirmed the object, a moment after it shows.
    until("nothing quarantined, nothing left", || names(&spool).is_empty().then_some(())).await;
    until("the upload counted", || (uploader.stats().uploaded == 1).then_some(())).await;
    assert_eq!(uploader.stats(), SpoolStats { pending: 0, quarantined: 0, upload_failures: 0, uploaded: 1 });
}

#[test]
fn backoff_doubles_to_its_cap() {
    let p = UploadPolicy {
        max_attempts: 8,
        first_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(5),
        report_every: Duration::from_secs(60),
    };
    let waits: Vec<u64> = (1..=6).map(|n| p.backoff(n).as_millis() as u64).collect();
    assert_eq!(waits, [500, 1000, 2000, 4000, 5000, 5000]);
    assert_eq!(p.backoff(u32::MAX), Duration::from_secs(5));
}

#[tokio::test]
async fn a_live_recording_in_a_shared_spool_is_left_to_its_call() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, root) = (dir.path().join("spool"), dir.path().join("store"));
    // A sibling worker's call, still recording, when this worker (re)starts.
    let mut live = CallRecorder::start(&spool, GOOD, 8000).unwrap();
    live.caller(&[300; 8000]).unwrap();
    let store = refusing(&root, "nothing-refused");
    let uploader = Uploader::start_with(spool.clone(), store, None, quick(3, 20));
    uploader.queue(GOOD);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(stored(&root, GOOD).is_none(), "a live recording is not uploaded");
    assert_eq!(names(&spool), [format!("{GOOD}.json"), format!("{GOOD}.wav")], "nor moved or deleted");
    assert_eq!(uploader.stats(), SpoolStats::default());

    // The call ends; its worker queues it.
    live.agent(&[-300; 8000]).unwrap();
    let (_, info) = live.finish().unwrap();
    uploader.queue(GOOD);
    let wav = until("the finished recording in the store", || stored(&root, GOOD)).await;
    assert_eq!(std::fs::metadata(wav).unwrap().len(), info.size_bytes);
    assert!(names(&spool).is_empty());
}
