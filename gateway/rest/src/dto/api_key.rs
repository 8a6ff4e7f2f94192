//! Integrations' API keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vox_proto::backend::v1 as pb;

use super::auth::Role;
use super::{convert_all, known, non_empty, opt_time, time};
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    /// What the key is for.
    pub name: String,
    pub role: Role,
    /// The only campaign the key may see and act on; `null`: every campaign its role allows.
    pub campaign_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// To the minute; `null` until first used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// `null` while the key is valid.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<pb::ApiKey> for ApiKey {
    type Error = ApiError;

    fn try_from(k: pb::ApiKey) -> ApiResult<Self> {
        Ok(ApiKey {
            role: known(Role::from_proto(k.role), "API key role")?,
            created_at: time(k.created_at, "API key created_at")?,
            last_used_at: opt_time(k.last_used_at, "API key last_used_at")?,
            revoked_at: opt_time(k.revoked_at, "API key revoked_at")?,
            campaign_id: non_empty(k.campaign_id),
            id: k.id,
            name: k.name,
            created_by: k.created_by,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub keys: Vec<ApiKey>,
}

impl TryFrom<pb::ListApiKeysResponse> for ApiKeyList {
    type Error = ApiError;

    fn try_from(r: pb::ListApiKeysResponse) -> ApiResult<Self> {
        Ok(ApiKeyList { keys: convert_all(r.keys)? })
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateApiKeyRequest {
    #[schema(example = "HubSpot sync")]
    pub name: String,
    pub role: Role,
    /// Limit the key to this campaign.
    #[serde(default)]
    pub campaign_id: Option<String>,
}

impl From<CreateApiKeyRequest> for pb::CreateApiKeyRequest {
    fn from(r: CreateApiKeyRequest) -> Self {
        pb::CreateApiKeyRequest {
            name: r.name,
            role: r.role.to_proto(),
            campaign_id: r.campaign_id.unwrap_or_default(),
        }
    }
}

/// The new key and its secret: shown this once, then only its hash is kept.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    /// `vk.<key id>.<32 characters>`; send it as `Authorization: Bearer <secret>`.
    pub secret: String,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey").field("key", &self.key).finish_non_exhaustive()
    }
}

impl TryFrom<pb::CreateApiKeyResponse> for CreatedApiKey {
    type Error = ApiError;

    fn try_from(r: pb::CreateApiKeyResponse) -> ApiResult<Self> {
        Ok(CreatedApiKey { key: known(r.key, "the created key")?.try_into()?, secret: r.secret })
    }
}
