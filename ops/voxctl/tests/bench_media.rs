//! `voxctl bench media` end to end, small: 2 streams × 3 s through a real Vox cluster
//! (voxctl up, echo agent, recording on) in both worker shapes (a worker process per call,
//! and one worker process holding both calls) and through the reference Python worker (its
//! venv is made on first use under ~/.cache/vox-bench). Every frame comes back on both,
//! none crosses to another stream, and the report has the shape scripts read. (Not
//! timed: debug builds on a busy machine say nothing about latency.)

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests stop on failure")]

use std::process::Command;

use vox_testkit::workspace_binary;

#[test]
fn every_frame_comes_back_from_both_vox_shapes_and_from_the_python_worker() {
    let bridge = workspace_binary("voxbridge", "voxbridge");
    let _ = (workspace_binary("voxcore", "voxcore"), workspace_binary("voxgate", "voxgate"));
    let out = Command::new(env!("CARGO_BIN_EXE_voxctl"))
        .args(["bench", "media", "--json", "--streams", "2", "--seconds", "3", "--systems", "vox,vox-shared,python"])
        .arg("--bin-dir")
        .arg(bridge.parent().unwrap())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "voxctl bench media failed:\n{stdout}\n{stderr}");
    let line = stdout.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no report in {stdout}"));
    eprintln!("{line}");
    let r: serde_json::Value = serde_json::from_str(line).unwrap();

    assert_eq!((r["streams"].as_u64(), r["seconds"].as_u64()), (Some(2), Some(3)), "{r}");
    let systems = r["systems"].as_array().unwrap();
    let names: Vec<&str> = systems.iter().map(|s| s["system"].as_str().unwrap()).collect();
    assert_eq!(names, ["vox", "vox-shared", "python"], "{r}");
    for s in systems {
        let name = &s["system"];
        assert_eq!(s["frames_sent"], 300, "{name}: 2 streams x 150 frames: {s}");
        assert_eq!(s["frames_lost"], 0, "{name} lost frames: {s}");
        assert_eq!(s["frames_echoed"], 300, "{name}: {s}");
        assert_eq!(s["frames_misrouted"], 0, "{name}: {s}");
        assert_eq!(s["errors"].as_array().unwrap().len(), 0, "{name}: {s}");
        for field in ["echo_p50_ms", "echo_p99_ms", "echo_max_ms", "rss_mb_per_slot", "client_cpu_ms"] {
            assert!(s[field].as_f64().is_some_and(|v| v > 0.0), "{name}.{field}: {s}");
        }
        assert!(s["echo_p50_ms"].as_f64() <= s["echo_p99_ms"].as_f64(), "{s}");
        assert!(s["cpu_ms_per_call_second"].as_f64().is_some_and(|v| v > 0.0), "{name}: {s}");
    }
    for vox in &systems[..2] {
        let cpu = &vox["cpu_ms_by_process"];
        for role in ["voxgate", "workers", "voxcore host", "voxbridge"] {
            assert!(cpu[role].is_number(), "{}'s CPU names {role}: {cpu}", vox["system"]);
        }
        assert!(vox["rss_mb_by_process"]["workers"].as_f64().is_some_and(|mb| mb > 1.0), "{r}");
    }
    let ratios = r["vox_ratios"].as_array().unwrap();
    let pairs: Vec<(&str, &str)> =
        ratios.iter().map(|x| (x["vox"].as_str().unwrap(), x["against"].as_str().unwrap())).collect();
    assert_eq!(pairs, [("vox", "python"), ("vox-shared", "python")], "{r}");
    for ratio in ratios {
        for field in ["echo_p99", "cpu_per_call_second", "rss_per_slot"] {
            assert!(ratio[field].as_f64().is_some_and(|v| v > 0.0), "{field}: {r}");
        }
    }
}
