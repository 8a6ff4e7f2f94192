//! Jobs survive a Redis crash: on a server with an append-only file fsynced at every write
//! (what a production queue server runs with), jobs in every state are still there,
//! in order, after the server is killed with SIGKILL and started again over the same
//! directory, and the queue carries on through the same client without a restart of its
//! own. The server is this test's own (the binary `bash ops/test.sh` installs), so it can
//! be killed. Never skips.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vox_store::conformance::queue::{check_after_restart, fill_before_restart};
use vox_store::conformance::t0;
use vox_store::queue::WorkQueue;
use vox_store_redis::{Redis, RedisWorkQueue};
use vox_testkit::ServerProcess;

async fn durable_redis(port: u16, dir: &Path) -> ServerProcess {
    let bin = vox_testkit::require_program("redis-server", "run bash ops/install-test-deps.sh (or bash ops/test.sh)");
    let args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--dir",
        &dir.display().to_string(),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]
    .map(String::from)
    .to_vec();
    let p = ServerProcess::spawn("redis", &bin, &args, &[], dir).expect("spawn redis-server");
    for _ in 0..100 {
        if let Ok(mut c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            // Accepting connections is not enough: the append-only file may still load.
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 64];
            if c.write_all(b"PING\r\n").await.is_ok()
                && let Ok(n) = c.read(&mut buf).await
                && buf[..n].starts_with(b"+PONG")
            {
                return p;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server did not start on port {port}:\n{}", p.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_a_redis_crash_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = durable_redis(port, dir.path()).await;
    let redis = Redis::connect(&format!("redis://127.0.0.1:{port}"), "vox:").await.unwrap();
    let queue: Arc<dyn WorkQueue> = Arc::new(RedisWorkQueue::new(redis).await);
    let held = fill_before_restart(&queue, "recordings", t0()).await;

    server.kill();
    let _server = durable_redis(port, dir.path()).await;
    // The pooled connections died with the server: the first calls may fail, and are
    // retried as a consumer would.
    let mut up = false;
    for _ in 0..20 {
        let r = queue.stats("recordings", t0()).await;
        if r.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the queue answers again after the restart");
    check_after_restart(&queue, "recordings", &held, t0()).await;
}
