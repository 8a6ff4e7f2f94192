//! The S3 store against a real S3 server (`s3s-fs`, started by `bash ops/test.sh`, which
//! exports `VOX_TEST_S3_URL`, `VOX_TEST_S3_ACCESS_KEY` and `VOX_TEST_S3_SECRET_KEY`): the
//! conformance suite every BlobStore passes, plus what only S3 has. These tests never
//! skip: without the server they fail and say what to run.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use vox_blob::BlobStore;
use vox_blob_s3::{MIN_PART_SIZE, S3Settings, S3Store};
use vox_domain::ErrorCode;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("set {name} or run bash ops/test.sh, which starts an S3 server (s3s-fs); S3 tests never skip")
    })
}

/// Settings for a fresh bucket on the test server, created on first use.
fn settings(bucket: &str) -> S3Settings {
    S3Settings {
        endpoint_url: env("VOX_TEST_S3_URL"),
        bucket: bucket.into(),
        access_key: env("VOX_TEST_S3_ACCESS_KEY"),
        secret_key: env("VOX_TEST_S3_SECRET_KEY"),
        signing_region: "us-east-1".into(),
        force_path_style: true,
        create_bucket: true,
        part_size: MIN_PART_SIZE,
    }
}

fn fresh_bucket(what: &str) -> String {
    format!("vox-{what}-{}", vox_domain::ids::random_token(10).to_ascii_lowercase())
}

#[tokio::test]
async fn s3_passes_the_blob_conformance_suite_on_a_bucket_it_creates() {
    let store = S3Store::new(settings(&fresh_bucket("conf"))).unwrap();
    vox_blob::conformance::run_all(&store).await;
}

#[tokio::test]
async fn large_recordings_go_up_in_parts_and_come_back_whole() {
    let store = S3Store::new(settings(&fresh_bucket("multi"))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.wav");
    // Two full parts and a short last one.
    let body: Vec<u8> = (0..(2 * MIN_PART_SIZE + 12_345)).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &body).unwrap();
    let started = std::time::Instant::now();
    let info = store.put_file("recordings/2026/01/02/ca_long.wav", &path).await.unwrap();
    eprintln!("multipart upload of {} bytes took {:?}", body.len(), started.elapsed());
    assert_eq!(info.size_bytes, body.len() as u64);
    assert_eq!(store.head("recordings/2026/01/02/ca_long.wav").await.unwrap(), Some(info));
    assert_eq!(store.get("recordings/2026/01/02/ca_long.wav").await.unwrap(), body);
    assert_eq!(store.list("recordings/").await.unwrap(), ["recordings/2026/01/02/ca_long.wav"]);
}

#[tokio::test]
async fn presigned_urls_play_without_credentials_until_they_expire() {
    let store = S3Store::new(settings(&fresh_bucket("presign"))).unwrap();
    store.put_bytes("recordings/ca_p.wav", b"RIFF and some audio").await.unwrap();
    let url = store.presign_get("recordings/ca_p.wav", Duration::from_secs(900)).await.unwrap().unwrap();
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"RIFF and some audio");

    let short = store.presign_get("recordings/ca_p.wav", Duration::from_secs(1)).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(reqwest::get(&short).await.unwrap().status(), 403, "an expired URL plays nothing");
    let mut tampered = url.replace("ca_p.wav", "ca_q.wav");
    assert_ne!(reqwest::get(&tampered).await.unwrap().status(), 200, "a URL signs one object only");
    tampered = url.replace("X-Amz-Expires=900", "X-Amz-Expires=9000");
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 403, "the expiry is signed");
}

#[tokio::test]
async fn a_missing_bucket_is_created_only_when_allowed_and_bad_keys_are_refused() {
    let bucket = fresh_bucket("nocreate");
    let store = S3Store::new(S3Settings { create_bucket: false, ..settings(&bucket) }).unwrap();
    let err = store.put_bytes("a.bin", b"x").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::FailedPrecondition, "{err}");
    assert!(err.message.contains(&bucket), "names the bucket: {err}");

    let wrong =
        S3Store::new(S3Settings { secret_key: "not the secret".into(), ..settings(&fresh_bucket("auth")) }).unwrap();
    let err = wrong.put_bytes("a.bin", b"x").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::PermissionDenied, "{err}");
    assert!(!err.message.contains("not the secret"), "errors never carry the secret: {err}");
}

/// A server of this test's own, whose files the test can reach behind S3's back.
struct OwnServer {
    child: std::process::Child,
    root: tempfile::TempDir,
    url: String,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn own_server() -> OwnServer {
    let bin = vox_testkit_s3s();
    let root = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", "own-ak", "--secret-key", "own-sk"])
        .arg(root.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    OwnServer { child, root, url: format!("http://127.0.0.1:{port}") }
}

fn vox_testkit_s3s() -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("s3s-fs"))
        .chain(std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin/s3s-fs")))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("s3s-fs is not installed; run bash ops/install-test-deps.sh"))
}

#[tokio::test]
async fn a_corrupted_object_is_refused_on_read() {
    let server = own_server().await;
    let store = S3Store::new(S3Settings {
        endpoint_url: server.url.clone(),
        access_key: "own-ak".into(),
        secret_key: "own-sk".into(),
        ..settings("corrupt")
    })
    .unwrap();
    store.put_bytes("recordings/ca_c.wav", b"the original audio").await.unwrap();
    // s3s-fs keeps objects as files under <root>/<bucket>/<key>; flip the content.
    let file = server.root.path().join("corrupt/recordings/ca_c.wav");
    std::fs::write(&file, b"the tampered! audio").unwrap();
    let err = store.get("recordings/ca_c.wav").await.unwrap_err();
    assert!(err.message.contains("SHA-256"), "{err}");
}
