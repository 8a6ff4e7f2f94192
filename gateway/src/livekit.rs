//! `POST /livekit/dispatch`: LiveKit's webhook, which is how inbound SIP calls on a
//! LiveKit trunk reach Vox (the seeds' "missing webhook = a silent, cancelled room").
//!
//! The request is verified as LiveKit signs it: `Authorization` is a JWT (HS256) made
//! with the API secret, issued by the API key, whose `sha256` claim is the base64
//! SHA-256 of the raw body. A SIP participant joining a room creates the inbound call in
//! voxbridge (caller, called number and SIP call id from the participant's attributes);
//! the reply names the call, which a media bridge then attaches with `POST /attach`.
//! Other events are acknowledged and logged.

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
use crate::routes::problem;

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
        Err(s) => {
            let code = vox_domain::ErrorCode::from_grpc(s.code());
            let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
            problem(status, "inbound_refused", s.message())
        }
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
