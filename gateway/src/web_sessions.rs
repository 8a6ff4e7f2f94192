//! `POST /web/sessions`: a signed-in operator (or the customer's backend, with an API
//! user's token) opens a web call and gets a short-lived token for the browser's media
//! stream (`/media/web?token=…`, see [`crate::media::web`]).
//!
//! The token is a stream token voxbridge signs for the call, so any gateway of the
//! cluster accepts it, not only the one that opened the session, and no gateway keeps
//! it. It opens its call once: a stream starts only for an `answered` call, and the move
//! to `attaching` happens once, so a second use (on any gateway) finds the call past
//! `answered` and is refused.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use vox_proto::backend::v1 as bpb;
use vox_proto::common::v1 as common;

use crate::Gate;
use crate::media::{Encoding, StreamStart, relay, web};
use crate::metrics::label;
use crate::routes::{grpc_problem, no_free_slot, problem, public_base, upgrade_required};

/// How long a session token waits for its stream, seconds.
const TOKEN_TTL_SECONDS: u32 = 60;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    campaign_id: Option<String>,
    sample_rate: Option<u32>,
}

/// Who the request's bearer is, as voxbridge says; or the response to send.
pub(crate) async fn identify(gate: &Gate, headers: &HeaderMap) -> Result<bpb::identity::Principal, Response> {
    let Some(bearer) =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).filter(|v| v.starts_with("Bearer "))
    else {
        return Err(problem(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send Authorization: Bearer <access token or node secret>",
        ));
    };
    let mut req = tonic::Request::new(bpb::IdentifyRequest {});
    let Ok(value) = bearer.parse() else {
        return Err(problem(StatusCode::UNAUTHORIZED, "unauthenticated", "the authorization header is not valid"));
    };
    req.metadata_mut().insert("authorization", value);
    match bpb::auth_service_client::AuthServiceClient::new(gate.rest_channel.clone()).identify(req).await {
        Ok(r) => r
            .into_inner()
            .principal
            .ok_or_else(|| problem(StatusCode::UNAUTHORIZED, "unauthenticated", "unknown caller")),
        Err(s) => Err(grpc_problem(&s, "unauthenticated")),
    }
}

/// The JSON body (empty means all defaults), or why it is not acceptable.
fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, String> {
    if body.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| format!("body: {e}"))
}

fn check_rate(rate: Option<u32>) -> Result<u32, String> {
    match rate.unwrap_or(16000) {
        r @ (8000 | 16000) => Ok(r),
        _ => Err("sample_rate: 8000 or 16000".into()),
    }
}

fn bad_request(message: &str) -> Response {
    problem(StatusCode::BAD_REQUEST, "invalid_argument", message)
}

/// The session's stream URL, on the public URL when one is set.
fn ws_url(gate: &Gate, headers: &HeaderMap, token: &str) -> String {
    let query = serde_urlencoded::to_string([("token", token)]).unwrap_or_default();
    format!("{}/media/web?{query}", public_base(gate, headers, true))
}

/// A stream token for the call from voxbridge, and the reply carrying it.
async fn session_reply(
    status: StatusCode,
    gate: &Gate,
    headers: &HeaderMap,
    call_id: &str,
    sample_rate: u32,
) -> Response {
    let req =
        bpb::IssueStreamTokenRequest { call_id: call_id.to_string(), sample_rate, ttl_seconds: TOKEN_TTL_SECONDS };
    let token = match gate.bridge.cluster().issue_stream_token(req).await {
        Ok(t) => t.into_inner().token,
        Err(s) => {
            tracing::warn!(call_id, code = ?s.code(), error = s.message(), "voxbridge issued no stream token");
            return grpc_problem(&s, "unavailable");
        }
    };
    let url = ws_url(gate, headers, &token);
    (
        status,
        axum::Json(json!({"call_id": call_id, "token": token, "ws_url": url, "sample_rate": sample_rate, "expires_in_seconds": TOKEN_TTL_SECONDS})),
    )
        .into_response()
}

pub async fn create(State(gate): State<Arc<Gate>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let principal = match identify(&gate, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let req: NewSession = match parse_body(&body) {
        Ok(r) => r,
        Err(why) => return bad_request(&why),
    };
    let sample_rate = match check_rate(req.sample_rate) {
        Ok(r) => r,
        Err(why) => return bad_request(&why),
    };
    let bpb::identity::Principal::User(user) = principal else {
        return problem(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "web sessions are opened with a user's access token",
        );
    };
    if user.role() == bpb::Role::Viewer {
        return problem(StatusCode::FORBIDDEN, "permission_denied", "opening web sessions needs the operator role");
    }
    let create = bpb::CreateInboundCallRequest {
        region_id: String::new(),
        channel: common::Channel::Web as i32,
        from_number: format!("web:{}", user.email),
        to_number: "web".into(),
        provider_call_id: String::new(),
        campaign_id: req.campaign_id.unwrap_or_default(),
    };
    let call = match gate.bridge.calls().create_inbound_call(create).await {
        Ok(c) => c.into_inner(),
        Err(s) => {
            return grpc_problem(&s, "invalid_argument");
        }
    };
    session_reply(StatusCode::CREATED, &gate, &headers, &call.id, sample_rate).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    call_id: String,
    sample_rate: Option<u32>,
}

/// `POST /attach`: the seeds' route for attaching an answered call to a free worker,
/// for calls whose audio reaches Vox through a media bridge rather than a carrier stream.
/// A dialler node or an operator asks; the answer is a single-use stream token, or 503
/// with Retry-After when every slot is taken.
pub async fn attach(State(gate): State<Arc<Gate>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let principal = match identify(&gate, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let allowed = match &principal {
        bpb::identity::Principal::User(u) => u.role() != bpb::Role::Viewer,
        bpb::identity::Principal::Node(n) => n.kind == bpb::NodeKind::Dialler as i32,
    };
    if !allowed {
        return problem(StatusCode::FORBIDDEN, "permission_denied", "attaching calls is for diallers and operators");
    }
    let req: AttachRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(why) => return bad_request(&why),
    };
    if req.call_id.trim().is_empty() {
        return bad_request("call_id: required");
    }
    let sample_rate = match check_rate(req.sample_rate) {
        Ok(r) => r,
        Err(why) => return bad_request(&why),
    };
    if gate.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "draining", "this gateway is draining; use another");
    }
    if gate.fleet.available() == 0 {
        gate.metrics.rejections.get_or_create(&label("reason", "no_free_slot")).inc();
        return no_free_slot();
    }
    let call = match gate.bridge.calls().get_call(bpb::GetCallRequest { id: req.call_id.clone() }).await {
        Ok(c) => c.into_inner(),
        Err(s) => {
            return grpc_problem(&s, "not_found");
        }
    };
    if call.state() != bpb::CallState::Answered {
        return problem(
            StatusCode::PRECONDITION_FAILED,
            "failed_precondition",
            &format!("call {} is {:?}, not answered", call.id, call.state()),
        );
    }
    session_reply(StatusCode::OK, &gate, &headers, &call.id, sample_rate).await
}

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    token: Option<String>,
}

pub async fn stream(
    State(gate): State<Arc<Gate>>,
    Query(q): Query<StreamQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else { return upgrade_required() };
    let reject = |reason: &str| gate.metrics.rejections.get_or_create(&label("reason", reason)).inc();
    let refused = || {
        problem(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the session token is missing, used or expired; open a new session",
        )
    };
    let Some(verifier) = gate.cluster_key.verifier() else {
        reject("not_ready");
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this gateway has not got voxbridge's token key yet; retry shortly",
        );
    };
    let claims = match q.token.as_deref().map(|t| verifier.stream(t)) {
        Some(Ok(c)) if vox_domain::ids::has_prefix(&c.sub, vox_domain::ids::CALL) && matches!(c.rate, 8000 | 16000) => {
            c
        }
        _ => {
            reject("bad_token");
            return refused();
        }
    };
    // Used already? The call has moved past answered. (Two uses at once both pass here;
    // only one moves the call to attaching, and the relay closes the other.)
    match gate.bridge.calls().get_call(bpb::GetCallRequest { id: claims.sub.clone() }).await {
        Ok(c) if c.get_ref().state() == bpb::CallState::Answered => {}
        Ok(_) => {
            reject("bad_token");
            return refused();
        }
        Err(s) => return grpc_problem(&s, "unavailable"),
    }
    let Some(claim) = gate.fleet.claim(&HashSet::new()) else {
        reject("no_free_slot");
        return no_free_slot();
    };
    let start = StreamStart {
        stream_id: format!("web-{}", claims.sub),
        carrier_call_id: String::new(),
        call_id: Some(claims.sub),
        slot: None,
        traceparent: vox_telemetry::trace::traceparent(),
        encoding: Encoding::Pcm16le,
        sample_rate: claims.rate,
    };
    let max = gate.args.max_frame_bytes;
    // Small reads, as for carrier streams (see `routes::twilio_media`).
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(4096)
        .on_upgrade(move |socket| relay::known_stream(gate, socket, claim, Box::new(web::Web), start))
}
