//! Background jobs the console can trigger.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vox_proto::backend::v1 as pb;

use super::call::CallState;
use super::known;
use crate::error::{ApiError, ApiResult};

/// Calls the reaper moved, by the state they were stuck in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReapedCount {
    pub from_state: CallState,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CleanupResult {
    pub reaped: Vec<ReapedCount>,
    pub total: u64,
}

impl TryFrom<pb::RunCleanupResponse> for CleanupResult {
    type Error = ApiError;

    fn try_from(r: pb::RunCleanupResponse) -> ApiResult<Self> {
        let reaped = r
            .reaped
            .into_iter()
            .map(|c| {
                Ok(ReapedCount {
                    from_state: known(CallState::from_proto(c.from_state), "call state")?,
                    count: c.count,
                })
            })
            .collect::<ApiResult<_>>()?;
        Ok(CleanupResult { reaped, total: r.total })
    }
}
