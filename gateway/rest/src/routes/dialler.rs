//! The outbound dialler's live status, read from its own gRPC `DiallerService` (voxgate's
//! `--dialler-url`, the dialler's health server) with the caller's token, which the
//! dialler checks with voxbridge.

use axum::Json;
use axum::extract::State;
use vox_domain::ErrorCode;
use vox_proto::dialler::v1 as dpb;

use crate::bridge::Bridge;
use crate::dto::dialler::DiallerStatus;
use crate::error::{ApiError, ApiErrors, ApiResult};
use crate::extract::Bearer;

/// The dialler's leadership, health and per-campaign pacing figures. 503 when this
/// gateway has no dialler configured or the dialler does not answer.
#[utoipa::path(get, path = "/api/v1/dialler", operation_id = "get_dialler_status", tag = "dialler",
    responses((status = 200, description = "the dialler's status now", body = DiallerStatus), ApiErrors))]
pub async fn status(State(b): State<Bridge>, auth: Bearer) -> ApiResult<Json<DiallerStatus>> {
    let Some(mut client) = b.dialler() else {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "no dialler is configured on this gateway (start voxgate with --dialler-url / VOX_DIALLER_URL)",
        ));
    };
    let call = client.get_status(b.request(&auth, dpb::GetStatusRequest {}));
    let r = b.within_deadline_of("the dialler", call).await?.into_inner();
    Ok(Json(r.try_into()?))
}
