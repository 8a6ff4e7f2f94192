//! Regions and their object storage.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use vox_proto::backend::v1 as pb;

use crate::bridge::Bridge;
use crate::dto::region::{CreateRegionRequest, Region, RegionList, RegionStorageInput, UpdateRegionRequest};
use crate::error::{ApiErrors, ApiResult};
use crate::extract::{ApiJson, ApiPath, Bearer};

#[utoipa::path(get, path = "/api/v1/regions", operation_id = "list_regions", tag = "regions",
    responses((status = 200, description = "every region", body = RegionList), ApiErrors))]
pub async fn list(State(b): State<Bridge>, auth: Bearer) -> ApiResult<Json<RegionList>> {
    let r = b.unary(b.regions().list_regions(b.request(&auth, pb::ListRegionsRequest {}))).await?;
    Ok(Json(r.try_into()?))
}

/// Creates a region, optionally with its storage (admin).
#[utoipa::path(post, path = "/api/v1/regions", operation_id = "create_region", tag = "regions", request_body = CreateRegionRequest,
    responses((status = 201, description = "created", body = Region), ApiErrors))]
pub async fn create(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiJson(body): ApiJson<CreateRegionRequest>,
) -> ApiResult<(StatusCode, Json<Region>)> {
    let r = b.unary(b.regions().create_region(b.request(&auth, pb::CreateRegionRequest::from(body)))).await?;
    Ok((StatusCode::CREATED, Json(r.try_into()?)))
}

#[utoipa::path(get, path = "/api/v1/regions/{id}", operation_id = "get_region", tag = "regions",
    params(("id" = String, Path, description = "region id")),
    responses((status = 200, description = "the region", body = Region), ApiErrors))]
pub async fn get(State(b): State<Bridge>, auth: Bearer, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Region>> {
    let r = b.unary(b.regions().get_region(b.request(&auth, pb::GetRegionRequest { id }))).await?;
    Ok(Json(r.try_into()?))
}

/// Renames or moves a region; the id never changes.
#[utoipa::path(patch, path = "/api/v1/regions/{id}", operation_id = "update_region", tag = "regions", request_body = UpdateRegionRequest,
    params(("id" = String, Path, description = "region id")),
    responses((status = 200, description = "updated", body = Region), ApiErrors))]
pub async fn update(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateRegionRequest>,
) -> ApiResult<Json<Region>> {
    let r = b.unary(b.regions().update_region(b.request(&auth, body.into_proto(id)))).await?;
    Ok(Json(r.try_into()?))
}

/// Refused with 412 while nodes or campaigns still use the region.
#[utoipa::path(delete, path = "/api/v1/regions/{id}", operation_id = "delete_region", tag = "regions",
    params(("id" = String, Path, description = "region id")),
    responses((status = 204, description = "deleted"), ApiErrors))]
pub async fn delete(State(b): State<Bridge>, auth: Bearer, ApiPath(id): ApiPath<String>) -> ApiResult<StatusCode> {
    b.unary(b.regions().delete_region(b.request(&auth, pb::DeleteRegionRequest { id }))).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the region's object storage. Omit `secret_key` to keep the stored one; no
/// response ever carries it, only `secret_key_set`.
#[utoipa::path(put, path = "/api/v1/regions/{id}/storage", operation_id = "set_region_storage", tag = "regions", request_body = RegionStorageInput,
    params(("id" = String, Path, description = "region id")),
    responses((status = 200, description = "the region with its storage", body = Region), ApiErrors))]
pub async fn set_storage(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(region_id): ApiPath<String>,
    ApiJson(body): ApiJson<RegionStorageInput>,
) -> ApiResult<Json<Region>> {
    let req = pb::SetRegionStorageRequest { region_id, storage: Some(body.into()) };
    let r = b.unary(b.regions().set_region_storage(b.request(&auth, req))).await?;
    Ok(Json(r.try_into()?))
}
