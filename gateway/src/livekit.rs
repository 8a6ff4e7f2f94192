//! The seeds' LiveKit routes.
//!
//! `POST /livekit/dispatch`: LiveKit's webhook, which is how inbound SIP calls on a
//! LiveKit trunk reach Vox (the seeds' "missing webhook = a silent, cancelled room").
//!
//! The request is verified as LiveKit signs it: `Authorization` is a JWT (HS256) made
//! with the API secret, issued by the API key, whose `sha256` claim is the base64
//! SHA-256 of the raw body. A SIP participant joining a room creates the inbound call in
//! voxbridge (caller, called number and SIP call id from the participant's attributes);
//! the reply names the call, which a media bridge then attaches with `POST /attach`.
//! Other events are acknowledged and logged.
//!
//! `POST /livekit/widget`: a web widget session: a web call in voxbridge and a LiveKit
//! access token for the browser to join the call's room.
//!
//! `POST /livekit/dialout`: dials a call's number through the LiveKit SIP trunk
//! (`CreateSIPParticipant`, Twirp over HTTP, with a JWT carrying the `sip.call` grant)
//! into the call's room, and returns LiveKit's answer (participant and SIP call id).
//!
//! What these routes do not do: carry the room's audio. A LiveKit media bridge (a room
//! participant that relays audio) uses `POST /attach` to reach a worker; Vox does not
//! ship one yet.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use vox_proto::backend::v1 as bpb;
use vox_proto::common::v1 as common;

use crate::Gate;
use crate::metrics::label;
use crate::routes::{grpc_problem, problem};

#[derive(Debug, Deserialize)]
struct WebhookClaims {
    #[serde(default)]
    sha256: String,
}

/// Checks LiveKit's signature over `body`; the error says what failed.
pub fn verify(api_key: &str, api_secret: &str, authorization: &str, body: &[u8]) -> Result<(), String> {
    let token = authorization.strip_prefix("Bearer ").unwrap_or(authorization).trim();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[api_key]);
    validation.validate_exp = true;
    validation.required_spec_claims.clear();
    let claims =
        jsonwebtoken::decode::<WebhookClaims>(token, &DecodingKey::from_secret(api_secret.as_bytes()), &validation)
            .map_err(|e| format!("the webhook token is not valid for this API key and secret: {e}"))?
            .claims;
    let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
    if claims.sha256.is_empty()
        || !bool::from(subtle::ConstantTimeEq::ct_eq(claims.sha256.as_bytes(), digest.as_bytes()))
    {
        return Err("the body does not match the token's sha256 claim".into());
    }
    Ok(())
}

/// True for a SIP participant (LiveKit sends the kind as a name or a number).
fn is_sip(participant: &Value) -> bool {
    match participant.get("kind") {
        Some(Value::String(k)) => k == "SIP",
        Some(Value::Number(n)) => n.as_u64() == Some(3),
        _ => participant.pointer("/attributes/sip.callID").is_some(),
    }
}

pub async fn dispatch(State(gate): State<Arc<Gate>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let reject = |reason: &str| gate.metrics.rejections.get_or_create(&label("reason", reason)).inc();
    let (Some(key), Some(secret)) = (&gate.args.livekit_api_key, &gate.args.livekit_api_secret) else {
        reject("not_configured");
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "LiveKit webhooks are off: set LIVEKIT_API_KEY and LIVEKIT_API_SECRET",
        );
    };
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Err(why) = verify(key, secret, auth, &body) {
        reject("bad_signature");
        return problem(StatusCode::UNAUTHORIZED, "bad_signature", &why);
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "invalid_argument", "the webhook body is not JSON");
    };
    let kind = event.get("event").and_then(Value::as_str).unwrap_or("");
    let participant = event.get("participant").cloned().unwrap_or(Value::Null);
    if kind != "participant_joined" || !is_sip(&participant) {
        tracing::debug!(event = kind, "livekit webhook acknowledged");
        return (StatusCode::OK, axum::Json(json!({"handled": false, "event": kind}))).into_response();
    }
    let attr = |name: &str| {
        participant.pointer(&format!("/attributes/{name}")).and_then(Value::as_str).unwrap_or("").to_string()
    };
    let to = attr("sip.trunkPhoneNumber");
    if to.is_empty() {
        return problem(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "participant.attributes[\"sip.trunkPhoneNumber\"] is required for a SIP call",
        );
    }
    let room = event.pointer("/room/name").and_then(Value::as_str).unwrap_or("").to_string();
    let req = bpb::CreateInboundCallRequest {
        region_id: String::new(),
        channel: common::Channel::Phone as i32,
        from_number: {
            let f = attr("sip.phoneNumber");
            if f.is_empty() { "anonymous".into() } else { f }
        },
        to_number: to,
        provider_call_id: attr("sip.callID"),
        campaign_id: String::new(),
    };
    match gate.bridge.calls().create_inbound_call(req).await {
        Ok(call) => {
            let call = call.into_inner();
            tracing::info!(call_id = %call.id, room, "inbound LiveKit SIP call created");
            (StatusCode::OK, axum::Json(json!({"handled": true, "call_id": call.id, "room": room}))).into_response()
        }
        Err(s) => grpc_problem(&s, "inbound_refused"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sign(key: &str, secret: &str, body: &[u8]) -> String {
        let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
        let exp = chrono::Utc::now().timestamp() + 600;
        let claims = json!({"iss": key, "sha256": digest, "exp": exp, "nbf": 0});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn signatures_bind_key_secret_and_body() {
        let body = br#"{"event":"room_started"}"#;
        let token = sign("APIkey", "secret", body);
        assert!(verify("APIkey", "secret", &format!("Bearer {token}"), body).is_ok());
        assert!(verify("APIkey", "secret", &token, body).is_ok());
        assert!(verify("APIkey", "other", &token, body).is_err());
        assert!(verify("OtherKey", "secret", &token, body).is_err());
        assert!(verify("APIkey", "secret", &token, br#"{"event":"room_finished"}"#).unwrap_err().contains("sha256"));
        assert!(verify("APIkey", "secret", "", body).is_err());
    }
}

/// A LiveKit access token (JWT, HS256) for `identity` with the given grants.
pub fn access_token(
    api_key: &str,
    api_secret: &str,
    identity: &str,
    grants: serde_json::Map<String, Value>,
    ttl_seconds: i64,
) -> Result<String, String> {
    let now = chrono::Utc::now().timestamp();
    let mut claims = serde_json::Map::new();
    claims.insert("iss".into(), json!(api_key));
    claims.insert("sub".into(), json!(identity));
    claims.insert("nbf".into(), json!(now));
    claims.insert("exp".into(), json!(now + ttl_seconds));
    claims.extend(grants);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &Value::Object(claims),
        &jsonwebtoken::EncodingKey::from_secret(api_secret.as_bytes()),
    )
    .map_err(|e| format!("sign LiveKit token: {e}"))
}

struct LiveKit<'a> {
    url: &'a str,
    key: &'a str,
    secret: &'a str,
}

fn configured(gate: &Gate) -> Option<LiveKit<'_>> {
    match (&gate.args.livekit_url, &gate.args.livekit_api_key, &gate.args.livekit_api_secret) {
        (Some(url), Some(key), Some(secret)) => Some(LiveKit { url: url.trim_end_matches('/'), key, secret }),
        _ => None,
    }
}

fn not_configured() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_configured",
        "LiveKit is off: set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET",
    )
}

/// Who may use the widget and dial-out routes: operators, and diallers for dial-out.
async fn caller_allowed(gate: &Gate, headers: &HeaderMap, diallers: bool) -> Result<(), Response> {
    match crate::web_sessions::identify(gate, headers).await? {
        bpb::identity::Principal::User(u) if u.role() != bpb::Role::Viewer => Ok(()),
        bpb::identity::Principal::Node(n) if diallers && n.kind == bpb::NodeKind::Dialler as i32 => Ok(()),
        _ => Err(problem(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "this needs an operator (or, for dial-out, a dialler node)",
        )),
    }
}

fn room_for(call_id: &str) -> String {
    format!("vox-{call_id}")
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidgetRequest {
    campaign_id: Option<String>,
    /// Shown to other participants; default "caller".
    display_name: Option<String>,
}

pub async fn widget(State(gate): State<Arc<Gate>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Some(lk) = configured(&gate) else { return not_configured() };
    if let Err(r) = caller_allowed(&gate, &headers, false).await {
        return r;
    }
    let req: WidgetRequest = if body.is_empty() {
        WidgetRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid_argument", &format!("body: {e}")),
        }
    };
    let create = bpb::CreateInboundCallRequest {
        region_id: String::new(),
        channel: common::Channel::Web as i32,
        from_number: "web:widget".into(),
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
    let room = room_for(&call.id);
    let identity = format!("web-{}", call.id);
    let mut grants = serde_json::Map::new();
    grants.insert("name".into(), json!(req.display_name.unwrap_or_else(|| "caller".into())));
    grants.insert("video".into(), json!({"room": room, "roomJoin": true, "canPublish": true, "canSubscribe": true}));
    match access_token(lk.key, lk.secret, &identity, grants, 600) {
        Ok(token) => (StatusCode::CREATED, axum::Json(json!({"call_id": call.id, "url": lk.url, "room": room, "identity": identity, "token": token, "expires_in_seconds": 600}))).into_response(),
        Err(why) => problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", &why),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialoutRequest {
    call_id: String,
    /// Seconds to ring before giving up (LiveKit's ringing_timeout); default 30.
    ringing_timeout: Option<u32>,
}

pub async fn dialout(State(gate): State<Arc<Gate>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Some(lk) = configured(&gate) else { return not_configured() };
    let Some(trunk) = gate.args.livekit_sip_trunk_id.clone() else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "not_configured", "dial-out needs LIVEKIT_SIP_TRUNK_ID");
    };
    if let Err(r) = caller_allowed(&gate, &headers, true).await {
        return r;
    }
    let req: DialoutRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid_argument", &format!("body: {e}")),
    };
    let call = match gate.bridge.calls().get_call(bpb::GetCallRequest { id: req.call_id.clone() }).await {
        Ok(c) => c.into_inner(),
        Err(s) => {
            return grpc_problem(&s, "not_found");
        }
    };
    if !matches!(call.state(), bpb::CallState::Leased | bpb::CallState::Dialing) {
        return problem(
            StatusCode::PRECONDITION_FAILED,
            "failed_precondition",
            &format!("call {} is {:?}; dial-out is for leased or dialing calls", call.id, call.state()),
        );
    }
    let mut grants = serde_json::Map::new();
    grants.insert("sip".into(), json!({"call": true}));
    let token = match access_token(lk.key, lk.secret, "voxgate", grants, 60) {
        Ok(t) => t,
        Err(why) => return problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", &why),
    };
    let body = json!({
        "sip_trunk_id": trunk,
        "sip_call_to": call.to_number,
        "sip_number": call.from_number,
        "room_name": room_for(&call.id),
        "participant_identity": format!("sip-{}", call.id),
        "participant_name": call.to_number,
        "participant_metadata": json!({"vox_call_id": call.id}).to_string(),
        "ringing_timeout": format!("{}s", req.ringing_timeout.unwrap_or(30).clamp(5, 120)),
        "wait_until_answered": false,
    });
    let url = format!("{}/twirp/livekit.SIP/CreateSIPParticipant", lk.url);
    let sent =
        gate.http.post(&url).bearer_auth(token).json(&body).timeout(std::time::Duration::from_secs(10)).send().await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            return problem(
                StatusCode::BAD_GATEWAY,
                "livekit_unreachable",
                &format!("LiveKit did not answer at {url}: {e}"),
            );
        }
    };
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        // Twirp errors: {"code": "...", "msg": "...", "meta": {...}}; SIP failures carry their status.
        let msg = answer.get("msg").and_then(Value::as_str).unwrap_or("no message");
        let sip = answer
            .pointer("/meta/sip_status_code")
            .and_then(Value::as_str)
            .map(|c| format!(" (SIP {c})"))
            .unwrap_or_default();
        tracing::warn!(call_id = %call.id, %status, msg, "LiveKit refused the dial-out");
        return problem(StatusCode::BAD_GATEWAY, "livekit_refused", &format!("LiveKit refused the call: {msg}{sip}"));
    }
    let sip_call_id = answer.get("sip_call_id").and_then(Value::as_str).unwrap_or("");
    tracing::info!(call_id = %call.id, sip_call_id, "dialled through LiveKit");
    (StatusCode::OK, axum::Json(json!({"call_id": call.id, "livekit": answer}))).into_response()
}

/// Arbitrary webhook bodies and Authorization headers: never a panic, never accepted
/// without the secret, and the refusal says which check failed.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn clear(why: &str) -> bool {
        why.contains("webhook token") || why.contains("sha256")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_body_and_authorization_are_refused_clearly(
            body in prop::collection::vec(any::<u8>(), 0..256),
            authorization in prop_oneof![
                ".{0,120}",
                "Bearer [A-Za-z0-9_.=-]{0,120}",
                "[A-Za-z0-9_-]{1,40}\\.[A-Za-z0-9_-]{1,60}\\.[A-Za-z0-9_-]{0,43}",
            ],
        ) {
            match verify("key", "secret", &authorization, &body) {
                Ok(()) => prop_assert!(false, "accepted {authorization:?}"),
                Err(why) => prop_assert!(clear(&why), "unclear error {why:?}"),
            }
        }
    }
}
