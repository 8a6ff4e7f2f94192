//! voxgate's own HTTP routes: the seeds' health routes, metrics and the carrier media
//! streams.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::Gate;
use crate::media::{relay, twilio};
use crate::metrics::label;

pub fn router(gate: Arc<Gate>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/health/fleet", get(health_fleet))
        .route("/metrics", get(metrics))
        .route("/media/twilio", get(twilio_media))
        .route("/twilio/voice", axum::routing::post(crate::inbound::twilio_voice))
        .route("/twilio/outbound/answer", axum::routing::post(crate::outbound::answer))
        .route("/twilio/status", axum::routing::post(crate::outbound::status))
        .route("/web/sessions", axum::routing::post(crate::web_sessions::create))
        .route("/media/web", get(crate::web_sessions::stream))
        .route("/attach", axum::routing::post(crate::web_sessions::attach))
        .route("/livekit/dispatch", axum::routing::post(crate::livekit::dispatch))
        .route("/livekit/widget", axum::routing::post(crate::livekit::widget))
        .route("/livekit/dialout", axum::routing::post(crate::livekit::dialout))
        .with_state(gate)
}

/// The gateway's JSON error. A 500's message (this gateway's own failure) stays in the
/// log under a fresh error id, which is all the caller gets; a message voxbridge already
/// concealed is passed on as it is.
pub(crate) fn problem(status: StatusCode, code: &str, message: &str) -> Response {
    let concealed = (status == StatusCode::INTERNAL_SERVER_ERROR)
        .then(|| vox_domain::Error::internal(message).conceal("voxgate"))
        .flatten();
    let message = match &concealed {
        Some(c) => {
            tracing::error!(error_id = %c.id, code, error = %message, "request failed");
            c.public.message.as_str()
        }
        None => message,
    };
    let mut r = (status, axum::Json(json!({"error": {"code": code, "message": message}}))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    r
}

/// The answer to a plain request on a WebSocket route.
pub(crate) fn upgrade_required() -> Response {
    problem(
        StatusCode::UPGRADE_REQUIRED,
        "upgrade_required",
        "this is a WebSocket route: connect with Connection: upgrade and Upgrade: websocket",
    )
}

/// The answer when every worker slot is taken: 503 with Retry-After.
pub(crate) fn no_free_slot() -> Response {
    problem(StatusCode::SERVICE_UNAVAILABLE, "no_free_slot", "every worker slot is taken; retry shortly")
}

/// A voxbridge refusal as the gateway's JSON error, with the HTTP status of its code.
/// When voxbridge never answered (the status came from this side of the channel), the
/// transport's words stay in the log under an error id.
pub(crate) fn grpc_problem(s: &tonic::Status, code: &str) -> Response {
    if std::error::Error::source(s).is_some() {
        let unreachable = vox_domain::Error::unavailable(s.message());
        let c = unreachable.conceal_as("voxbridge is unreachable or did not answer in time; retry shortly", "voxgate");
        tracing::warn!(error_id = %c.id, code, error = %unreachable.message, "voxbridge unreachable");
        return problem(StatusCode::SERVICE_UNAVAILABLE, code, &c.public.message);
    }
    let status = StatusCode::from_u16(vox_domain::ErrorCode::from_grpc(s.code()).http_status())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    problem(status, code, s.message())
}

async fn health(State(gate): State<Arc<Gate>>) -> Response {
    axum::Json(json!({
        "status": "ok",
        "draining": gate.draining.load(Ordering::SeqCst),
        "fleet_available": gate.fleet.available(),
        "worker_slots": gate.fleet.total(),
        // Workers refuse this gateway until voxbridge has given it a worker token.
        "worker_token": gate.credential.ready(),
        "version": vox_telemetry::build::FULL_VERSION,
    }))
    .into_response()
}

/// Every worker with the seeds' field names, per host, and the free slots in all.
async fn health_fleet(State(gate): State<Arc<Gate>>) -> Response {
    let workers = gate.fleet.view();
    let mut hosts: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    for w in &workers {
        let h = hosts.entry(if w.node_id.is_empty() { "static".into() } else { w.node_id.clone() }).or_default();
        h.0 += w.worker_calls;
        h.1 += w.worker_max;
        if w.accepting {
            h.2 += w.worker_max.saturating_sub(w.worker_calls);
        }
    }
    let hosts: Vec<_> = hosts
        .into_iter()
        .map(|(node_id, (calls, max, free))| json!({"node_id": node_id, "worker_calls": calls, "worker_max": max, "fleet_available": free}))
        .collect();
    axum::Json(json!({"fleet_available": gate.fleet.available(), "hosts": hosts, "workers": workers})).into_response()
}

async fn metrics(State(gate): State<Arc<Gate>>) -> Response {
    gate.metrics.slots_free.set(i64::from(gate.fleet.available()));
    gate.metrics.slots_total.set(i64::from(gate.fleet.total()));
    gate.metrics.limiter_addresses.set(i64::try_from(gate.limits.addresses()).unwrap_or(i64::MAX));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], gate.metrics.render()).into_response()
}

/// The base URL clients reach this gateway at: `--public-url` when set, else the
/// request's Host over the scheme this gateway serves. `websocket` picks ws(s):// over
/// http(s)://.
pub(crate) fn public_base(gate: &Gate, headers: &HeaderMap, websocket: bool) -> String {
    if let Some(base) = &gate.args.public_url {
        let base = base.trim_end_matches('/');
        return if websocket {
            base.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1)
        } else {
            base.replacen("wss://", "https://", 1).replacen("ws://", "http://", 1)
        };
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let secure = gate.tls || crate::forwarded::forwarded_https(headers);
    let scheme = match (websocket, secure) {
        (true, true) => "wss",
        (true, false) => "ws",
        (false, true) => "https",
        (false, false) => "http",
    };
    format!("{scheme}://{host}")
}

/// The URLs Twilio may have signed for this request.
fn signed_urls(gate: &Gate, headers: &HeaderMap, uri: &axum::http::Uri) -> Vec<String> {
    let path = uri.path_and_query().map_or("/media/twilio", |p| p.as_str());
    if let Some(base) = &gate.args.public_url {
        return vec![format!("{}{path}", base.trim_end_matches('/'))];
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    vec![format!("wss://{host}{path}"), format!("ws://{host}{path}")]
}

async fn twilio_media(
    State(gate): State<Arc<Gate>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else { return upgrade_required() };
    let reject = |reason: &str| gate.metrics.rejections.get_or_create(&label("reason", reason)).inc();
    let Some(token) = &gate.args.twilio_auth_token else {
        reject("not_configured");
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "Twilio streams are off: voxgate has no TWILIO_AUTH_TOKEN",
        );
    };
    let given = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if given.is_empty() || !twilio::signature_valid(token, &signed_urls(&gate, &headers, &uri), &[], given) {
        reject("bad_signature");
        return problem(
            StatusCode::FORBIDDEN,
            "bad_signature",
            "X-Twilio-Signature is missing or does not match this URL and auth token",
        );
    }
    if gate.draining.load(Ordering::SeqCst) {
        reject("draining");
        return problem(StatusCode::SERVICE_UNAVAILABLE, "draining", "this gateway is draining; use another");
    }
    // Claim a slot before accepting, so a full fleet answers 503 rather than a stream
    // that cannot be served. The one exception: a worker holds a reservation waiting for
    // its stream (an answered outbound call), and this may be that stream; its `start`
    // says so, and it takes that reservation over.
    let claim = gate.fleet.claim(&HashSet::new());
    if claim.is_none() && !gate.fleet.awaiting_streams() {
        reject("no_free_slot");
        return no_free_slot();
    }
    let max = gate.args.max_frame_bytes;
    // A media frame is well under 4 KiB; the default 128 KiB read buffer is zeroed on
    // every read, which cost about 7% of voxgate's CPU in `voxctl bench media`.
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(4096)
        .on_upgrade(move |socket| relay::carrier_stream(gate, socket, claim, Box::new(twilio::Twilio::default())))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn message(r: Response) -> String {
        let body = axum::body::to_bytes(r.into_body(), 64 * 1024).await.unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        v["error"]["message"].as_str().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn internal_failures_answer_an_error_id_and_refusals_their_words() {
        let r = problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", "encode token: InvalidKeyFormat");
        let m = message(r).await;
        assert!(m.starts_with("internal error err_") && !m.contains("InvalidKeyFormat"), "{m}");
        assert!(m.ends_with("the details are in voxgate's log under this id"), "{m}");

        let relayed = "internal error err_0123456789ab; the details are in voxbridge's log under this id";
        let m = message(grpc_problem(&tonic::Status::internal(relayed), "inbound_refused")).await;
        assert_eq!(m, relayed);

        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "tcp connect error: 10.0.0.9:7070");
        let r = grpc_problem(&tonic::Status::from_error(Box::new(refused)), "unavailable");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let m = message(r).await;
        assert!(m.starts_with("voxbridge is unreachable") && !m.contains("10.0.0.9"), "{m}");

        let m = message(problem(StatusCode::BAD_REQUEST, "invalid_argument", "CallSid and To are required")).await;
        assert_eq!(m, "CallSid and To are required");
    }
}
