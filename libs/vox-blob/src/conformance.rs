//! What every [`BlobStore`] must do; a backend calls [`run_all`] with an empty store.
#![allow(clippy::unwrap_used, reason = "test code")]

use vox_domain::ErrorCode;

use crate::BlobStore;

pub async fn run_all(store: &dyn BlobStore) {
    round_trip(store).await;
    replace_and_delete(store).await;
    files(store).await;
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

async fn bad_keys(store: &dyn BlobStore) {
    assert_eq!(store.put_bytes("../escape", b"x").await.unwrap_err().code, ErrorCode::InvalidArgument);
    assert_eq!(store.get("/abs").await.unwrap_err().code, ErrorCode::InvalidArgument);
}
