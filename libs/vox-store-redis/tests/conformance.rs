//! Presence and events on a real Redis (started by `bash ops/test.sh`, named by
//! `VOX_TEST_REDIS_URL`), documents on SQLite: the whole conformance suite, unchanged.

use std::time::Duration;

use vox_store::conformance::Harness;

async fn fresh() -> Harness {
    let url = std::env::var("VOX_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("set VOX_TEST_REDIS_URL or run bash ops/test.sh, which starts redis-server (Redis tests never skip)")
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let stores = vox_store_sqlite::open_stores(&dir.path().join("vox.db")).expect("open sqlite stores");
    // A fresh key space per test on the shared server.
    let prefix = format!("vox-test-{}:", vox_domain::ids::random_token(8));
    let stores =
        vox_store_redis::share_through_redis(stores, &url, &prefix, Duration::from_secs(60)).await.expect("redis");
    Harness { stores, guard: Box::new(dir) }
}

vox_store::conformance_tests!(fresh);
