//! Nodes: registration, secrets, lifecycle and the audit log.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use vox_proto::backend::v1 as pb;

use crate::bridge::Bridge;
use crate::dto::convert_all;
use crate::dto::node::{
    AuditFilter, AuditList, LifecycleRequest, Node, NodeFilter, NodeList, NodeWithSecret, RegisterNodeRequest,
    UpdateNodeRequest,
};
use crate::error::{ApiErrors, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Bearer};

#[utoipa::path(get, path = "/api/v1/nodes", operation_id = "list_nodes", tag = "nodes", params(NodeFilter),
    responses((status = 200, description = "nodes matching the filter", body = NodeList), ApiErrors))]
pub async fn list(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiQuery(filter): ApiQuery<NodeFilter>,
) -> ApiResult<Json<NodeList>> {
    let r = b.unary(b.nodes().list_nodes(b.request(&auth, pb::ListNodesRequest::from(filter)))).await?;
    Ok(Json(NodeList { nodes: convert_all(r.nodes)? }))
}

/// Registers a node (admin). The response carries its API secret this once.
#[utoipa::path(post, path = "/api/v1/nodes", operation_id = "register_node", tag = "nodes", request_body = RegisterNodeRequest,
    responses((status = 201, description = "registered; `api_secret` is shown only here", body = NodeWithSecret), ApiErrors))]
pub async fn register(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiJson(body): ApiJson<RegisterNodeRequest>,
) -> ApiResult<(StatusCode, Json<NodeWithSecret>)> {
    let r = b.unary(b.nodes().register_node(b.request(&auth, pb::RegisterNodeRequest::from(body)))).await?;
    Ok((StatusCode::CREATED, Json(r.try_into()?)))
}

#[utoipa::path(get, path = "/api/v1/nodes/{id}", operation_id = "get_node", tag = "nodes",
    params(("id" = String, Path, description = "node id")),
    responses((status = 200, description = "the node, with its presence", body = Node), ApiErrors))]
pub async fn get(State(b): State<Bridge>, auth: Bearer, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Node>> {
    let r = b.unary(b.nodes().get_node(b.request(&auth, pb::GetNodeRequest { id }))).await?;
    Ok(Json(r.try_into()?))
}

#[utoipa::path(patch, path = "/api/v1/nodes/{id}", operation_id = "update_node", tag = "nodes", request_body = UpdateNodeRequest,
    params(("id" = String, Path, description = "node id")),
    responses((status = 200, description = "updated", body = Node), ApiErrors))]
pub async fn update(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateNodeRequest>,
) -> ApiResult<Json<Node>> {
    let r = b.unary(b.nodes().update_node(b.request(&auth, body.into_proto(id)))).await?;
    Ok(Json(r.try_into()?))
}

#[utoipa::path(delete, path = "/api/v1/nodes/{id}", operation_id = "delete_node", tag = "nodes",
    params(("id" = String, Path, description = "node id")),
    responses((status = 204, description = "deleted"), ApiErrors))]
pub async fn delete(State(b): State<Bridge>, auth: Bearer, ApiPath(id): ApiPath<String>) -> ApiResult<StatusCode> {
    b.unary(b.nodes().delete_node(b.request(&auth, pb::DeleteNodeRequest { id }))).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues a new API secret (shown this once); the old one stops working at once.
#[utoipa::path(post, path = "/api/v1/nodes/{id}/rotate-secret", operation_id = "rotate_node_secret", tag = "nodes",
    params(("id" = String, Path, description = "node id")),
    responses((status = 200, description = "the node and its new secret", body = NodeWithSecret), ApiErrors))]
pub async fn rotate_secret(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<NodeWithSecret>> {
    let r = b.unary(b.nodes().rotate_node_secret(b.request(&auth, pb::RotateNodeSecretRequest { id }))).await?;
    Ok(Json(r.try_into()?))
}

/// Maintenance, resume, disable or shutdown (operator), with the reason for the audit log.
#[utoipa::path(post, path = "/api/v1/nodes/{id}/lifecycle", operation_id = "set_node_lifecycle", tag = "nodes", request_body = LifecycleRequest,
    params(("id" = String, Path, description = "node id")),
    responses((status = 200, description = "the node with its new desired state", body = Node), ApiErrors))]
pub async fn lifecycle(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<LifecycleRequest>,
) -> ApiResult<Json<Node>> {
    let r = b.unary(b.nodes().set_node_lifecycle(b.request(&auth, body.into_proto(id)))).await?;
    Ok(Json(r.try_into()?))
}

/// Who did what to which object, and why; newest first.
#[utoipa::path(get, path = "/api/v1/audit", operation_id = "list_audit_events", tag = "nodes", params(AuditFilter),
    responses((status = 200, description = "audit events", body = AuditList), ApiErrors))]
pub async fn audit(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiQuery(filter): ApiQuery<AuditFilter>,
) -> ApiResult<Json<AuditList>> {
    let r = b.unary(b.nodes().list_audit_events(b.request(&auth, pb::ListAuditEventsRequest::from(filter)))).await?;
    Ok(Json(AuditList { events: convert_all(r.events)? }))
}
