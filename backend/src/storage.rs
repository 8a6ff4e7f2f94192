//! Where each region's recordings and prompts live, as voxbridge uses it: one S3 client
//! per region with S3 settings (rebuilt when the settings change), the local folder
//! (`--recordings-dir`) for regions without, and the signed playback URLs of local
//! recordings.
//!
//! A playback URL must be short-lived and need no other credential on both backends. S3
//! has presigned URLs; a local folder has none, so voxbridge signs a gateway path itself:
//! `/api/v1/recordings/<key>?expires=<unix s>&signature=<hex HMAC-SHA256>`, keyed by a key
//! derived from the master key (shared by every voxbridge instance, so any of them checks
//! what another signed). voxgate serves that path by asking voxbridge for the bytes
//! (`ReadRecording`), which checks signature and expiry first.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use vox_blob::{BlobStore, LocalDirStore};
use vox_blob_s3::{DEFAULT_PART_SIZE, S3Settings, S3Store};
use vox_domain::region::Region;
use vox_domain::{Error, Result};

use crate::crypto::MasterKey;

/// How long a playback URL plays.
pub const PLAYBACK_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// The gateway route that serves local recordings.
pub const LOCAL_RECORDINGS_PATH: &str = "/api/v1/recordings/";

/// A region's storage, resolved.
#[derive(Debug, Clone)]
pub enum RegionStore {
    Local(Arc<LocalDirStore>),
    S3(Arc<S3Store>),
}

impl RegionStore {
    pub fn blob(&self) -> &dyn BlobStore {
        match self {
            RegionStore::Local(s) => s.as_ref(),
            RegionStore::S3(s) => s.as_ref(),
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            RegionStore::Local(_) => "local",
            RegionStore::S3(_) => "s3",
        }
    }

    /// Where it is, for messages: never the credentials.
    pub fn describe(&self) -> String {
        match self {
            RegionStore::Local(s) => format!("folder {}", s.root().display()),
            RegionStore::S3(s) => format!("bucket {} at {}", s.settings().bucket, s.settings().endpoint_url),
        }
    }
}

/// Every region's store, and the signer of local playback URLs.
pub struct RegionStores {
    local: Arc<LocalDirStore>,
    create_buckets: bool,
    s3: Mutex<HashMap<String, Arc<S3Store>>>,
    url_key: [u8; 32],
}

impl std::fmt::Debug for RegionStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionStores").field("local", &self.local.root()).finish_non_exhaustive()
    }
}

type HmacSha256 = Hmac<Sha256>;

impl RegionStores {
    pub fn new(recordings_dir: PathBuf, create_buckets: bool, master_key: &[u8; 32]) -> Self {
        // A key of its own for URLs, so a signature never says anything about the master key.
        let mut mac = HmacSha256::new_from_slice(master_key).expect("HMAC takes keys of any length");
        mac.update(b"vox playback urls v1");
        let url_key: [u8; 32] = mac.finalize().into_bytes().into();
        RegionStores {
            local: Arc::new(LocalDirStore::new(recordings_dir)),
            create_buckets,
            s3: Mutex::new(HashMap::new()),
            url_key,
        }
    }

    pub fn local(&self) -> &Arc<LocalDirStore> {
        &self.local
    }

    pub fn create_buckets(&self) -> bool {
        self.create_buckets
    }

    /// The region's S3 settings with the secret opened, or `None` for local storage.
    pub fn s3_settings(&self, region: &Region, master_key: &MasterKey) -> Result<Option<S3Settings>> {
        let Some(s) = &region.storage else { return Ok(None) };
        let sealed = s.secret_key_ciphertext.as_deref().ok_or_else(|| {
            Error::precondition(format!("region {} has storage settings but no secret key; set it again", region.id))
        })?;
        Ok(Some(S3Settings {
            endpoint_url: s.endpoint_url.clone(),
            bucket: s.bucket.clone(),
            access_key: s.access_key.clone(),
            secret_key: master_key.open(sealed, &region.id)?,
            signing_region: s.signing_region.clone(),
            force_path_style: s.force_path_style,
            create_bucket: self.create_buckets,
            part_size: DEFAULT_PART_SIZE,
        }))
    }

    /// The region's store: its S3 client (one per region, made again when its settings
    /// changed), or the local folder.
    pub fn for_region(&self, region: &Region, master_key: &MasterKey) -> Result<RegionStore> {
        let Some(settings) = self.s3_settings(region, master_key)? else {
            return Ok(RegionStore::Local(Arc::clone(&self.local)));
        };
        let mut cache = self.s3.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = cache.get(&region.id)
            && store.settings() == &settings
        {
            return Ok(RegionStore::S3(Arc::clone(store)));
        }
        let store = Arc::new(S3Store::new(settings)?);
        cache.insert(region.id.clone(), Arc::clone(&store));
        Ok(RegionStore::S3(store))
    }

    /// A store for exactly these settings, outside the cache (a storage test must see
    /// the current settings and a fresh bucket check).
    pub fn uncached(&self, region: &Region, master_key: &MasterKey) -> Result<RegionStore> {
        match self.s3_settings(region, master_key)? {
            Some(settings) => Ok(RegionStore::S3(Arc::new(S3Store::new(settings)?))),
            None => Ok(RegionStore::Local(Arc::clone(&self.local))),
        }
    }

    /// The MAC over what a URL grants: one key, until one moment.
    fn mac(&self, key: &str, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.url_key).expect("HMAC takes keys of any length");
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    fn signature(&self, key: &str, expires: i64) -> String {
        self.mac(key, expires).finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The gateway path that plays a local object until `expires_at`.
    pub fn local_url(&self, key: &str, expires_at: DateTime<Utc>) -> Result<String> {
        vox_blob::validate_key(key)?;
        let expires = expires_at.timestamp();
        Ok(format!("{LOCAL_RECORDINGS_PATH}{key}?expires={expires}&signature={}", self.signature(key, expires)))
    }

    /// Checks a local playback URL's signature and expiry.
    pub fn check_local_url(&self, key: &str, expires: i64, signature: &str, now: DateTime<Utc>) -> Result<()> {
        vox_blob::validate_key(key)?;
        let given = decode_hex(signature)
            .ok_or_else(|| Error::permission_denied("the playback URL's signature is not valid"))?;
        self.mac(key, expires)
            .verify_slice(&given)
            .map_err(|_| Error::permission_denied("the playback URL's signature is not valid"))?;
        if now.timestamp() > expires {
            return Err(Error::permission_denied("the playback URL has expired; ask for a new one"));
        }
        Ok(())
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn local_urls_play_only_the_signed_key_until_they_expire() {
        let stores = RegionStores::new(PathBuf::from("/tmp/x"), true, &[3u8; 32]);
        let now = Utc::now();
        let url = stores.local_url("recordings/2026/01/02/ca_1.wav", now + chrono::Duration::minutes(15)).unwrap();
        let (path, query) = url.split_once('?').unwrap();
        let key = path.strip_prefix(LOCAL_RECORDINGS_PATH).unwrap();
        let q: HashMap<_, _> = query.split('&').filter_map(|kv| kv.split_once('=')).collect();
        let expires: i64 = q["expires"].parse().unwrap();
        stores.check_local_url(key, expires, q["signature"], now).unwrap();
        assert!(stores.check_local_url("recordings/2026/01/02/ca_2.wav", expires, q["signature"], now).is_err());
        assert!(stores.check_local_url(key, expires + 3600, q["signature"], now).is_err(), "expiry is signed");
        let later = now + chrono::Duration::minutes(16);
        assert!(stores.check_local_url(key, expires, q["signature"], later).unwrap_err().message.contains("expired"));
        let other = RegionStores::new(PathBuf::from("/tmp/x"), true, &[4u8; 32]);
        assert!(other.check_local_url(key, expires, q["signature"], now).is_err(), "another master key");
        assert!(stores.check_local_url(key, expires, "zz", now).is_err());
    }
}
