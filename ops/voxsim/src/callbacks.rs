//! Requests voxsim makes to the application, signed as Twilio signs them: status
//! callbacks (in order, one queue per call, retried on connection errors and 5xx) and
//! the voice webhook fetched on answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use tokio::sync::mpsc;

/// Twilio's request signature: base64(HMAC-SHA1(auth token, URL + the POST parameters
/// sorted by name, each name followed by its value)). The same function as voxgate's
/// `media::twilio::signature`; for a GET or a WebSocket, `params` is empty and the URL
/// carries everything.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) else { return String::new() };
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Twilio's `Timestamp` format (RFC 2822, UTC).
pub fn rfc2822(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

/// Sends `params` to `url` the way Twilio does: POST as a form, or GET with the
/// parameters appended to the query; `X-Twilio-Signature` over what was sent.
pub async fn send_signed(
    http: &reqwest::Client,
    auth_token: &str,
    method: &str,
    url: &str,
    params: &[(String, String)],
    timeout: Duration,
) -> reqwest::Result<reqwest::Response> {
    let req = if method.eq_ignore_ascii_case("GET") {
        let query = serde_urlencoded::to_string(params).unwrap_or_default();
        let full = if query.is_empty() {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&{query}")
        } else {
            format!("{url}?{query}")
        };
        let sig = signature(auth_token, &full, &[]);
        http.get(full).header("X-Twilio-Signature", sig)
    } else {
        let body = serde_urlencoded::to_string(params).unwrap_or_default();
        http.post(url)
            .header("X-Twilio-Signature", signature(auth_token, url, params))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
    };
    req.header(reqwest::header::USER_AGENT, "TwilioProxy/1.1 (voxsim)").timeout(timeout).send().await
}

/// One status change to report.
#[derive(Debug, Clone)]
pub struct Event {
    /// Twilio's `CallStatus`: initiated, ringing, in-progress, completed, busy, …
    pub call_status: &'static str,
    pub at: DateTime<Utc>,
    /// `CallDuration`, on final statuses.
    pub duration: Option<u64>,
    /// `AnsweredBy`, when machine detection was asked for and the call was answered.
    pub answered_by: Option<&'static str>,
}

/// Where one call's status callbacks go, and what every one of them carries.
#[derive(Debug, Clone)]
pub struct Target {
    pub http: reqwest::Client,
    pub auth_token: String,
    pub url: String,
    pub method: String,
    pub call_sid: String,
    pub account_sid: String,
    pub from: String,
    pub to: String,
}

/// One call's status callbacks, sent one after another in the order they happened.
/// Dropping the queue lets the sender finish what is queued and stop.
#[derive(Debug)]
pub struct Queue {
    tx: mpsc::UnboundedSender<Event>,
    pending: Arc<AtomicUsize>,
}

/// Pauses before the retries of a callback that failed.
const RETRY_DELAYS_MS: [u64; 4] = [200, 500, 1000, 2000];

impl Queue {
    /// Starts the sender task. `pending` counts callbacks not yet delivered (or given
    /// up), across calls, so shutdown can wait for them.
    pub fn start(target: Target, pending: Arc<AtomicUsize>) -> Queue {
        let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
        let counter = Arc::clone(&pending);
        tokio::spawn(async move {
            let mut sequence = 0u64;
            while let Some(event) = rx.recv().await {
                deliver(&target, &event, sequence).await;
                sequence += 1;
                counter.fetch_sub(1, Ordering::SeqCst);
            }
        });
        Queue { tx, pending }
    }

    pub fn push(&self, event: Event) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(event).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The form parameters of one callback, with Twilio's names.
pub fn callback_params(target: &Target, event: &Event, sequence: u64) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        ("CallSid", target.call_sid.as_str()),
        ("AccountSid", target.account_sid.as_str()),
        ("From", target.from.as_str()),
        ("To", target.to.as_str()),
        ("Direction", "outbound-api"),
        ("ApiVersion", "2010-04-01"),
        ("CallStatus", event.call_status),
        ("CallbackSource", "call-progress-events"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    params.push(("SequenceNumber".into(), sequence.to_string()));
    params.push(("Timestamp".into(), rfc2822(event.at)));
    if let Some(d) = event.duration {
        params.push(("CallDuration".into(), d.to_string()));
    }
    if let Some(who) = event.answered_by {
        params.push(("AnsweredBy".into(), who.to_string()));
    }
    params
}

async fn deliver(target: &Target, event: &Event, sequence: u64) {
    let params = callback_params(target, event, sequence);
    let sid = target.call_sid.as_str();
    for attempt in 0..=RETRY_DELAYS_MS.len() {
        let sent = send_signed(
            &target.http,
            &target.auth_token,
            &target.method,
            &target.url,
            &params,
            Duration::from_secs(10),
        )
        .await;
        let why = match sent {
            Ok(r) if r.status().is_server_error() => format!("status {}", r.status()),
            Ok(r) => {
                if !r.status().is_success() {
                    tracing::warn!(sid, status = event.call_status, http_status = %r.status(), url = %target.url, "status callback refused; not retried");
                }
                return;
            }
            Err(e) => format!("{e}"),
        };
        let Some(delay) = RETRY_DELAYS_MS.get(attempt) else {
            tracing::error!(sid, status = event.call_status, url = %target.url, error = %why, "status callback failed; giving up");
            return;
        };
        tracing::warn!(sid, status = event.call_status, url = %target.url, error = %why, attempt, "status callback failed; retrying");
        tokio::time::sleep(Duration::from_millis(*delay)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_twilios_example() {
        // Twilio's documented example (auth token 12345), also checked by voxgate.
        let params = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(
            signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn timestamps_look_like_twilios() {
        let t = DateTime::from_timestamp(1_281_930_301, 0).unwrap_or_default();
        assert_eq!(rfc2822(t), "Mon, 16 Aug 2010 03:45:01 +0000");
    }
}
