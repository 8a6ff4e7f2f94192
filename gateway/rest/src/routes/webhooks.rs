//! Outgoing webhooks (admin only): endpoints, their signing secrets, the delivery
//! attempts, the dead letters and the queue behind them. voxbridge checks the role and
//! validates every field (the URL scheme, the event types); this file only translates.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use vox_domain::ErrorCode;
use vox_proto::backend::v1 as pb;

use crate::bridge::Bridge;
use crate::dto::webhook::{
    CreateWebhookEndpointRequest, DeadWebhookDeliveryList, DeliveryLimit, RequeueRequest, Requeued,
    UpdateWebhookEndpointRequest, WebhookDeliveryList, WebhookEndpoint, WebhookEndpointList, WebhookQueue,
    WebhookSecret,
};
use crate::error::{ApiError, ApiErrors, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Bearer, OptionalJson};

#[utoipa::path(get, path = "/api/v1/webhooks", operation_id = "list_webhook_endpoints", tag = "webhooks",
    responses((status = 200, description = "every endpoint; never a secret", body = WebhookEndpointList), ApiErrors))]
pub async fn list(State(b): State<Bridge>, auth: Bearer) -> ApiResult<Json<WebhookEndpointList>> {
    let r = b.unary(b.webhooks().list_webhook_endpoints(b.request(&auth, pb::ListWebhookEndpointsRequest {}))).await?;
    Ok(Json(r.try_into()?))
}

/// The reply holds the signing secret, shown this once.
#[utoipa::path(post, path = "/api/v1/webhooks", operation_id = "create_webhook_endpoint", tag = "webhooks",
    request_body = CreateWebhookEndpointRequest,
    responses((status = 201, description = "created", body = WebhookSecret), ApiErrors))]
pub async fn create(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiJson(body): ApiJson<CreateWebhookEndpointRequest>,
) -> ApiResult<(StatusCode, Json<WebhookSecret>)> {
    let req = b.request(&auth, pb::CreateWebhookEndpointRequest::from(body));
    let r = b.unary(b.webhooks().create_webhook_endpoint(req)).await?;
    Ok((StatusCode::CREATED, Json(r.try_into()?)))
}

/// Changes what the body names. voxbridge replaces every field, so the endpoint is read
/// first and the patch laid over it: two admins patching different fields of one endpoint
/// at the same moment may lose one change (the last write wins), which the console's
/// one-field-at-a-time edits never do.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", operation_id = "update_webhook_endpoint", tag = "webhooks",
    request_body = UpdateWebhookEndpointRequest,
    params(("id" = String, Path, description = "webhook endpoint id")),
    responses((status = 200, description = "updated", body = WebhookEndpoint), ApiErrors))]
pub async fn update(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateWebhookEndpointRequest>,
) -> ApiResult<Json<WebhookEndpoint>> {
    let all =
        b.unary(b.webhooks().list_webhook_endpoints(b.request(&auth, pb::ListWebhookEndpointsRequest {}))).await?;
    let current = all
        .endpoints
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no webhook endpoint {id:?}")))?;
    let req = b.request(&auth, body.merge(current.try_into()?));
    let r = b.unary(b.webhooks().update_webhook_endpoint(req)).await?;
    Ok(Json(r.try_into()?))
}

/// Nothing more is sent to it.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", operation_id = "delete_webhook_endpoint", tag = "webhooks",
    params(("id" = String, Path, description = "webhook endpoint id")),
    responses((status = 204, description = "deleted"), ApiErrors))]
pub async fn delete(State(b): State<Bridge>, auth: Bearer, ApiPath(id): ApiPath<String>) -> ApiResult<StatusCode> {
    b.unary(b.webhooks().delete_webhook_endpoint(b.request(&auth, pb::DeleteWebhookEndpointRequest { id }))).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret, shown this once; the old one keeps signing beside it for 24 hours so the
/// receiver can switch.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", operation_id = "rotate_webhook_secret",
    tag = "webhooks",
    params(("id" = String, Path, description = "webhook endpoint id")),
    responses((status = 200, description = "the endpoint and its new secret", body = WebhookSecret), ApiErrors))]
pub async fn rotate_secret(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<WebhookSecret>> {
    let r =
        b.unary(b.webhooks().rotate_webhook_secret(b.request(&auth, pb::RotateWebhookSecretRequest { id }))).await?;
    Ok(Json(r.try_into()?))
}

/// One endpoint's delivery attempts, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", operation_id = "list_webhook_deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "webhook endpoint id"), DeliveryLimit),
    responses((status = 200, description = "the attempts", body = WebhookDeliveryList), ApiErrors))]
pub async fn deliveries(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(endpoint_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeliveryLimit>,
) -> ApiResult<Json<WebhookDeliveryList>> {
    let req = pb::ListWebhookDeliveriesRequest { endpoint_id, limit: q.limit.unwrap_or(0) };
    let r = b.unary(b.webhooks().list_webhook_deliveries(b.request(&auth, req))).await?;
    Ok(Json(r.try_into()?))
}

/// Deliveries that failed their last attempt (every endpoint's).
#[utoipa::path(get, path = "/api/v1/webhooks/dead-letters", operation_id = "list_dead_webhook_deliveries",
    tag = "webhooks",
    params(DeliveryLimit),
    responses((status = 200, description = "the dead deliveries", body = DeadWebhookDeliveryList), ApiErrors))]
pub async fn dead_letters(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiQuery(q): ApiQuery<DeliveryLimit>,
) -> ApiResult<Json<DeadWebhookDeliveryList>> {
    let req = pb::ListDeadWebhookDeliveriesRequest { limit: q.limit.unwrap_or(0) };
    let r = b.unary(b.webhooks().list_dead_webhook_deliveries(b.request(&auth, req))).await?;
    Ok(Json(r.try_into()?))
}

/// Sends dead deliveries again, their attempts started over: `{"job_id": "…"}` for one,
/// `{}` (or no body) for all.
#[utoipa::path(post, path = "/api/v1/webhooks/dead-letters/requeue", operation_id = "requeue_dead_webhook_deliveries",
    tag = "webhooks",
    request_body(content = RequeueRequest, description = "one job, or omit job_id for all"),
    responses((status = 200, description = "how many were requeued", body = Requeued), ApiErrors))]
pub async fn requeue(
    State(b): State<Bridge>,
    auth: Bearer,
    OptionalJson(body): OptionalJson<RequeueRequest>,
) -> ApiResult<Json<Requeued>> {
    let req = b.request(&auth, pb::RequeueDeadWebhookDeliveriesRequest::from(body));
    let r = b.unary(b.webhooks().requeue_dead_webhook_deliveries(req)).await?;
    Ok(Json(Requeued { requeued: r.requeued }))
}

/// The queue behind the deliveries: depth by state and the oldest ready job's age.
#[utoipa::path(get, path = "/api/v1/webhooks/queue", operation_id = "get_webhook_queue", tag = "webhooks",
    responses((status = 200, description = "the queue's figures", body = WebhookQueue), ApiErrors))]
pub async fn queue(State(b): State<Bridge>, auth: Bearer) -> ApiResult<Json<WebhookQueue>> {
    let r = b.unary(b.webhooks().get_webhook_queue(b.request(&auth, pb::GetWebhookQueueRequest {}))).await?;
    Ok(Json(r.into()))
}
