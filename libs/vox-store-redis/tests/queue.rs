//! The work queue on a real Redis (started by `bash ops/test.sh`, named by
//! `VOX_TEST_REDIS_URL`) passes the queue conformance suite unchanged, each test in a key
//! space of its own.

use std::sync::Arc;

use vox_store::conformance::queue::QueueHarness;
use vox_store_redis::{Redis, RedisWorkQueue};

async fn fresh() -> QueueHarness {
    let url = std::env::var("VOX_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("set VOX_TEST_REDIS_URL or run bash ops/test.sh, which starts redis-server (Redis tests never skip)")
    });
    let prefix = format!("vox-test-{}:", vox_domain::ids::random_token(8));
    let redis = Redis::connect(&url, &prefix).await.expect("redis");
    QueueHarness { queue: Arc::new(RedisWorkQueue::new(redis).await), guard: Box::new(()) }
}

vox_store::queue_conformance_tests!(fresh);
