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
            // Anyone may ask: the driver's words (addresses, paths) stay in the log.
            let error_id = vox_domain::ids::new_error_id();
            tracing::warn!(error_id, error = %e, "health: store does not answer");
            let store = format!("unreachable (error {error_id}; the details are in voxbridge's log under this id)");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "status": "unavailable", "store": store, "version": version })),
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
    let (queued, dropped) = bridge.stores.events.backlog();
    bridge.metrics.events_queued.set(i64::try_from(queued).unwrap_or(i64::MAX));
    {
        // Two scrapes at once must not both add the same drops.
        static CATCH_UP: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = CATCH_UP.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        bridge.metrics.events_dropped.inc_by(dropped.saturating_sub(bridge.metrics.events_dropped.get()));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], bridge.metrics.render())
}
