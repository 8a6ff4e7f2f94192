//! What an SRE confirming a deploy or a rollback sees: every binary names the commit it
//! was built from (`--version`, `/health`, `vox_build_info`), every process exports its
//! CPU and memory, and the dialler's gRPC server answers reflection like the others.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests stop on failure")]

use std::process::Command;

use vox_proto::backend::v1 as bpb;
use vox_testkit::{ServerProcess, control, grpcurl, workspace_binary};

/// The commit the workspace is at, as the binaries were built from it.
fn head() -> String {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git is needed to know which commit the binaries should name");
    assert!(out.status.success(), "git rev-parse failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn every_binary_names_its_commit_in_its_version() {
    let sha = head();
    for (package, bin) in [
        ("voxbridge", "voxbridge"),
        ("voxgate", "voxgate"),
        ("voxcore", "voxcore"),
        ("voxdialler", "voxdialler"),
        ("voxctl", "voxctl"),
        ("voxsim", "voxsim"),
    ] {
        let out = Command::new(workspace_binary(package, bin)).arg("--version").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{bin} --version failed");
        assert!(text.contains(&format!("+{sha}")), "{bin} --version says {text:?}, not the commit {sha}");
    }
}

#[tokio::test]
async fn health_and_metrics_name_the_build_and_the_dialler_answers_reflection() {
    let sha = head();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bridge").display().to_string();
    let bridge = control::start_bridge(
        "voxbridge",
        &["--listen".into(), "127.0.0.1:0".into(), "--data-dir".into(), data],
        dir.path(),
    )
    .await;
    let health: serde_json::Value =
        reqwest::get(format!("{}/health", bridge.url())).await.unwrap().json().await.unwrap();
    assert!(health["version"].as_str().unwrap().ends_with(&format!("+{sha}")), "{health}");

    let (channel, admin) = control::admin_session(&bridge.url()).await;
    let region = control::create_region(&channel, &admin, "us-east-1", None).await;
    let dialler_node = control::register_node(&channel, &admin, &region, bpb::NodeKind::Dialler).await;
    let args: Vec<String> = [
        "--health-listen",
        "127.0.0.1:0",
        "--bridge-url",
        &bridge.url(),
        "--provider",
        "sim",
        "--provider-url",
        "http://127.0.0.1:9",
        "--gateway-url",
        "http://127.0.0.1:9",
    ]
    .map(String::from)
    .to_vec();
    let dialler = ServerProcess::start_listening(
        "voxdialler",
        &workspace_binary("voxdialler", "voxdialler"),
        &args,
        &[("VOX_NODE_SECRET", dialler_node.api_secret.clone()), ("TWILIO_AUTH_TOKEN", "t".into())],
        dir.path(),
    )
    .await
    .unwrap();

    for (service, url) in [("voxbridge", bridge.url()), ("voxdialler", dialler.url())] {
        let text = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();
        let build = format!(
            "vox_build_info{{service=\"{service}\",version=\"{}\",git_sha=\"{sha}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&build), "{service} /metrics lacks {build}:\n{text}");
        for name in ["process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds "] {
            assert!(text.contains(name), "{service} /metrics lacks {name}");
        }
    }

    let addr = dialler.addr.to_string();
    let listed = grpcurl(&["-plaintext", &addr, "list"]);
    for service in ["vox.dialler.v1.DiallerService", "grpc.health.v1.Health"] {
        assert!(listed.lines().any(|l| l == service), "{service} missing from the dialler's reflection:\n{listed}");
    }
    let described = grpcurl(&["-plaintext", &addr, "describe", "vox.dialler.v1.DiallerService.GetStatus"]);
    assert!(described.contains("GetStatusRequest"), "{described}");
    let serving = grpcurl(&["-plaintext", &addr, "grpc.health.v1.Health/Check"]);
    assert!(serving.contains("SERVING"), "{serving}");
}
