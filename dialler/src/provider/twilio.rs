//! Twilio's REST API for outbound calls (and voxsim's copy of it).
//!
//! `POST /2010-04-01/Accounts/{AccountSid}/Calls.json` with the callee, the caller id,
//! the voice webhook voxgate answers on pickup (`/twilio/outbound/answer?call_id=…`),
//! status callbacks for every event (`/twilio/status?call_id=…`), the ring timeout and,
//! when enabled, answering-machine detection. Hang-up is `Status=completed` on the call
//! resource. HTTP Basic auth with the account SID and auth token.

use std::time::Duration;

use super::{Dial, PlaceError, Placed, Provider, request_error};

/// The account and endpoints one dialler uses.
#[derive(Clone)]
pub struct Twilio {
    http: reqwest::Client,
    name: &'static str,
    api_base: String,
    account_sid: String,
    auth_token: String,
    /// voxgate's public base URL (where the carrier calls back).
    gateway_url: String,
    machine_detection: bool,
}

impl std::fmt::Debug for Twilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Twilio")
            .field("api_base", &self.api_base)
            .field("account_sid", &self.account_sid)
            .field("gateway_url", &self.gateway_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct TwilioSettings {
    pub name: &'static str,
    pub api_base: String,
    pub account_sid: String,
    pub auth_token: String,
    pub gateway_url: String,
    pub machine_detection: bool,
    /// How long to wait for the create request's answer.
    pub timeout: Duration,
}

impl Twilio {
    pub fn new(s: TwilioSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(s.timeout).connect_timeout(Duration::from_secs(3)).build()?;
        Ok(Twilio {
            http,
            name: s.name,
            api_base: s.api_base.trim_end_matches('/').to_string(),
            account_sid: s.account_sid,
            auth_token: s.auth_token,
            gateway_url: s.gateway_url.trim_end_matches('/').to_string(),
            machine_detection: s.machine_detection,
        })
    }

    fn calls_url(&self) -> String {
        format!("{}/2010-04-01/Accounts/{}/Calls", self.api_base, self.account_sid)
    }

    /// The form fields of a create request.
    pub fn create_form(&self, dial: &Dial) -> Vec<(&'static str, String)> {
        let q = serde_urlencoded::to_string([("call_id", dial.call_id.as_str())]).unwrap_or_default();
        let mut form = vec![
            ("To", dial.to.clone()),
            ("From", dial.from.clone()),
            ("Url", format!("{}/twilio/outbound/answer?{q}", self.gateway_url)),
            ("Method", "POST".into()),
            ("StatusCallback", format!("{}/twilio/status?{q}", self.gateway_url)),
            ("StatusCallbackMethod", "POST".into()),
            ("Timeout", dial.ring_timeout_seconds.to_string()),
        ];
        for event in ["initiated", "ringing", "answered", "completed"] {
            form.push(("StatusCallbackEvent", event.into()));
        }
        if self.machine_detection {
            form.push(("MachineDetection", "Enable".into()));
        }
        form
    }
}

/// A Twilio error body's message, or the raw body.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let msg = v.get("message")?.as_str()?.to_string();
            Some(match v.get("code").and_then(|c| c.as_u64()) {
                Some(code) => format!("{msg} (code {code})"),
                None => msg,
            })
        })
        .unwrap_or_else(|| body.chars().take(300).collect())
}

#[tonic::async_trait]
impl Provider for Twilio {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn place(&self, dial: &Dial) -> Result<Placed, PlaceError> {
        let resp = self
            .http
            .post(format!("{}.json", self.calls_url()))
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&self.create_form(dial))
            .send()
            .await
            .map_err(|e| request_error(&e))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| PlaceError::Unknown(e.to_string()))?;
        if !status.is_success() {
            let code = status.as_u16();
            return Err(PlaceError::Refused {
                status: code,
                message: error_message(&body),
                retryable: code == 429 || status.is_server_error(),
            });
        }
        let sid = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("sid").and_then(|s| s.as_str()).map(str::to_string))
            .ok_or_else(|| PlaceError::Unknown(format!("the create reply has no call sid: {body:.200}")))?;
        Ok(Placed { provider_call_id: sid, outcome: None })
    }

    async fn hang_up(&self, provider_call_id: &str) -> Result<(), String> {
        let resp = self
            .http
            .post(format!("{}/{provider_call_id}.json", self.calls_url()))
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&[("Status", "completed")])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            let status = resp.status();
            Err(format!("{status}: {}", error_message(&resp.text().await.unwrap_or_default())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_requests_carry_the_call_id_in_both_urls() {
        let t = Twilio::new(TwilioSettings {
            name: "twilio",
            api_base: "https://api.twilio.com/".into(),
            account_sid: "AC1".into(),
            auth_token: "tok".into(),
            gateway_url: "https://gw.example.com/".into(),
            machine_detection: true,
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        let dial = Dial {
            call_id: "ca_1".into(),
            to: "+15551230001".into(),
            from: "+15550000000".into(),
            ring_timeout_seconds: 25,
        };
        let form = t.create_form(&dial);
        let get = |k: &str| form.iter().filter(|(n, _)| *n == k).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
        assert_eq!(get("Url"), ["https://gw.example.com/twilio/outbound/answer?call_id=ca_1"]);
        assert_eq!(get("StatusCallback"), ["https://gw.example.com/twilio/status?call_id=ca_1"]);
        assert_eq!(get("StatusCallbackEvent"), ["initiated", "ringing", "answered", "completed"]);
        assert_eq!(get("MachineDetection"), ["Enable"]);
        assert_eq!(get("Timeout"), ["25"]);
        assert_eq!(t.calls_url(), "https://api.twilio.com/2010-04-01/Accounts/AC1/Calls");
    }

    #[test]
    fn error_bodies_become_readable_messages() {
        assert_eq!(
            error_message(
                r#"{"code":21211,"message":"The 'To' number 123 is not a valid phone number.","status":400}"#
            ),
            "The 'To' number 123 is not a valid phone number. (code 21211)"
        );
        assert_eq!(error_message("upstream down"), "upstream down");
    }
}

/// Any error body Twilio (or whatever answers in its place) sends becomes a bounded
/// call-record reason without a panic.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_error_body_gives_a_bounded_reason(
            body in prop_oneof![
                ".{0,700}",
                (".{0,700}", any::<Option<u64>>())
                    .prop_map(|(m, c)| serde_json::json!({"message": m, "code": c}).to_string()),
            ],
            status in any::<u16>(),
        ) {
            let message = error_message(&body);
            let reason = PlaceError::Refused { status, message, retryable: false }.reason();
            prop_assert!(reason.len() <= 480);
            prop_assert!(reason.starts_with("provider_refused: "));
        }
    }
}
