//! Object storage checks and recording playback.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vox_proto::backend::v1 as pb;

use super::time;
use crate::error::{ApiError, ApiResult};

/// A region's storage answered: an object was written, read back and deleted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StorageTestResult {
    /// Always true here: a failed check answers an error (502) naming the step.
    pub ok: bool,
    /// What was checked, where, e.g. "wrote, read back and deleted 52 bytes in the bucket
    /// recordings at http://10.0.0.9:9000".
    pub detail: String,
    /// "s3" or "local".
    pub backend: String,
    pub elapsed_ms: u32,
}

impl TryFrom<pb::TestRegionStorageResponse> for StorageTestResult {
    type Error = ApiError;

    /// A failed check is an error: 502, since it is the storage behind the control plane
    /// that failed, with the step and the server's answer in the message.
    fn try_from(r: pb::TestRegionStorageResponse) -> ApiResult<Self> {
        if !r.ok {
            return Err(ApiError::storage_failed(format!("{} storage check failed: {}", r.backend, r.detail)));
        }
        Ok(StorageTestResult { ok: true, detail: r.detail, backend: r.backend, elapsed_ms: r.elapsed_ms })
    }
}

/// Where to play a call's recording from, for a short while.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordingUrl {
    /// An S3 presigned URL, or, for local storage, a path on this gateway
    /// (`/api/v1/recordings/<key>?expires=…&signature=…`). Either needs no other
    /// credential until `expires_at`.
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

impl TryFrom<pb::RecordingUrl> for RecordingUrl {
    type Error = ApiError;

    fn try_from(r: pb::RecordingUrl) -> ApiResult<Self> {
        Ok(RecordingUrl { url: r.url, expires_at: time(r.expires_at, "expires_at")? })
    }
}

/// The signature of a local playback URL, as GetRecordingUrl made it.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlaybackSignature {
    /// Unix seconds after which the URL plays nothing.
    pub expires: i64,
    /// Hex HMAC-SHA256 by voxbridge over the key and `expires`.
    pub signature: String,
}
