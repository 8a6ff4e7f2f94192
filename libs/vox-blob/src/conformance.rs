//! What every [`BlobStore`] must do; a backend calls [`run_all`] with an empty store.
#![allow(clippy::unwrap_used, reason = "test code")]

use std::time::Duration;

use vox_domain::ErrorCode;

use crate::BlobStore;

pub async fn run_all(store: &dyn BlobStore) {
    round_trip(store).await;
    replace_and_delete(store).await;
    files(store).await;
    listing(store).await;
    presigning(store).await;
    bad_keys(store).await;
}

async fn round_trip(store: &dyn BlobStore) {
    let info = store.put_bytes("conformance/a.bin", b"hello").await.unwrap();
    assert_eq!(info.size_bytes, 5);
    assert_eq!(info.sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    assert_eq!(store.get("conformance/a.bin").await.unwrap(), b"hello");
    assert_eq!(store.head("conformance/a.bin").await.unwrap(), Some(info));
    assert_eq!(store.head("conformance/none").await.unwrap(), None);
    assert_eq!(store.get("conformance/none").await.unwrap_err().code, ErrorCode::NotFound);
}

async fn replace_and_delete(store: &dyn BlobStore) {
    store.put_bytes("conformance/b.bin", b"one").await.unwrap();
    store.put_bytes("conformance/b.bin", b"two!").await.unwrap();
    assert_eq!(store.get("conformance/b.bin").await.unwrap(), b"two!");
    store.delete("conformance/b.bin").await.unwrap();
    assert_eq!(store.head("conformance/b.bin").await.unwrap(), None);
    store.delete("conformance/b.bin").await.unwrap();
}

async fn files(store: &dyn BlobStore) {
    let dir = std::env::temp_dir().join(format!("vox-blob-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rec.wav");
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &body).unwrap();
    let info = store.put_file("conformance/rec.wav", &path).await.unwrap();
    assert_eq!(info.size_bytes, body.len() as u64);
    assert_eq!(store.get("conformance/rec.wav").await.unwrap(), body);
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn listing(store: &dyn BlobStore) {
    for key in ["conformance/list/2026/01/a.wav", "conformance/list/2026/01/b.wav", "conformance/list/2026/02/c.wav"] {
        store.put_bytes(key, key.as_bytes()).await.unwrap();
    }
    assert_eq!(
        store.list("conformance/list/2026/01/").await.unwrap(),
        ["conformance/list/2026/01/a.wav", "conformance/list/2026/01/b.wav"]
    );
    assert_eq!(store.list("conformance/list/2026/0").await.unwrap().len(), 3, "any key prefix, not only folders");
    assert!(store.list("conformance/nothing-here/").await.unwrap().is_empty());
    for key in store.list("conformance/list/").await.unwrap() {
        store.delete(&key).await.unwrap();
    }
    assert!(store.list("conformance/list/").await.unwrap().is_empty());
}

async fn presigning(store: &dyn BlobStore) {
    store.put_bytes("conformance/p.bin", b"play me").await.unwrap();
    // A store either makes a URL that names the object, or says it cannot.
    if let Some(url) = store.presign_get("conformance/p.bin", Duration::from_secs(900)).await.unwrap() {
        assert!(url.starts_with("http://") || url.starts_with("https://"), "{url}");
        assert!(url.contains("conformance/p.bin"), "{url}");
    }
    assert_eq!(
        store.presign_get("../p.bin", Duration::from_secs(60)).await.unwrap_err().code,
        ErrorCode::InvalidArgument
    );
}

async fn bad_keys(store: &dyn BlobStore) {
    assert_eq!(store.put_bytes("../escape", b"x").await.unwrap_err().code, ErrorCode::InvalidArgument);
    assert_eq!(store.get("/abs").await.unwrap_err().code, ErrorCode::InvalidArgument);
}
