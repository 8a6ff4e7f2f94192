//! `voxctl bench queue` end to end, small: 400 jobs through Vox's Redis queue, BullMQ
//! (installed with npm under ~/.cache/vox-bench on first use) and Vox's SQLite queue, on a
//! redis-server of the test's own. Every job arrives once on each, and the report has
//! the shape scripts read. Fails, never skips, when Node or BullMQ cannot be had. (Not
//! timed: a debug build on a busy machine says nothing about throughput.)

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests stop on failure")]

#[tokio::test]
async fn every_job_arrives_once_on_vox_and_on_bullmq() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _redis = vox_testkit::redis_server(port, dir.path()).await;
    let url = format!("redis://127.0.0.1:{port}");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_voxctl"))
        .args(["bench", "queue", "--json", "--jobs", "400", "--redis-url", &url])
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "voxctl bench queue failed (Node.js and npm must be installed):\n{stdout}\n{stderr}");
    let line = stdout.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no report in {stdout}"));
    eprintln!("{line}");
    let r: serde_json::Value = serde_json::from_str(line).unwrap();

    assert_eq!((r["jobs"].as_u64(), r["producers"].as_u64(), r["consumers"].as_u64()), (Some(400), Some(4), Some(4)));
    let systems = r["systems"].as_array().unwrap();
    let names: Vec<&str> = systems.iter().map(|s| s["system"].as_str().unwrap()).collect();
    assert_eq!(names, ["vox-redis", "bullmq", "vox-sqlite"], "{r}");
    for s in systems {
        assert_eq!((s["delivered"].as_u64(), s["duplicates"].as_u64()), (Some(400), Some(0)), "{s}");
        for field in ["jobs_per_second", "seconds", "enqueue_seconds"] {
            assert!(s[field].as_f64().is_some_and(|v| v > 0.0), "{field}: {s}");
        }
    }
    assert!(systems[1]["title"].as_str().unwrap().starts_with("BullMQ 5."), "{r}");
    for ratio in ["vox_redis_over_bullmq", "vox_sqlite_over_bullmq"] {
        assert!(r[ratio].as_f64().is_some_and(|v| v > 0.0), "{ratio}: {r}");
    }

    // Nothing left behind on the server.
    let keys = std::process::Command::new("redis-cli").args(["-p", &port.to_string(), "--scan"]).output().unwrap();
    assert!(keys.status.success());
    assert_eq!(String::from_utf8_lossy(&keys.stdout).trim(), "", "the bench deletes its keys");
}
