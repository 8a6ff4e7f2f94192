//! Campaigns: settings and status changes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use vox_proto::backend::v1 as pb;

use crate::bridge::Bridge;
use crate::dto::campaign::{Campaign, CampaignFilter, CampaignList, CampaignSpec};
use crate::error::{ApiErrors, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Bearer};

#[utoipa::path(get, path = "/api/v1/campaigns", operation_id = "list_campaigns", tag = "campaigns", params(CampaignFilter),
    responses((status = 200, description = "campaigns matching the filter", body = CampaignList), ApiErrors))]
pub async fn list(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiQuery(filter): ApiQuery<CampaignFilter>,
) -> ApiResult<Json<CampaignList>> {
    let req = pb::ListCampaignsRequest { status: filter.status.map_or(0, |s| s.to_proto()) };
    let r = b.unary(b.campaigns().list_campaigns(b.request(&auth, req))).await?;
    Ok(Json(r.try_into()?))
}

/// Creates a campaign in status `draft` (operator).
#[utoipa::path(post, path = "/api/v1/campaigns", operation_id = "create_campaign", tag = "campaigns", request_body = CampaignSpec,
    responses((status = 201, description = "created", body = Campaign), ApiErrors))]
pub async fn create(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiJson(spec): ApiJson<CampaignSpec>,
) -> ApiResult<(StatusCode, Json<Campaign>)> {
    let req = pb::CreateCampaignRequest { spec: Some(spec.into()) };
    let r = b.unary(b.campaigns().create_campaign(b.request(&auth, req))).await?;
    Ok((StatusCode::CREATED, Json(r.try_into()?)))
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}", operation_id = "get_campaign", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, description = "the campaign with its counts", body = Campaign), ApiErrors))]
pub async fn get(State(b): State<Bridge>, auth: Bearer, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Campaign>> {
    let r = b.unary(b.campaigns().get_campaign(b.request(&auth, pb::GetCampaignRequest { id }))).await?;
    Ok(Json(r.try_into()?))
}

/// Replaces the campaign's settings; refused once the campaign is completed.
#[utoipa::path(put, path = "/api/v1/campaigns/{id}", operation_id = "replace_campaign", tag = "campaigns", request_body = CampaignSpec,
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, description = "updated", body = Campaign), ApiErrors))]
pub async fn replace(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(id): ApiPath<String>,
    ApiJson(spec): ApiJson<CampaignSpec>,
) -> ApiResult<Json<Campaign>> {
    let req = pb::UpdateCampaignRequest { id, spec: Some(spec.into()) };
    let r = b.unary(b.campaigns().update_campaign(b.request(&auth, req))).await?;
    Ok(Json(r.try_into()?))
}

/// draft or paused → running.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/start", operation_id = "start_campaign", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, description = "running", body = Campaign), ApiErrors))]
pub async fn start(State(b): State<Bridge>, auth: Bearer, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Campaign>> {
    let r = b.unary(b.campaigns().start_campaign(b.request(&auth, pb::CampaignActionRequest { id }))).await?;
    Ok(Json(r.try_into()?))
}

/// running → paused: no new calls are leased; live calls finish.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/pause", operation_id = "pause_campaign", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, description = "paused", body = Campaign), ApiErrors))]
pub async fn pause(State(b): State<Bridge>, auth: Bearer, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Campaign>> {
    let r = b.unary(b.campaigns().pause_campaign(b.request(&auth, pb::CampaignActionRequest { id }))).await?;
    Ok(Json(r.try_into()?))
}

/// Any → completed: pending calls are canceled; live calls finish. Final.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/complete", operation_id = "complete_campaign", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, description = "completed", body = Campaign), ApiErrors))]
pub async fn complete(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Campaign>> {
    let r = b.unary(b.campaigns().complete_campaign(b.request(&auth, pb::CampaignActionRequest { id }))).await?;
    Ok(Json(r.try_into()?))
}
