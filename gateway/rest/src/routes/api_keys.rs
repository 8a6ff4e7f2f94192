//! Integrations' API keys (admin only).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use vox_proto::backend::v1 as pb;

use crate::bridge::Bridge;
use crate::dto::api_key::{ApiKey, ApiKeyList, CreateApiKeyRequest, CreatedApiKey};
use crate::error::{ApiErrors, ApiResult};
use crate::extract::{ApiJson, ApiPath, Bearer};

#[utoipa::path(get, path = "/api/v1/api-keys", operation_id = "list_api_keys", tag = "api-keys",
    responses((status = 200, description = "every key, revoked ones included, newest first; never a secret", body = ApiKeyList), ApiErrors))]
pub async fn list(State(b): State<Bridge>, auth: Bearer) -> ApiResult<Json<ApiKeyList>> {
    let r = b.unary(b.api_keys().list_api_keys(b.request(&auth, pb::ListApiKeysRequest {}))).await?;
    Ok(Json(r.try_into()?))
}

/// The reply holds the secret, shown this once.
#[utoipa::path(post, path = "/api/v1/api-keys", operation_id = "create_api_key", tag = "api-keys", request_body = CreateApiKeyRequest,
    responses((status = 201, description = "created", body = CreatedApiKey), ApiErrors))]
pub async fn create(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiJson(body): ApiJson<CreateApiKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let r = b.unary(b.api_keys().create_api_key(b.request(&auth, pb::CreateApiKeyRequest::from(body)))).await?;
    Ok((StatusCode::CREATED, Json(r.try_into()?)))
}

/// The key is refused from the next request on; revoking twice is not an error.
#[utoipa::path(post, path = "/api/v1/api-keys/{id}/revoke", operation_id = "revoke_api_key", tag = "api-keys",
    params(("id" = String, Path, description = "API key id")),
    responses((status = 200, description = "revoked", body = ApiKey), ApiErrors))]
pub async fn revoke(State(b): State<Bridge>, auth: Bearer, ApiPath(id): ApiPath<String>) -> ApiResult<Json<ApiKey>> {
    let r = b.unary(b.api_keys().revoke_api_key(b.request(&auth, pb::RevokeApiKeyRequest { id }))).await?;
    Ok(Json(r.try_into()?))
}
