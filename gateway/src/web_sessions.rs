//! `POST /web/sessions`: a signed-in operator (or the customer's backend, with an API
//! user's token) opens a web call and gets a short-lived, single-use token for the
//! browser's media stream (`/media/web?token=…`, see [`crate::media::web`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

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
use crate::routes::problem;

/// How long a session token waits for its stream.
const TOKEN_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    campaign_id: Option<String>,
    sample_rate: Option<u32>,
}

pub async fn create(State(gate): State<Arc<Gate>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Some(bearer) =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).filter(|v| v.starts_with("Bearer "))
    else {
        return problem(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send Authorization: Bearer <access token> of an operator",
        );
    };
    let req: NewSession = if body.is_empty() {
        NewSession::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid_argument", &format!("body: {e}")),
        }
    };
    let sample_rate = req.sample_rate.unwrap_or(16000);
    if sample_rate != 8000 && sample_rate != 16000 {
        return problem(StatusCode::BAD_REQUEST, "invalid_argument", "sample_rate: 8000 or 16000");
    }
    // Who is asking: voxbridge checks the user's token.
    let mut who = tonic::Request::new(bpb::WhoAmIRequest {});
    match bearer.parse() {
        Ok(v) => {
            who.metadata_mut().insert("authorization", v);
        }
        Err(_) => return problem(StatusCode::UNAUTHORIZED, "unauthenticated", "the authorization header is not valid"),
    }
    let channel = gate.rest_channel.clone();
    let user = match bpb::auth_service_client::AuthServiceClient::new(channel).who_am_i(who).await {
        Ok(u) => u.into_inner(),
        Err(s) => {
            let code = vox_domain::ErrorCode::from_grpc(s.code());
            let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
            return problem(status, "unauthenticated", s.message());
        }
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
            let code = vox_domain::ErrorCode::from_grpc(s.code());
            let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
            return problem(status, "invalid_argument", s.message());
        }
    };
    let token = gate.web_sessions.issue(&call.id, sample_rate, TOKEN_TTL);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let base = gate
        .args
        .public_url
        .as_deref()
        .map(|b| b.trim_end_matches('/').replacen("https://", "wss://", 1).replacen("http://", "ws://", 1));
    let ws_url = format!("{}/media/web?token={token}", base.unwrap_or_else(|| format!("ws://{host}")));
    (
        StatusCode::CREATED,
        axum::Json(json!({"call_id": call.id, "token": token, "ws_url": ws_url, "sample_rate": sample_rate, "expires_in_seconds": TOKEN_TTL.as_secs()})),
    )
        .into_response()
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
    let Ok(ws) = ws else {
        return problem(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "this is a WebSocket route: connect with Connection: upgrade and Upgrade: websocket",
        );
    };
    let reject = |reason: &str| gate.metrics.rejections.get_or_create(&label("reason", reason)).inc();
    let Some(session) = q.token.as_deref().and_then(|t| gate.web_sessions.redeem(t)) else {
        reject("bad_token");
        return problem(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the session token is missing, used or expired; open a new session",
        );
    };
    let Some(claim) = gate.fleet.claim(&HashSet::new()) else {
        reject("no_free_slot");
        return problem(StatusCode::SERVICE_UNAVAILABLE, "no_free_slot", "every worker slot is taken; retry shortly");
    };
    let start = StreamStart {
        stream_id: format!("web-{}", session.call_id),
        carrier_call_id: String::new(),
        call_id: Some(session.call_id),
        encoding: Encoding::Pcm16le,
        sample_rate: session.sample_rate,
    };
    let max = gate.args.max_frame_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| relay::known_stream(gate, socket, claim, Box::new(web::Web), start))
}
