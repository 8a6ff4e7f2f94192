//! Where integrations want the activity feed pushed: webhook endpoints, what each wants,
//! how it signs, and the record of every delivery attempt.
//!
//! The body of a delivery follows the Standard Webhooks payload shape:
//! `{"type": "<event type>", "timestamp": "<RFC 3339>", "data": {…}}` with the feed
//! event's id as `webhook-id` (the same on every retry, so a receiver drops duplicates).
//! Signing secrets are stored sealed with voxbridge's master key and bound to the
//! endpoint's id ([`SealedSecret`]); the plain secret is shown once, when made.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::feed::{self, FeedEvent, Subject};
use crate::{Error, Result};

/// Longest URL an endpoint may have.
pub const MAX_URL_LEN: usize = 2048;
/// How long a rotated-out secret keeps signing beside the new one (receivers switch).
pub const ROTATION_GRACE_HOURS: i64 = 24;
/// The queue deliveries run on.
pub const QUEUE: &str = "webhooks";

/// A signing secret as stored: sealed, and until when it signs (`None`: the current one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    pub sealed: String,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    /// Event types (or `call.*` / `campaign.*`) it wants; empty: every type.
    pub event_types: Vec<String>,
    /// Only this campaign's events.
    pub campaign_id: Option<String>,
    /// Newest first; the first has no expiry.
    pub secrets: Vec<SealedSecret>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookEndpoint {
    /// True when this endpoint wants `e`.
    pub fn wants(&self, e: &FeedEvent) -> bool {
        !self.disabled
            && feed::type_matches(&self.event_types, &e.kind)
            && self.campaign_id.as_ref().is_none_or(|c| e.campaign_id.as_ref() == Some(c))
    }

    /// The sealed secrets that still sign at `now`.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> impl Iterator<Item = &SealedSecret> {
        self.secrets.iter().filter(move |s| s.expires_at.is_none_or(|t| t > now))
    }
}

/// Checks an endpoint's URL: `https://` (or `http://` when `allow_insecure`, for local
/// tests), a host, no credentials in it, at most [`MAX_URL_LEN`].
pub fn check_url(field: &str, url: &str, allow_insecure: bool) -> Result<String> {
    let url = url.trim();
    if url.len() > MAX_URL_LEN {
        return Err(Error::invalid(field, format!("at most {MAX_URL_LEN} characters")));
    }
    let rest = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => rest,
        (None, Some(rest)) if allow_insecure => rest,
        (None, Some(_)) => {
            return Err(Error::invalid(
                field,
                "an https:// URL: events carry call data (voxbridge takes http:// only with \
                 --allow-insecure-webhook-urls, for local testing)",
            ));
        }
        _ => return Err(Error::invalid(field, "an https:// URL")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(Error::invalid(field, "a URL with a host"));
    }
    if authority.contains('@') {
        return Err(Error::invalid(field, "a URL without user:password@ (the signature authenticates Vox)"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(field, "a URL without spaces or control characters"));
    }
    Ok(url.to_string())
}

pub use feed::check_types as check_event_types;

/// How one delivery attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// The endpoint answered 2xx.
    Delivered,
    /// It failed; another attempt follows.
    Retrying,
    /// It failed for the last time: the delivery is in the dead letters.
    DeadLettered,
}

/// One attempt to deliver one event to one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    pub endpoint_id: String,
    pub event_id: u64,
    pub event_type: String,
    /// 1 for the first.
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// The endpoint's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why it failed (empty when delivered).
    pub error: String,
    pub duration_ms: u64,
    pub outcome: DeliveryOutcome,
}

/// What the queue carries for one delivery: which event to which endpoint, and the body
/// to send (fixed when enqueued, so every retry sends the same bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub endpoint_id: String,
    pub event_id: u64,
    pub event_type: String,
    pub body: String,
}

impl DeliveryJob {
    /// The queue's dedup id: an event is queued for an endpoint once, however often the
    /// dispatcher meets it (after a crash, or on two voxbridge instances).
    pub fn dedup_id(&self) -> String {
        format!("{}:{}", self.endpoint_id, self.event_id)
    }
}

/// The Standard Webhooks body of `e`: `{"type", "timestamp", "data"}`. `data` holds the
/// event id, its campaign, and the call (without its lease), the campaign's move or the
/// campaign's pacing figures.
pub fn payload(e: &FeedEvent) -> String {
    let subject = match &e.subject {
        Subject::Call { call, change } => {
            let duration = match (call.answered_at, call.ended_at) {
                (Some(a), Some(b)) => Some((b - a).num_milliseconds() as f64 / 1000.0),
                _ => None,
            };
            json!({
                "call": {
                    "id": call.id,
                    "campaign_id": call.campaign_id,
                    "direction": call.direction,
                    "channel": call.channel,
                    "to_number": call.to_number,
                    "from_number": call.from_number,
                    "state": call.state,
                    "attempt": call.attempt,
                    "end_reason": call.end_reason,
                    "answered_at": call.answered_at,
                    "ended_at": call.ended_at,
                    "duration_seconds": duration,
                    "recording": call.recording,
                },
                "change": change.as_ref().map(|c| json!({
                    "from_state": c.from_state, "to_state": c.to_state, "actor": c.actor, "reason": c.reason,
                })),
            })
        }
        Subject::Campaign { campaign_id, from, to, actor } => json!({
            "campaign": { "id": campaign_id, "from": from.as_str(), "to": to.as_str(), "actor": actor },
        }),
        Subject::Recording { analysis: a } => json!({
            "recording": {
                "call_id": a.call_id,
                "key": a.key,
                "duration_seconds": a.duration_ms as f64 / 1000.0,
                "caller_speech_seconds": a.caller_speech_ms as f64 / 1000.0,
                "agent_speech_seconds": a.agent_speech_ms as f64 / 1000.0,
                "silence_seconds": a.silence_ms as f64 / 1000.0,
            },
        }),
        Subject::Pacing { figures, dialler_id, .. } => json!({
            "pacing": {
                "mode": figures.mode,
                "dial_ratio": figures.dial_ratio,
                "answer_rate": figures.answer_rate,
                "aht_seconds": figures.aht_seconds,
                "ring_seconds": figures.ring_seconds,
                "abandon_rate": figures.abandon_rate,
                "abandon_target": figures.abandon_target,
                "abandon_credit": figures.abandon_credit,
                "active_dials": figures.active_dials,
                "calls_placed": figures.calls_placed,
                "calls_answered": figures.calls_answered,
                "calls_abandoned": figures.calls_abandoned,
                "dialler_id": dialler_id,
            },
        }),
    };
    let mut data = json!({ "id": e.id, "campaign_id": e.campaign_id });
    if let (Value::Object(d), Value::Object(s)) = (&mut data, subject) {
        d.extend(s);
    }
    json!({ "type": e.kind, "timestamp": e.at, "data": data }).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests stop on failure")]
    use super::*;

    #[test]
    fn urls_must_be_https_unless_allowed_and_carry_no_credentials() {
        assert_eq!(check_url("url", " https://crm.example.com/hook ", false).unwrap(), "https://crm.example.com/hook");
        assert!(check_url("url", "http://127.0.0.1:9/hook", false).unwrap_err().message.contains("https://"));
        assert!(check_url("url", "http://127.0.0.1:9/hook", true).is_ok());
        assert!(check_url("url", "https://u:p@crm.example.com/", false).unwrap_err().message.contains("user:password"));
        assert!(check_url("url", "ftp://x", true).is_err());
        assert!(check_url("url", "https:///nohost", false).is_err());
    }

    #[test]
    fn event_types_are_checked_by_position() {
        let e = check_event_types("event_types", &["call.ended".into(), "call.nope".into()]).unwrap_err();
        assert!(e.message.starts_with("event_types[1]:"), "{e}");
    }
}
