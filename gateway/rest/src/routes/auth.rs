//! Sign-in and the signed-in user.

use axum::Json;
use axum::extract::{Extension, State};
use vox_proto::backend::v1 as pb;

use crate::ClientAddr;
use crate::bridge::Bridge;
use crate::dto::auth::{LoginRequest, LoginResponse, User};
use crate::error::{ApiErrors, ApiResult};
use crate::extract::{ApiJson, Bearer};

/// Signs in with email and password. A wrong email or password gets the same 401.
#[utoipa::path(post, path = "/api/v1/auth/login", operation_id = "login", tag = "auth", security(()),
    request_body = LoginRequest,
    responses((status = 200, description = "signed in", body = LoginResponse), ApiErrors))]
pub async fn login(
    State(b): State<Bridge>,
    client: Option<Extension<ClientAddr>>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let r = b.unary(b.auth().login(b.sign_in(client.map(|c| c.0), pb::LoginRequest::from(body)))).await?;
    Ok(Json(r.try_into()?))
}

/// The user the access token belongs to.
#[utoipa::path(get, path = "/api/v1/auth/me", operation_id = "who_am_i", tag = "auth",
    responses((status = 200, description = "the signed-in user", body = User), ApiErrors))]
pub async fn me(State(b): State<Bridge>, auth: Bearer) -> ApiResult<Json<User>> {
    let r = b.unary(b.auth().who_am_i(b.request(&auth, pb::WhoAmIRequest {}))).await?;
    Ok(Json(r.try_into()?))
}
