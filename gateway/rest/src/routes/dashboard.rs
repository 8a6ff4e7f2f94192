//! The dashboard, once or as a Server-Sent Events stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use vox_proto::backend::v1 as pb;

use crate::bridge::Bridge;
use crate::dto::dashboard::Dashboard;
use crate::error::{ApiError, ApiErrors, ApiResult};
use crate::extract::Bearer;

/// How often an idle stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[utoipa::path(get, path = "/api/v1/dashboard", operation_id = "get_dashboard", tag = "dashboard",
    responses((status = 200, description = "the cluster's figures now", body = Dashboard), ApiErrors))]
pub async fn get(State(b): State<Bridge>, auth: Bearer) -> ApiResult<Json<Dashboard>> {
    let r = b.unary(b.dashboard().get_dashboard(b.request(&auth, pb::GetDashboardRequest {}))).await?;
    Ok(Json(r.try_into()?))
}

/// The dashboard as Server-Sent Events: a `dashboard` event (data: the Dashboard JSON)
/// at once and then whenever the figures change, at least every 2 s; keep-alive comments
/// in between. If voxbridge fails mid-stream, one `error` event (data: the error JSON)
/// ends the stream. Closing the connection ends the watch on voxbridge too.
#[utoipa::path(get, path = "/api/v1/dashboard/stream", operation_id = "watch_dashboard", tag = "dashboard",
    responses((status = 200, description = "`event: dashboard` messages whose data is a Dashboard",
        content_type = "text/event-stream", body = Dashboard), ApiErrors))]
pub async fn stream(
    State(b): State<Bridge>,
    auth: Bearer,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let req = b.stream_request(&auth, pb::WatchDashboardRequest { min_interval_ms: 0, max_interval_ms: 0 });
    let mut client = b.dashboard();
    let watch = b.within_deadline(client.watch_dashboard(req)).await?.into_inner();
    tracing::debug!("dashboard stream opened");
    let events = futures::stream::unfold(Some(watch), |watch| async move {
        let mut watch = watch?;
        let next = match watch.message().await {
            Ok(Some(d)) => dashboard_event(d),
            Ok(None) => {
                tracing::debug!("dashboard stream ended by voxbridge");
                return None;
            }
            Err(status) => Err(ApiError::from(status)),
        };
        Some(match next {
            Ok(event) => (Ok(event), Some(watch)),
            Err(e) => (Ok(error_event(&e)), None),
        })
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

fn dashboard_event(d: pb::Dashboard) -> ApiResult<Event> {
    let d = Dashboard::try_from(d)?;
    Event::default().event("dashboard").json_data(d).map_err(|e| ApiError::internal(format!("encode dashboard: {e}")))
}

fn error_event(e: &ApiError) -> Event {
    tracing::warn!(error = %e.message(), "dashboard stream failed");
    let event = Event::default().event("error");
    match serde_json::to_string(&e.body()) {
        Ok(json) => event.data(json),
        Err(_) => event.data(e.message()),
    }
}
