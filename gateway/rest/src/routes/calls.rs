//! Calls: the list, one call, its timeline, and cancelling.

use axum::Json;
use axum::extract::{RawQuery, State};
use vox_proto::backend::v1 as pb;

use crate::bridge::Bridge;
use crate::dto::call::{Call, CallEvents, CallFilter, CallPage, CallState, CancelRequest};
use crate::dto::convert_all;
use crate::error::{ApiErrors, ApiResult};
use crate::extract::{ApiPath, Bearer, OptionalJson};

/// Calls matching the filter, newest first, one page at a time: pass `next_page_token`
/// back as `page_token` until it is `null`.
#[utoipa::path(get, path = "/api/v1/calls", operation_id = "list_calls", tag = "calls", params(CallFilter),
    responses((status = 200, description = "one page of calls", body = CallPage), ApiErrors))]
pub async fn list(State(b): State<Bridge>, auth: Bearer, RawQuery(query): RawQuery) -> ApiResult<Json<CallPage>> {
    let filter = CallFilter::parse(query.as_deref().unwrap_or_default())?;
    let r = b.unary(b.calls().list_calls(b.request(&auth, pb::ListCallsRequest::from(filter)))).await?;
    Ok(Json(r.try_into()?))
}

#[utoipa::path(get, path = "/api/v1/calls/{id}", operation_id = "get_call", tag = "calls",
    params(("id" = String, Path, description = "call id")),
    responses((status = 200, description = "the call", body = Call), ApiErrors))]
pub async fn get(State(b): State<Bridge>, auth: Bearer, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Call>> {
    let r = b.unary(b.calls().get_call(b.request(&auth, pb::GetCallRequest { id }))).await?;
    Ok(Json(r.try_into()?))
}

/// The call's timeline, oldest first.
#[utoipa::path(get, path = "/api/v1/calls/{id}/events", operation_id = "list_call_events", tag = "calls",
    params(("id" = String, Path, description = "call id")),
    responses((status = 200, description = "the call's events", body = CallEvents), ApiErrors))]
pub async fn events(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(call_id): ApiPath<String>,
) -> ApiResult<Json<CallEvents>> {
    let r = b.unary(b.calls().list_call_events(b.request(&auth, pb::ListCallEventsRequest { call_id }))).await?;
    Ok(Json(CallEvents { events: convert_all(r.events)? }))
}

/// Cancels a call that has not ended (operator); an ended call answers 412.
#[utoipa::path(post, path = "/api/v1/calls/{id}/cancel", operation_id = "cancel_call", tag = "calls", request_body(content = Option<CancelRequest>),
    params(("id" = String, Path, description = "call id")),
    responses((status = 200, description = "the canceled call", body = Call), ApiErrors))]
pub async fn cancel(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(call_id): ApiPath<String>,
    OptionalJson(body): OptionalJson<CancelRequest>,
) -> ApiResult<Json<Call>> {
    let req = pb::TransitionCallRequest {
        call_id,
        to_state: CallState::Canceled.to_proto(),
        reason: body.reason,
        ..Default::default()
    };
    let r = b.unary(b.calls().transition_call(b.request(&auth, req))).await?;
    Ok(Json(r.try_into()?))
}
