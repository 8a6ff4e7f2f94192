//! The work queue on SQLite passes the queue conformance suite, and a queue reopened over
//! the same file (a voxbridge restart, or a crash: every change is committed before it
//! returns) finds every job where it was.

use std::sync::Arc;

use vox_store::conformance::queue::{QueueHarness, check_after_restart, fill_before_restart};
use vox_store::conformance::t0;
use vox_store::queue::WorkQueue;
use vox_store_sqlite::SqliteWorkQueue;

async fn fresh() -> QueueHarness {
    let dir = tempfile::tempdir().expect("temp dir");
    let queue = SqliteWorkQueue::open(&dir.path().join("vox.db")).await.expect("open sqlite queue");
    QueueHarness { queue: Arc::new(queue), guard: Box::new(dir) }
}

vox_store::queue_conformance_tests!(fresh);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_reopening_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("vox.db");
    let before: Arc<dyn WorkQueue> = Arc::new(SqliteWorkQueue::open(&path).await.expect("open"));
    let held = fill_before_restart(&before, "hooks", t0()).await;
    drop(before);
    let after: Arc<dyn WorkQueue> = Arc::new(SqliteWorkQueue::open(&path).await.expect("reopen"));
    check_after_restart(&after, "hooks", &held, t0()).await;
}
