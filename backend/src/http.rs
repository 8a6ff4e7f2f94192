//! Plain HTTP beside gRPC on the same port: `GET /health` (the seeds' contract: 200 only
//! when the required settings are present and the store answers) and `GET /metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::bridge::Bridge;

pub fn routes(bridge: Arc<Bridge>) -> Router {
    Router::new().route("/health", get(health)).route("/metrics", get(metrics)).with_state(bridge)
}

async fn health(State(bridge): State<Arc<Bridge>>) -> impl IntoResponse {
    let version = vox_telemetry::build::FULL_VERSION;
    match bridge.stores.health.ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({ "status": "ok", "store": "ok", "version": version }))),
        Err(e) => {
            tracing::warn!(error = %e, "health: store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "status": "unavailable", "store": e.message, "version": version })),
            )
        }
    }
}

async fn metrics(State(bridge): State<Arc<Bridge>>) -> impl IntoResponse {
    // Refresh the dashboard gauges and the leadership term before rendering.
    if let Err(e) = crate::dashboard::snapshot(&bridge).await {
        tracing::warn!(error = %e, "metrics: dashboard figures unavailable");
    }
    if let Ok(l) = bridge.stores.leadership.leadership().await {
        bridge.metrics.leader_term.set(l.term);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], bridge.metrics.render())
}
