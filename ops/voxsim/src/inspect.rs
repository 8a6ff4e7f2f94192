//! The test and inspection API (HTTP Basic, like the REST API): every call with what
//! the model drew and what happened (`GET /sim/calls`), counts (`GET /sim/stats`), and
//! faults injected into the next create requests (`POST /sim/faults`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::calls::Status;
use crate::twilio::{authorize, error};
use crate::{Fault, Sim};

/// `GET /sim/calls`: every call, oldest first.
pub async fn calls(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&sim, &headers) {
        return e.into_response();
    }
    let views: Vec<_> = sim.all().iter().map(|c| c.view()).collect();
    axum::Json(views).into_response()
}

/// `GET /sim/stats`: counts by status, outcome and provider.
pub async fn stats(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&sim, &headers) {
        return e.into_response();
    }
    let calls = sim.all();
    let mut by_status: BTreeMap<&str, u64> = Status::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    let mut by_outcome: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_provider: BTreeMap<&str, u64> = BTreeMap::new();
    let mut frames = 0;
    for c in &calls {
        *by_status.entry(c.status().as_str()).or_default() += 1;
        *by_outcome.entry(c.draw.outcome.as_str()).or_default() += 1;
        let provider = match c.provider {
            crate::calls::Provider::Twilio => "twilio",
            crate::calls::Provider::Livekit => "livekit",
        };
        *by_provider.entry(provider).or_default() += 1;
        frames += c.frames_sent.load(std::sync::atomic::Ordering::Relaxed);
    }
    let live = calls.iter().filter(|c| !c.status().is_final()).count();
    axum::Json(json!({
        "total": calls.len(),
        "live": live,
        "by_status": by_status,
        "by_outcome": by_outcome,
        "by_provider": by_provider,
        "media_frames_sent": frames,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    /// HTTP status the next create requests answer with (absent or 0: none, only the delay).
    #[serde(default)]
    create_status: Option<u16>,
    /// How long the next create requests hang before answering.
    #[serde(default)]
    create_delay_ms: u64,
    /// How many create requests; 0 clears.
    count: u64,
}

/// `POST /sim/faults` `{"create_status": 500, "create_delay_ms": 0, "count": 3}`
pub async fn set_faults(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(e) = authorize(&sim, &headers) {
        return e.into_response();
    }
    let req: FaultRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, 20001, format!("body: {e}")).into_response(),
    };
    let status = match req.create_status.filter(|s| *s != 0) {
        None => None,
        Some(s) => match StatusCode::from_u16(s) {
            Ok(code) if (400..=599).contains(&s) => Some(code),
            _ => {
                return error(StatusCode::BAD_REQUEST, 20001, format!("create_status must be 400-599, not {s}"))
                    .into_response();
            }
        },
    };
    let fault = Fault { status, delay_ms: req.create_delay_ms };
    sim.set_faults(fault, req.count);
    tracing::info!(status = ?status.map(|s| s.as_u16()), delay_ms = req.create_delay_ms, count = req.count, "faults set");
    faults_view(&sim)
}

/// `GET /sim/faults`: what is still armed.
pub async fn get_faults(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&sim, &headers) {
        return e.into_response();
    }
    faults_view(&sim)
}

fn faults_view(sim: &Sim) -> Response {
    let (fault, remaining) = sim.faults();
    axum::Json(json!({
        "create_status": fault.status.map(|s| s.as_u16()),
        "create_delay_ms": fault.delay_ms,
        "count": remaining,
    }))
    .into_response()
}
