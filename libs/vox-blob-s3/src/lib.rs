//! The production [`BlobStore`]: S3-compatible object storage (AWS S3, MinIO, RustFS)
//! through `aws-sdk-s3`, one [`S3Store`] (one client) per region's storage settings.
//!
//! What it adds to a plain PUT/GET:
//! - **Addressing**: path style (`http://host/bucket/key`, MinIO and RustFS) or virtual-host
//!   style (`https://bucket.host/key`, AWS), from the region's `force_path_style`.
//! - **Multipart upload** for files larger than one part (8 MiB by default): parts are
//!   read from disk one at a time, each sent with its SHA-256, and an upload that fails
//!   is aborted so no half object or orphaned parts stay behind.
//! - **Checksums**: every PUT and part carries `x-amz-checksum-sha256`, so the server
//!   refuses a body that changed on the way; the object's hex SHA-256 is kept in its
//!   `x-amz-meta-sha256` metadata, which `head` reports without a download and `get`
//!   checks the downloaded bytes against.
//! - **Presigned GET URLs** for playback, valid for the expiry asked (at most 7 days).
//! - **The bucket created on first use** when the settings allow it; otherwise a missing
//!   bucket is an error that names it.
//!
//! Credentials come only from the settings (voxbridge's region storage, handed to fleet
//! nodes over an authenticated RPC), never from the machine's environment, so no process
//! can silently write somewhere the control plane does not know. The secret key is never
//! printed: [`S3Settings`]'s `Debug` redacts it.

use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation, SharedHttpClient,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use vox_blob::{BlobInfo, BlobStore, validate_key};
use vox_domain::{Error, Result};

/// The smallest part S3 accepts (but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts of a multipart upload; files up to this size go up in one PUT.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// The metadata key (`x-amz-meta-sha256`) that holds an object's hex SHA-256.
const SHA256_META: &str = "sha256";

/// One region's object storage, secret in clear (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// http(s)://host[:port]
    pub endpoint_url: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// SigV4 signing region, e.g. "us-east-1".
    pub signing_region: String,
    /// Path-style addressing (MinIO, RustFS) instead of virtual-host style (AWS).
    pub force_path_style: bool,
    /// Create the bucket on first use when it does not exist.
    pub create_bucket: bool,
    /// Size of multipart upload parts; at least [`MIN_PART_SIZE`].
    pub part_size: usize,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint_url", &self.endpoint_url)
            .field("bucket", &self.bucket)
            .field("access_key", &self.access_key)
            .field("secret_key", &"(redacted)")
            .field("signing_region", &self.signing_region)
            .field("force_path_style", &self.force_path_style)
            .field("create_bucket", &self.create_bucket)
            .field("part_size", &self.part_size)
            .finish()
    }
}

/// One HTTP client (connection pool, TLS through rustls on ring) for every region's store.
static HTTP: LazyLock<SharedHttpClient> = LazyLock::new(|| {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
});

/// Objects in one bucket of an S3-compatible server.
#[derive(Debug)]
pub struct S3Store {
    client: Client,
    settings: S3Settings,
    /// Set once the bucket is known to exist (checked, or created) before the first write.
    bucket_ready: tokio::sync::OnceCell<()>,
}

impl S3Store {
    /// A client for `settings`; nothing is sent until the first request.
    pub fn new(settings: S3Settings) -> Result<Self> {
        let endpoint = vox_domain::region::validate_http_url("storage.endpoint_url", &settings.endpoint_url)?;
        if settings.bucket.trim().is_empty() {
            return Err(Error::invalid("storage.bucket", "required"));
        }
        if settings.access_key.is_empty() || settings.secret_key.is_empty() {
            return Err(Error::invalid("storage", "an access key and a secret key are required"));
        }
        if settings.part_size < MIN_PART_SIZE {
            return Err(Error::invalid("part_size", format!("at least {MIN_PART_SIZE} bytes (S3's minimum)")));
        }
        let region =
            if settings.signing_region.is_empty() { "us-east-1".to_string() } else { settings.signing_region.clone() };
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(HTTP.clone())
            .region(Region::new(region))
            .endpoint_url(endpoint)
            .force_path_style(settings.force_path_style)
            .credentials_provider(Credentials::new(
                settings.access_key.clone(),
                settings.secret_key.clone(),
                None,
                None,
                "vox-region-storage",
            ))
            // Checksums are ours (SHA-256, sent as a header): no aws-chunked trailers,
            // which not every S3-compatible server takes.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(120))
                    .build(),
            )
            .build();
        Ok(S3Store { client: Client::from_conf(config), settings, bucket_ready: tokio::sync::OnceCell::new() })
    }

    pub fn settings(&self) -> &S3Settings {
        &self.settings
    }

    fn bucket(&self) -> &str {
        &self.settings.bucket
    }

    /// Makes sure the bucket exists before a write: checked once, created when allowed.
    async fn ensure_bucket(&self) -> Result<()> {
        self.bucket_ready
            .get_or_try_init(|| async {
                match self.client.head_bucket().bucket(self.bucket()).send().await {
                    Ok(_) => Ok(()),
                    Err(e) if status(&e) == Some(404) => {
                        if !self.settings.create_bucket {
                            return Err(Error::precondition(format!(
                                "bucket {:?} does not exist at {} and creating buckets is off; create it or allow it",
                                self.bucket(),
                                self.settings.endpoint_url
                            )));
                        }
                        match self.client.create_bucket().bucket(self.bucket()).send().await {
                            Ok(_) => {
                                tracing::info!(bucket = self.bucket(), endpoint = %self.settings.endpoint_url, "created the bucket on first use");
                                Ok(())
                            }
                            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")) => Ok(()),
                            Err(e) => Err(self.failed("create bucket", self.bucket(), e)),
                        }
                    }
                    Err(e) => Err(self.failed("check bucket", self.bucket(), e)),
                }
            })
            .await
            .map(|_| ())
    }

    /// A store error that names the operation, the object and what the server said;
    /// never the credentials.
    fn failed<E>(&self, op: &str, key: &str, e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = e.code().map(str::to_string);
        let status = status(&e);
        let detail = match (&code, status) {
            (Some(c), Some(s)) => format!("{c} (HTTP {s}): {}", e.message().unwrap_or("")),
            _ => DisplayErrorContext(&e).to_string(),
        };
        let msg = format!("s3 {op} {}/{key} at {}: {detail}", self.bucket(), self.settings.endpoint_url);
        match (code.as_deref(), status) {
            (Some("NoSuchKey" | "NotFound"), _) | (_, Some(404)) => Error::not_found("object", key),
            (Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch"), _) | (_, Some(403)) => {
                Error::permission_denied(msg)
            }
            (Some("BadDigest" | "XAmzContentSHA256Mismatch" | "InvalidDigest"), _) => {
                Error::internal(format!("{msg} (the body did not match its checksum)"))
            }
            _ => Error::unavailable(msg),
        }
    }

    async fn put_single(&self, key: &str, bytes: Vec<u8>) -> Result<BlobInfo> {
        let digest = Sha256::digest(&bytes);
        let info = BlobInfo { size_bytes: bytes.len() as u64, sha256: format!("{digest:x}") };
        self.client
            .put_object()
            .bucket(self.bucket())
            .key(key)
            .checksum_sha256(base64::engine::general_purpose::STANDARD.encode(digest))
            .metadata(SHA256_META, &info.sha256)
            .content_type(content_type(key))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.failed("put", key, e))?;
        Ok(info)
    }

    /// Uploads `path` in parts of `part_size`; aborts the upload on any failure.
    async fn put_multipart(&self, key: &str, path: &Path, size: u64) -> Result<BlobInfo> {
        // The whole file's hash goes into the metadata, set when the upload is created:
        // one pass over the file first, then the parts.
        let sha256 = file_sha256(path).await?;
        let created = self
            .client
            .create_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .metadata(SHA256_META, &sha256)
            .content_type(content_type(key))
            .send()
            .await
            .map_err(|e| self.failed("start multipart upload", key, e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| Error::unavailable(format!("s3 gave no upload id for {key}")))?
            .to_string();
        match self.upload_parts(key, path, &upload_id).await {
            Ok(parts) => {
                let done = self
                    .client
                    .complete_multipart_upload()
                    .bucket(self.bucket())
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                    .send()
                    .await;
                if let Err(e) = done {
                    let err = self.failed("complete multipart upload", key, e);
                    self.abort(key, &upload_id).await;
                    return Err(err);
                }
                Ok(BlobInfo { size_bytes: size, sha256 })
            }
            Err(e) => {
                self.abort(key, &upload_id).await;
                Err(e)
            }
        }
    }

    async fn upload_parts(&self, key: &str, path: &Path, upload_id: &str) -> Result<Vec<CompletedPart>> {
        let mut file = tokio::fs::File::open(path).await.map_err(|e| local_io("open", path, e))?;
        let mut parts = Vec::new();
        for number in 1.. {
            let mut buf = Vec::with_capacity(self.settings.part_size);
            (&mut file)
                .take(self.settings.part_size as u64)
                .read_to_end(&mut buf)
                .await
                .map_err(|e| local_io("read", path, e))?;
            if buf.is_empty() && number > 1 {
                break;
            }
            let last = buf.len() < self.settings.part_size;
            let checksum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&buf));
            let part = self
                .client
                .upload_part()
                .bucket(self.bucket())
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .checksum_sha256(&checksum)
                .body(ByteStream::from(buf))
                .send()
                .await
                .map_err(|e| self.failed(&format!("upload part {number} of"), key, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_string))
                    .checksum_sha256(part.checksum_sha256().unwrap_or(&checksum))
                    .build(),
            );
            if last {
                break;
            }
        }
        Ok(parts)
    }

    async fn abort(&self, key: &str, upload_id: &str) {
        let r = self.client.abort_multipart_upload().bucket(self.bucket()).key(key).upload_id(upload_id).send().await;
        if let Err(e) = r {
            tracing::warn!(key, error = %DisplayErrorContext(&e), "could not abort a failed multipart upload; the bucket's lifecycle rules must clean its parts");
        }
    }
}

fn status<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn content_type(key: &str) -> &'static str {
    if key.ends_with(".wav") { "audio/wav" } else { "application/octet-stream" }
}

fn local_io(op: &str, path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::not_found("file", &path.display().to_string())
    } else {
        Error::unavailable(format!("{op} {}: {e}", path.display()))
    }
}

async fn file_sha256(path: &Path) -> Result<String> {
    let mut file = tokio::fs::File::open(path).await.map_err(|e| local_io("open", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| local_io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

#[async_trait]
impl BlobStore for S3Store {
    async fn put_file(&self, key: &str, path: &Path) -> Result<BlobInfo> {
        validate_key(key)?;
        self.ensure_bucket().await?;
        let size = tokio::fs::metadata(path).await.map_err(|e| local_io("stat", path, e))?.len();
        if size > self.settings.part_size as u64 {
            self.put_multipart(key, path, size).await
        } else {
            let bytes = tokio::fs::read(path).await.map_err(|e| local_io("read", path, e))?;
            self.put_single(key, bytes).await
        }
    }

    async fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<BlobInfo> {
        validate_key(key)?;
        self.ensure_bucket().await?;
        self.put_single(key, bytes.to_vec()).await
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>> {
        validate_key(key)?;
        let out = self
            .client
            .get_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
            .map_err(|e| self.failed("get", key, e))?;
        let expected = out.metadata().and_then(|m| m.get(SHA256_META)).cloned();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| Error::unavailable(format!("s3 get {}/{key}: the body broke off: {e}", self.bucket())))?
            .into_bytes()
            .to_vec();
        if let Some(expected) = expected {
            let got = format!("{:x}", Sha256::digest(&bytes));
            if got != expected {
                return Err(Error::internal(format!(
                    "s3 get {}/{key}: the content's SHA-256 {got} is not the stored {expected}",
                    self.bucket()
                )));
            }
        }
        Ok(bytes)
    }

    async fn head(&self, key: &str) -> Result<Option<BlobInfo>> {
        validate_key(key)?;
        let out = match self.client.head_object().bucket(self.bucket()).key(key).send().await {
            Ok(o) => o,
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(self.failed("head", key, e)),
        };
        let size_bytes = out.content_length().unwrap_or_default().max(0) as u64;
        match out.metadata().and_then(|m| m.get(SHA256_META)) {
            Some(sha256) => Ok(Some(BlobInfo { size_bytes, sha256: sha256.clone() })),
            // Written by someone else: hash it the long way.
            None => {
                let bytes = self.get(key).await?;
                Ok(Some(BlobInfo { size_bytes: bytes.len() as u64, sha256: format!("{:x}", Sha256::digest(&bytes)) }))
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        match self.client.delete_object().bucket(self.bucket()).key(key).send().await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.failed("delete", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(self.bucket())
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await;
            let page = match page {
                Ok(p) => p,
                // No bucket yet: nothing in it.
                Err(e) if e.code() == Some("NoSuchBucket") => return Ok(Vec::new()),
                Err(e) => return Err(self.failed("list", prefix, e)),
            };
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<Option<String>> {
        validate_key(key)?;
        let config = PresigningConfig::expires_in(expires_in)
            .map_err(|e| Error::invalid("expires_in", format!("{e} (at most 7 days)")))?;
        let req = self
            .client
            .get_object()
            .bucket(self.bucket())
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| self.failed("presign", key, e))?;
        Ok(Some(req.uri().to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings(path_style: bool) -> S3Settings {
        S3Settings {
            endpoint_url: "https://s3.example.com".into(),
            bucket: "recordings".into(),
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "very-secret-key-value".into(),
            signing_region: "eu-west-1".into(),
            force_path_style: path_style,
            create_bucket: false,
            part_size: DEFAULT_PART_SIZE,
        }
    }

    #[tokio::test]
    async fn addressing_style_shapes_the_presigned_url() {
        let key = "recordings/2026/01/02/ca_1.wav";
        let path = S3Store::new(settings(true)).unwrap().presign_get(key, Duration::from_secs(900)).await.unwrap();
        let path = path.unwrap();
        assert!(path.starts_with("https://s3.example.com/recordings/recordings/2026/01/02/ca_1.wav?"), "{path}");
        let vhost = S3Store::new(settings(false)).unwrap().presign_get(key, Duration::from_secs(900)).await.unwrap();
        let vhost = vhost.unwrap();
        assert!(vhost.starts_with("https://recordings.s3.example.com/recordings/2026/01/02/ca_1.wav?"), "{vhost}");
        for url in [&path, &vhost] {
            assert!(url.contains("X-Amz-Expires=900"), "{url}");
            assert!(url.contains("eu-west-1"), "signed for the region's signing region: {url}");
            assert!(!url.contains("very-secret-key-value"), "the secret never leaves the signer");
        }
    }

    #[test]
    fn settings_are_checked_and_the_secret_never_printed() {
        let printed = format!("{:?}", settings(true));
        assert!(!printed.contains("very-secret-key-value"), "{printed}");
        assert!(S3Store::new(S3Settings { part_size: 1024, ..settings(true) }).is_err());
        assert!(S3Store::new(S3Settings { endpoint_url: "s3.example.com".into(), ..settings(true) }).is_err());
        assert!(S3Store::new(S3Settings { secret_key: String::new(), ..settings(true) }).is_err());
    }
}
