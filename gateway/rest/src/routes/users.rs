//! Users and roles (admin only).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use vox_proto::backend::v1 as pb;

use crate::bridge::Bridge;
use crate::dto::auth::{CreateUserRequest, UpdateUserRequest, User, UserList};
use crate::error::{ApiErrors, ApiResult};
use crate::extract::{ApiJson, ApiPath, Bearer};

#[utoipa::path(get, path = "/api/v1/users", operation_id = "list_users", tag = "users",
    responses((status = 200, description = "every user", body = UserList), ApiErrors))]
pub async fn list(State(b): State<Bridge>, auth: Bearer) -> ApiResult<Json<UserList>> {
    let r = b.unary(b.users().list_users(b.request(&auth, pb::ListUsersRequest {}))).await?;
    Ok(Json(r.try_into()?))
}

#[utoipa::path(post, path = "/api/v1/users", operation_id = "create_user", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, description = "created", body = User), ApiErrors))]
pub async fn create(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let r = b.unary(b.users().create_user(b.request(&auth, pb::CreateUserRequest::from(body)))).await?;
    Ok((StatusCode::CREATED, Json(r.try_into()?)))
}

/// Changes role, password or disabled; the last active admin can be neither demoted nor disabled.
#[utoipa::path(patch, path = "/api/v1/users/{id}", operation_id = "update_user", tag = "users", request_body = UpdateUserRequest,
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, description = "updated", body = User), ApiErrors))]
pub async fn update(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateUserRequest>,
) -> ApiResult<Json<User>> {
    let r = b.unary(b.users().update_user(b.request(&auth, body.into_proto(id)))).await?;
    Ok(Json(r.try_into()?))
}

/// The last active admin cannot be deleted.
#[utoipa::path(delete, path = "/api/v1/users/{id}", operation_id = "delete_user", tag = "users",
    params(("id" = String, Path, description = "user id")),
    responses((status = 204, description = "deleted"), ApiErrors))]
pub async fn delete(State(b): State<Bridge>, auth: Bearer, ApiPath(id): ApiPath<String>) -> ApiResult<StatusCode> {
    b.unary(b.users().delete_user(b.request(&auth, pb::DeleteUserRequest { id }))).await?;
    Ok(StatusCode::NO_CONTENT)
}
