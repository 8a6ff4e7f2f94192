//! `voxctl bench control` end to end, small: 300 calls drained by 8 leasers on the
//! embedded store and on MongoDB (a secantusd-py server the bench starts; fails, never
//! skips, without it), each call leased exactly once by voxbridge's own count, and 100
//! nodes heartbeating against one voxbridge with the dashboard read meanwhile. Checks the
//! report's shape and counts, not its timings: a debug build on a busy machine says
//! nothing about throughput.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests stop on failure")]

use vox_testkit::workspace_binary;

#[tokio::test]
async fn every_call_is_leased_once_and_every_figure_is_printed() {
    let bridge = workspace_binary("voxbridge", "voxbridge");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_voxctl"))
        .args([
            "bench",
            "control",
            "--json",
            "--calls",
            "300",
            "--mongo-calls",
            "300",
            "--batch",
            "7",
            "--nodes",
            "100",
        ])
        .args(["--seconds", "2", "--heartbeat-every-ms", "500", "--bridge-bin"])
        .arg(&bridge)
        .env("RUST_LOG", "warn")
        .env_remove("VOX_BENCH_MONGO_URL")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "voxctl bench control failed (is secantusd-py installed?):\n{stdout}\n{stderr}");
    let line = stdout.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no report in {stdout}"));
    eprintln!("{line}");
    let r: serde_json::Value = serde_json::from_str(line).unwrap();

    let leases = r["leases"].as_array().unwrap();
    let stores: Vec<&str> = leases.iter().map(|l| l["store"].as_str().unwrap()).collect();
    assert_eq!(stores, ["embedded (SQLite)", "MongoDB"], "{r}");
    for l in leases {
        // Every call once: the leasers saw each id once, and voxbridge counts all of them
        // leased and none pending.
        assert_eq!(l["leased"].as_u64(), Some(300), "{l}");
        assert_eq!(l["duplicates"].as_u64(), Some(0), "{l}");
        assert_eq!((l["campaign_live"].as_u64(), l["campaign_pending"].as_u64()), (Some(300), Some(0)), "{l}");
        assert_eq!((l["leasers"].as_u64(), l["batch"].as_u64()), (Some(8), Some(7)), "{l}");
        for field in ["leases_per_second", "rpcs_per_second", "seconds"] {
            assert!(l[field].as_f64().is_some_and(|v| v > 0.0), "{field}: {l}");
        }
        // 300 calls in batches of 7: at least 43 answers with calls, and each leaser's empty one.
        assert!(l["rpc"]["samples"].as_u64().is_some_and(|n| n >= 43 + 8), "{l}");
    }

    let h = &r["heartbeats"];
    assert_eq!((h["nodes"].as_u64(), h["failed"].as_u64()), (Some(100), Some(0)), "{h}");
    // 100 nodes every 500 ms for 2 s: about 400 heartbeats measured.
    let measured = h["latency"]["samples"].as_u64().unwrap();
    assert!((300..=500).contains(&measured), "{measured} heartbeats measured: {h}");
    for field in ["heartbeats_per_second", "bridge_cpu_percent", "bridge_rss_mib", "bench_cpu_percent"] {
        assert!(h[field].as_f64().is_some_and(|v| v > 0.0), "{field}: {h}");
    }
    assert!(h["latency"]["p99_ms"].as_f64().is_some_and(|v| v > 0.0), "{h}");
    assert!(h["dashboard_idle"]["samples"].as_u64().is_some_and(|n| n > 0), "{h}");
    assert!(h["dashboard_loaded"]["samples"].as_u64().is_some_and(|n| n > 0), "{h}");
    assert!(r["machine"]["cores"].as_u64().is_some_and(|n| n > 0), "{r}");
}
