//! LiveKit's SIP API: `CreateSIPParticipant` dials a number through an outbound SIP
//! trunk into a room, as the seeds' dialler hosts do.
//!
//! Twirp over HTTP: `POST {LIVEKIT_URL}/twirp/livekit.SIP/CreateSIPParticipant` with a
//! JSON body and `Authorization: Bearer <access token>`: an HS256 JWT signed with the API
//! secret, issued by the API key, with the `sip.call` grant. The request waits until the
//! callee answers (`wait_until_answered`), so the reply is the outcome: 200 with the
//! participant when answered, a Twirp error carrying the SIP status otherwise (486 busy,
//! 480/408 no answer).
//!
//! Not carried yet: the room's audio. On answer the dialler attaches the call through
//! voxgate's `POST /attach` like the seeds' hosts, but no LiveKit media bridge joins the
//! room to stream it to the worker (see the README's known gaps).

use std::time::Duration;

use serde::Serialize;

use super::{Dial, Outcome, PlaceError, Placed, Provider, request_error};

#[derive(Clone)]
pub struct LiveKit {
    http: reqwest::Client,
    url: String,
    api_key: String,
    api_secret: String,
    trunk_id: String,
}

impl std::fmt::Debug for LiveKit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKit").field("url", &self.url).field("trunk_id", &self.trunk_id).finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize)]
struct SipGrant {
    call: bool,
    admin: bool,
}

#[derive(Debug, Serialize)]
struct Claims {
    iss: String,
    sub: String,
    nbf: i64,
    exp: i64,
    sip: SipGrant,
}

impl LiveKit {
    /// `ring_timeout_max` bounds how long a create request may wait for an answer.
    pub fn new(
        url: &str,
        api_key: &str,
        api_secret: &str,
        trunk_id: &str,
        ring_timeout_max: Duration,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(ring_timeout_max + Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()?;
        Ok(LiveKit {
            http,
            url: url.trim_end_matches('/').replacen("wss://", "https://", 1).replacen("ws://", "http://", 1),
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            trunk_id: trunk_id.into(),
        })
    }

    /// A short-lived access token with the SIP call grant.
    pub fn token(&self) -> Result<String, String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: self.api_key.clone(),
            sub: "voxdialler".into(),
            nbf: now - 5,
            exp: now + 600,
            sip: SipGrant { call: true, admin: false },
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.api_secret.as_bytes()),
        )
        .map_err(|e| e.to_string())
    }

    pub fn request_body(&self, dial: &Dial) -> serde_json::Value {
        serde_json::json!({
            "sip_trunk_id": self.trunk_id,
            "sip_call_to": dial.to,
            "sip_number": dial.from,
            "room_name": format!("vox-{}", dial.call_id),
            "participant_identity": format!("callee-{}", dial.call_id),
            "participant_name": dial.to,
            "participant_metadata": serde_json::json!({"call_id": dial.call_id}).to_string(),
            "wait_until_answered": true,
            "ringing_timeout": format!("{}s", dial.ring_timeout_seconds),
        })
    }
}

/// A Twirp error's SIP status, when it carries one.
fn sip_status(err: &serde_json::Value) -> Option<u16> {
    let meta = err.get("meta")?;
    let v = meta.get("sip_status_code").or_else(|| meta.get("sip_status"))?;
    v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_u64().and_then(|n| u16::try_from(n).ok()))
}

#[tonic::async_trait]
impl Provider for LiveKit {
    fn name(&self) -> &'static str {
        "livekit"
    }

    async fn place(&self, dial: &Dial) -> Result<Placed, PlaceError> {
        let token = self.token().map_err(|e| PlaceError::Refused { status: 0, message: e, retryable: false })?;
        let resp = self
            .http
            .post(format!("{}/twirp/livekit.SIP/CreateSIPParticipant", self.url))
            .bearer_auth(token)
            .json(&self.request_body(dial))
            .send()
            .await
            .map_err(|e| request_error(&e))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        if status.is_success() {
            let id = body
                .get("sip_call_id")
                .or_else(|| body.get("participant_id"))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            return Ok(Placed { provider_call_id: id, outcome: Some(Outcome::Answered) });
        }
        let msg = body.get("msg").and_then(|m| m.as_str()).unwrap_or("").to_string();
        let code = body.get("code").and_then(|m| m.as_str()).unwrap_or("").to_string();
        // The call was placed and ended without an answer: the SIP status says how.
        if let Some(sip) = sip_status(&body) {
            let outcome = match sip {
                486 | 600 => Outcome::Busy,
                408 | 480 | 487 => Outcome::NoAnswer,
                _ => Outcome::Failed(format!("sip {sip}: {msg}")),
            };
            return Ok(Placed { provider_call_id: String::new(), outcome: Some(outcome) });
        }
        let retryable = status.is_server_error() || status.as_u16() == 429 || code == "unavailable";
        Err(PlaceError::Refused { status: status.as_u16(), message: format!("{code}: {msg}"), retryable })
    }

    async fn hang_up(&self, _provider_call_id: &str) -> Result<(), String> {
        // The SIP participant leaves with its room; rooms are closed by their owner.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_the_sip_call_grant_and_verify_with_the_secret() {
        let lk =
            LiveKit::new("wss://lk.example.com", "APIkey", "secret-secret-secret", "ST_1", Duration::from_secs(30))
                .unwrap();
        assert_eq!(lk.url, "https://lk.example.com");
        let token = lk.token().unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.set_issuer(&["APIkey"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"secret-secret-secret"),
            &v,
        )
        .unwrap();
        assert_eq!(data.claims["sip"]["call"], true);
    }

    #[test]
    fn sip_statuses_are_read_from_twirp_meta() {
        let e = serde_json::json!({"code":"unavailable","msg":"busy","meta":{"sip_status_code":"486"}});
        assert_eq!(sip_status(&e), Some(486));
        assert_eq!(sip_status(&serde_json::json!({"code":"internal"})), None);
    }
}

/// Any Twirp error body: the SIP status is read or absent, never a panic.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_twirp_meta_reads_a_status_or_none(
            code in prop_oneof![
                Just(Value::Null),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>().prop_map(|f| json!(f)),
                ".{0,8}".prop_map(Value::from),
            ],
            key in prop_oneof![Just("sip_status_code"), Just("sip_status"), Just("other")],
        ) {
            let _ = sip_status(&json!({"meta": {key: code.clone()}}));
            let _ = sip_status(&code);
        }
    }
}
