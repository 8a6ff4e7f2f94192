//! LiveKit's SIP dial-out over Twirp: `POST /twirp/livekit.SIP/CreateSIPParticipant`,
//! authorised by a JWT (HS256 with the API secret, `iss` = the API key, a `sip` grant
//! with `call: true`), plus the two RoomService calls that hang a participant up
//! (`RemoveParticipant`, `DeleteRoom`, with a `video.roomAdmin` grant). Outcomes come
//! from the same model as Twilio calls; there is no room, so no media. Errors are
//! Twirp's: `{"code", "msg", "meta"}`, SIP failures with `meta.sip_status_code` and
//! `meta.sip_status`, mapped to codes as LiveKit maps them (486 and 480 →
//! `resource_exhausted`, 500 → `failed_precondition`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Sim;
use crate::calls::{Call, Hangup, LiveKitRequest, NewCall, Provider, Status};
use crate::lifecycle;

/// A Twirp error: `{"code", "msg", "meta"}` with the HTTP status of its code.
#[derive(Debug)]
pub struct TwirpError {
    code: &'static str,
    msg: String,
    meta: Option<Value>,
}

impl IntoResponse for TwirpError {
    fn into_response(self) -> Response {
        let status = http_status(self.code);
        let mut body = json!({"code": self.code, "msg": self.msg});
        if let Some(meta) = self.meta {
            body["meta"] = meta;
        }
        (status, axum::Json(body)).into_response()
    }
}

pub fn twirp(code: &'static str, msg: impl Into<String>, meta: Option<Value>) -> TwirpError {
    TwirpError { code, msg: msg.into(), meta }
}

fn http_status(code: &str) -> StatusCode {
    match code {
        "invalid_argument" | "malformed" | "out_of_range" => StatusCode::BAD_REQUEST,
        "unauthenticated" => StatusCode::UNAUTHORIZED,
        "permission_denied" => StatusCode::FORBIDDEN,
        "not_found" | "bad_route" => StatusCode::NOT_FOUND,
        "resource_exhausted" => StatusCode::TOO_MANY_REQUESTS,
        "failed_precondition" => StatusCode::PRECONDITION_FAILED,
        "aborted" | "already_exists" => StatusCode::CONFLICT,
        "deadline_exceeded" | "canceled" => StatusCode::REQUEST_TIMEOUT,
        "unimplemented" => StatusCode::NOT_IMPLEMENTED,
        "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The SIP failure LiveKit reports for an unanswered outcome.
fn sip_error(status: Status) -> TwirpError {
    let (code, sip, text) = match status {
        Status::Busy => ("resource_exhausted", 486, "Busy Here"),
        Status::NoAnswer => ("resource_exhausted", 480, "Temporarily Unavailable"),
        Status::Canceled => ("aborted", 487, "Request Terminated"),
        _ => ("failed_precondition", 500, "Internal Server Error"),
    };
    twirp(
        code,
        format!("sip status {sip}: {text}"),
        Some(json!({"sip_status_code": sip.to_string(), "sip_status": text})),
    )
}

#[derive(Debug, Default, Deserialize)]
struct SipGrant {
    /// Needed to create SIP participants; `admin` (trunks and rules) is not enough.
    #[serde(default)]
    call: bool,
}

#[derive(Debug, Default, Deserialize)]
struct VideoGrant {
    #[serde(default, rename = "roomAdmin")]
    room_admin: bool,
    #[serde(default)]
    room: String,
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sip: Option<SipGrant>,
    #[serde(default)]
    video: Option<VideoGrant>,
}

/// Verifies the bearer JWT: signature, issuer (the API key), `exp` and `nbf` (with
/// LiveKit's one minute of leeway).
fn claims(sim: &Sim, headers: &HeaderMap) -> Result<Claims, TwirpError> {
    let (Some(key), Some(secret)) = (&sim.args.livekit_api_key, &sim.args.livekit_api_secret) else {
        return Err(twirp(
            "bad_route",
            "the LiveKit API is off: start voxsim with --livekit-api-key and --livekit-api-secret",
            None,
        ));
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| twirp("unauthenticated", "no authorization header: Bearer <JWT> is required", None))?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[key.as_str()]);
    validation.validate_nbf = true;
    validation.leeway = 60;
    validation.set_required_spec_claims(&["exp", "iss"]);
    jsonwebtoken::decode::<Claims>(token.trim(), &DecodingKey::from_secret(secret.as_bytes()), &validation)
        .map(|d| d.claims)
        .map_err(|e| twirp("unauthenticated", format!("invalid authorization token: {e}"), None))
}

/// A protobuf Duration as JSON ("30s", "1.5s"), or plain seconds, as seconds.
fn seconds(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => s.trim().strip_suffix('s').unwrap_or(s.trim()).parse().ok(),
        Value::Number(n) => n.as_f64(),
        Value::Object(o) => {
            let secs = o.get("seconds").and_then(|s| s.as_f64().or_else(|| s.as_str()?.parse().ok()))?;
            Some(secs + o.get("nanos").and_then(Value::as_f64).unwrap_or(0.0) / 1e9)
        }
        _ => None,
    }
    .filter(|s: &f64| s.is_finite() && *s > 0.0)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CreateSipParticipant {
    #[serde(alias = "sipTrunkId")]
    sip_trunk_id: String,
    #[serde(alias = "sipCallTo")]
    sip_call_to: String,
    #[serde(alias = "sipNumber")]
    sip_number: String,
    #[serde(alias = "roomName")]
    room_name: String,
    #[serde(alias = "participantIdentity")]
    participant_identity: String,
    #[serde(alias = "participantMetadata")]
    participant_metadata: String,
    #[serde(alias = "participantAttributes")]
    participant_attributes: std::collections::HashMap<String, String>,
    #[serde(alias = "waitUntilAnswered")]
    wait_until_answered: bool,
    #[serde(alias = "ringingTimeout")]
    ringing_timeout: Option<Value>,
    #[serde(alias = "maxCallDuration")]
    max_call_duration: Option<Value>,
}

fn livekit_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..12).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect();
    format!("{prefix}{tail}")
}

/// The Vox call id, when the participant carries one: metadata JSON `call_id` /
/// `vox_call_id`, or the `call_id` / `vox.call_id` attribute.
fn vox_call_id(req: &CreateSipParticipant) -> Option<String> {
    let meta: Option<Value> = serde_json::from_str(&req.participant_metadata).ok();
    let from_meta = meta.and_then(|m| {
        ["call_id", "vox_call_id"].iter().find_map(|k| m.get(*k).and_then(Value::as_str).map(String::from))
    });
    from_meta
        .or_else(|| req.participant_attributes.get("call_id").cloned())
        .or_else(|| req.participant_attributes.get("vox.call_id").cloned())
        .filter(|s| !s.is_empty())
}

fn info(call: &Call) -> Value {
    let lk = call.livekit.as_ref();
    json!({
        "participant_id": lk.map(|l| l.participant_id.as_str()),
        "participant_identity": lk.map(|l| l.participant_identity.as_str()),
        "room_name": lk.map(|l| l.room_name.as_str()),
        "sip_call_id": lk.map(|l| l.sip_call_id.as_str()),
    })
}

/// `POST /twirp/livekit.SIP/CreateSIPParticipant`
pub async fn create_sip_participant(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match create(&sim, &headers, &body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn create(sim: &Arc<Sim>, headers: &HeaderMap, body: &[u8]) -> Result<Response, Response> {
    let claims = claims(sim, headers).map_err(IntoResponse::into_response)?;
    if !claims.sip.as_ref().is_some_and(|g| g.call) {
        return Err(
            twirp("unauthenticated", "permissions denied: the token needs the sip.call grant", None).into_response()
        );
    }
    if let Some(fault) = sim.take_fault() {
        if fault.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
        }
        if let Some(status) = fault.status {
            let code = match status.as_u16() {
                400 => "invalid_argument",
                401 => "unauthenticated",
                404 => "not_found",
                429 => "resource_exhausted",
                503 => "unavailable",
                _ => "internal",
            };
            let mut resp = twirp(code, "simulated fault (POST /sim/faults)", None).into_response();
            *resp.status_mut() = status;
            return Err(resp);
        }
    }
    let req: CreateSipParticipant = serde_json::from_slice(body).map_err(|e| {
        twirp("malformed", format!("the body is not a CreateSIPParticipantRequest: {e}"), None).into_response()
    })?;
    for (value, what) in
        [(&req.sip_trunk_id, "sip_trunk_id"), (&req.sip_call_to, "sip_call_to"), (&req.room_name, "room_name")]
    {
        if value.trim().is_empty() {
            return Err(twirp("invalid_argument", format!("missing {what}"), None).into_response());
        }
    }
    let index = sim.next_index();
    let draw = sim.args.model.draw(index, req.ringing_timeout.as_ref().and_then(seconds));
    let identity = if req.participant_identity.is_empty() {
        format!("sip_{}", req.sip_call_to)
    } else {
        req.participant_identity.clone()
    };
    let sip_call_id = livekit_id("SCL_");
    let call = Arc::new(Call::new(NewCall {
        sid: sip_call_id.clone(),
        account_sid: sim.args.account_sid.clone(),
        provider: Provider::Livekit,
        to: req.sip_call_to.clone(),
        from: req.sip_number.clone(),
        index,
        draw,
        twilio: None,
        livekit: Some(LiveKitRequest {
            sip_trunk_id: req.sip_trunk_id.clone(),
            room_name: req.room_name.clone(),
            participant_identity: identity,
            participant_id: livekit_id("PA_"),
            sip_call_id,
        }),
        call_id: vox_call_id(&req),
        callbacks: None,
    }));
    sim.insert(Arc::clone(&call));
    tracing::info!(sid = %call.sid, index, outcome = draw.outcome.as_str(), room = %req.room_name, "livekit sip participant created");
    let max = req.max_call_duration.as_ref().and_then(seconds);
    tokio::spawn(lifecycle::livekit(Arc::clone(sim), Arc::clone(&call), max));
    if req.wait_until_answered {
        let mut rx = call.watch_status();
        let settled = rx.wait_for(|s| *s == Status::InProgress || s.is_final()).await.map(|s| *s);
        match settled {
            Ok(Status::InProgress) => {}
            Ok(Status::Completed) => {}
            Ok(other) => return Err(sip_error(other).into_response()),
            Err(_) => return Err(twirp("internal", "the call vanished", None).into_response()),
        }
    }
    Ok(axum::Json(info(&call)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RoomParticipant {
    room: String,
    identity: String,
}

/// Hangs up the live LiveKit calls in `room` (with `identity`, when given).
fn hang_up_in_room(sim: &Sim, headers: &HeaderMap, body: &[u8], by_identity: bool) -> Response {
    let claims = match claims(sim, headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let req: RoomParticipant = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return twirp("malformed", format!("the body is not a request: {e}"), None).into_response(),
    };
    let allowed = claims.video.as_ref().is_some_and(|v| v.room_admin && (v.room.is_empty() || v.room == req.room));
    if !allowed {
        return twirp("unauthenticated", "permissions denied: the token needs video.roomAdmin for this room", None)
            .into_response();
    }
    if req.room.is_empty() || (by_identity && req.identity.is_empty()) {
        return twirp("invalid_argument", "missing room or identity", None).into_response();
    }
    let mut found = 0;
    for call in sim.all() {
        let Some(lk) = &call.livekit else { continue };
        if lk.room_name == req.room
            && (!by_identity || lk.participant_identity == req.identity)
            && call.request_hangup(Hangup::Any)
        {
            found += 1;
        }
    }
    if by_identity && found == 0 {
        return twirp("not_found", "participant not found", None).into_response();
    }
    axum::Json(json!({})).into_response()
}

/// `POST /twirp/livekit.RoomService/RemoveParticipant` {room, identity}
pub async fn remove_participant(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    hang_up_in_room(&sim, &headers, &body, true)
}

/// `POST /twirp/livekit.RoomService/DeleteRoom` {room}
pub async fn delete_room(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    hang_up_in_room(&sim, &headers, &body, false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_in_protobuf_json() {
        assert_eq!(seconds(&json!("30s")), Some(30.0));
        assert_eq!(seconds(&json!("1.5s")), Some(1.5));
        assert_eq!(seconds(&json!(12)), Some(12.0));
        assert_eq!(seconds(&json!({"seconds": "20", "nanos": 500_000_000})), Some(20.5));
        assert_eq!(seconds(&json!("0s")), None);
        assert_eq!(seconds(&json!("soon")), None);
    }

    #[test]
    fn finds_the_vox_call_id() {
        let req =
            CreateSipParticipant { participant_metadata: r#"{"vox_call_id":"ca_9"}"#.into(), ..Default::default() };
        assert_eq!(vox_call_id(&req).as_deref(), Some("ca_9"));
        let mut req = CreateSipParticipant::default();
        req.participant_attributes.insert("call_id".into(), "ca_8".into());
        assert_eq!(vox_call_id(&req).as_deref(), Some("ca_8"));
        assert_eq!(vox_call_id(&CreateSipParticipant::default()), None);
        assert!(livekit_id("SCL_").starts_with("SCL_") && livekit_id("PA_").len() == 15);
    }
}
