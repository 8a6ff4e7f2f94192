//! Regions and their object storage. The storage secret key is write-only: requests may
//! carry it, responses only ever say `secret_key_set`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vox_proto::backend::v1 as pb;

use super::{convert_all, time};
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Region {
    /// Generated and stable, e.g. "rg_5kq3w9x2m1c8v7bz": the value nodes put in their config.
    pub id: String,
    /// Chosen by the operator, e.g. "us-east-1"; unique.
    pub name: String,
    /// ISO 3166-1 alpha-2, e.g. "US".
    pub country: String,
    /// `null` until storage is configured.
    pub storage: Option<RegionStorage>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<pb::Region> for Region {
    type Error = ApiError;

    fn try_from(r: pb::Region) -> ApiResult<Self> {
        Ok(Region {
            created_at: time(r.created_at, "region created_at")?,
            updated_at: time(r.updated_at, "region updated_at")?,
            storage: r.storage.map(RegionStorage::from),
            id: r.id,
            name: r.name,
            country: r.country,
        })
    }
}

/// Storage settings as read back: never the secret key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegionStorage {
    pub endpoint_url: String,
    pub bucket: String,
    pub access_key: String,
    /// True when a secret key is stored (encrypted at rest).
    pub secret_key_set: bool,
    pub use_ssl: bool,
    /// SigV4 signing region, e.g. "us-east-1".
    pub signing_region: String,
    /// Path-style addressing (MinIO, RustFS) instead of virtual-host style.
    pub force_path_style: bool,
}

impl From<pb::RegionStorage> for RegionStorage {
    fn from(s: pb::RegionStorage) -> Self {
        RegionStorage {
            endpoint_url: s.endpoint_url,
            bucket: s.bucket,
            access_key: s.access_key,
            secret_key_set: s.secret_key_set,
            use_ssl: s.use_ssl,
            signing_region: s.signing_region,
            force_path_style: s.force_path_style,
        }
    }
}

/// Storage settings as written.
#[derive(Clone, Deserialize, ToSchema)]
pub struct RegionStorageInput {
    /// http(s)://host[:port]
    pub endpoint_url: String,
    pub bucket: String,
    pub access_key: String,
    /// Omit (or `null`) to keep the secret key already stored.
    #[serde(default)]
    pub secret_key: Option<String>,
    #[serde(default)]
    pub use_ssl: bool,
    #[serde(default)]
    pub signing_region: String,
    #[serde(default)]
    pub force_path_style: bool,
}

impl std::fmt::Debug for RegionStorageInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionStorageInput")
            .field("endpoint_url", &self.endpoint_url)
            .field("bucket", &self.bucket)
            .field("secret_key_given", &self.secret_key.is_some())
            .finish_non_exhaustive()
    }
}

impl From<RegionStorageInput> for pb::RegionStorageInput {
    fn from(s: RegionStorageInput) -> Self {
        pb::RegionStorageInput {
            endpoint_url: s.endpoint_url,
            bucket: s.bucket,
            access_key: s.access_key,
            secret_key: s.secret_key,
            use_ssl: s.use_ssl,
            signing_region: s.signing_region,
            force_path_style: s.force_path_style,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateRegionRequest {
    pub name: String,
    pub country: String,
    #[serde(default)]
    pub storage: Option<RegionStorageInput>,
}

impl From<CreateRegionRequest> for pb::CreateRegionRequest {
    fn from(r: CreateRegionRequest) -> Self {
        pb::CreateRegionRequest { name: r.name, country: r.country, storage: r.storage.map(Into::into) }
    }
}

/// Renames or moves a region; its id never changes. Only the fields present change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct UpdateRegionRequest {
    pub name: Option<String>,
    pub country: Option<String>,
}

impl UpdateRegionRequest {
    pub fn into_proto(self, id: String) -> pb::UpdateRegionRequest {
        pb::UpdateRegionRequest { id, name: self.name, country: self.country }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegionList {
    pub regions: Vec<Region>,
}

impl TryFrom<pb::ListRegionsResponse> for RegionList {
    type Error = ApiError;

    fn try_from(r: pb::ListRegionsResponse) -> ApiResult<Self> {
        Ok(RegionList { regions: convert_all(r.regions)? })
    }
}
