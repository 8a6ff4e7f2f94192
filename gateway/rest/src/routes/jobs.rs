//! Background jobs the console can trigger.

use axum::Json;
use axum::extract::State;
use vox_proto::backend::v1 as pb;

use crate::bridge::Bridge;
use crate::dto::job::CleanupResult;
use crate::error::{ApiErrors, ApiResult};
use crate::extract::Bearer;

/// Runs the stale-call reaper once, now (operator).
#[utoipa::path(post, path = "/api/v1/jobs/cleanup", operation_id = "run_cleanup", tag = "jobs",
    responses((status = 200, description = "calls moved, by the state they were stuck in", body = CleanupResult),
        ApiErrors))]
pub async fn cleanup(State(b): State<Bridge>, auth: Bearer) -> ApiResult<Json<CleanupResult>> {
    let r = b.unary(b.jobs().run_cleanup(b.request(&auth, pb::RunCleanupRequest {}))).await?;
    Ok(Json(r.try_into()?))
}
