//! The simulator's record of one call, Twilio or LiveKit: what it asked for, what the
//! model drew, where it is now, and the two signals its lifecycle task listens to (a
//! hang-up request) and publishes (its status).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio::sync::watch;

use crate::callbacks;
use crate::model::Draw;

/// A call's status, with Twilio's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Queued,
    Ringing,
    InProgress,
    Completed,
    Busy,
    Failed,
    NoAnswer,
    Canceled,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Queued,
        Status::Ringing,
        Status::InProgress,
        Status::Completed,
        Status::Busy,
        Status::Failed,
        Status::NoAnswer,
        Status::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Ringing => "ringing",
            Status::InProgress => "in-progress",
            Status::Completed => "completed",
            Status::Busy => "busy",
            Status::Failed => "failed",
            Status::NoAnswer => "no-answer",
            Status::Canceled => "canceled",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, Status::Queued | Status::Ringing | Status::InProgress)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Twilio,
    Livekit,
}

/// A request to end a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hangup {
    /// Twilio's `Status=completed` (and shutdown): end the call whatever its state.
    Any,
    /// Twilio's `Status=canceled`: end a call that is not answered yet.
    IfUnanswered,
}

/// Which status callbacks a Twilio call asked for (`StatusCallbackEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Events {
    pub initiated: bool,
    pub ringing: bool,
    pub answered: bool,
    pub completed: bool,
}

/// What a Twilio create request asked for.
#[derive(Debug, Clone)]
pub struct TwilioRequest {
    /// The voice webhook fetched on answer (absent when `Twiml` was given inline).
    pub url: Option<String>,
    pub method: String,
    pub twiml: Option<String>,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    pub events: Events,
    pub machine_detection: bool,
}

/// What a LiveKit CreateSIPParticipant request asked for, and the ids it was given.
#[derive(Debug, Clone, Serialize)]
pub struct LiveKitRequest {
    pub sip_trunk_id: String,
    pub room_name: String,
    pub participant_identity: String,
    pub participant_id: String,
    pub sip_call_id: String,
}

#[derive(Debug, Default)]
struct State {
    call_id: Option<String>,
    answered_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    answered_by: Option<&'static str>,
    end_reason: Option<String>,
    stream_sid: Option<String>,
    /// Status callbacks still to be sent; dropped when the call ends.
    callbacks: Option<callbacks::Queue>,
}

#[derive(Debug)]
pub struct Call {
    pub sid: String,
    pub account_sid: String,
    pub provider: Provider,
    pub to: String,
    pub from: String,
    /// The call counter: the model's RNG is seeded by (seed, index).
    pub index: u64,
    pub draw: Draw,
    pub created_at: DateTime<Utc>,
    pub twilio: Option<TwilioRequest>,
    pub livekit: Option<LiveKitRequest>,
    state: Mutex<State>,
    status: watch::Sender<Status>,
    hangup: watch::Sender<Option<Hangup>>,
    pub frames_sent: AtomicU64,
    pub frames_received: AtomicU64,
}

/// Resolves when a hang-up is requested: any kind, or with `answered` only
/// [`Hangup::Any`] (a cancel no longer applies to an answered call).
pub async fn hung_up(rx: &mut watch::Receiver<Option<Hangup>>, answered: bool) {
    let _ = rx.wait_for(|h| if answered { *h == Some(Hangup::Any) } else { h.is_some() }).await;
}

/// One call as `GET /sim/calls` shows it.
#[derive(Debug, Serialize)]
pub struct CallView {
    pub sid: String,
    pub provider: Provider,
    pub index: u64,
    pub to: String,
    pub from: String,
    pub call_id: Option<String>,
    pub outcome: &'static str,
    pub status: Status,
    pub answered_by: Option<&'static str>,
    pub end_reason: Option<String>,
    pub created_at: String,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration: Option<u64>,
    pub stream_sid: Option<String>,
    pub media_frames_sent: u64,
    pub media_frames_received: u64,
    pub model: Draw,
    pub livekit: Option<LiveKitRequest>,
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The `call_id` query parameter of a URL, if it has one.
pub fn call_id_in_url(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, v)| k == "call_id" && !v.is_empty())
        .map(|(_, v)| v)
}

pub struct NewCall {
    pub sid: String,
    pub account_sid: String,
    pub provider: Provider,
    pub to: String,
    pub from: String,
    pub index: u64,
    pub draw: Draw,
    pub twilio: Option<TwilioRequest>,
    pub livekit: Option<LiveKitRequest>,
    pub call_id: Option<String>,
    pub callbacks: Option<callbacks::Queue>,
}

impl Call {
    pub fn new(n: NewCall) -> Self {
        Call {
            sid: n.sid,
            account_sid: n.account_sid,
            provider: n.provider,
            to: n.to,
            from: n.from,
            index: n.index,
            draw: n.draw,
            created_at: Utc::now(),
            twilio: n.twilio,
            livekit: n.livekit,
            state: Mutex::new(State { call_id: n.call_id, callbacks: n.callbacks, ..State::default() }),
            status: watch::channel(Status::Queued).0,
            hangup: watch::channel(None).0,
            frames_sent: AtomicU64::new(0),
            frames_received: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    pub fn watch_hangup(&self) -> watch::Receiver<Option<Hangup>> {
        self.hangup.subscribe()
    }

    /// Asks the lifecycle to end the call. False when the request cannot apply: the call
    /// has ended, or it is answered and only an unanswered call may be canceled.
    pub fn request_hangup(&self, kind: Hangup) -> bool {
        let status = self.status();
        if status.is_final() || (kind == Hangup::IfUnanswered && status == Status::InProgress) {
            return false;
        }
        self.hangup.send_modify(|h| {
            if *h != Some(Hangup::Any) {
                *h = Some(kind);
            }
        });
        true
    }

    pub fn call_id(&self) -> Option<String> {
        self.state().call_id.clone()
    }

    pub fn answered_by(&self) -> Option<&'static str> {
        self.state().answered_by
    }

    pub fn set_answered_by(&self, who: &'static str) {
        self.state().answered_by = Some(who);
    }

    pub fn set_call_id_if_unknown(&self, call_id: &str) {
        let mut s = self.state();
        if s.call_id.is_none() && !call_id.is_empty() {
            s.call_id = Some(call_id.to_string());
        }
    }

    pub fn set_stream_sid(&self, sid: &str) {
        self.state().stream_sid = Some(sid.to_string());
    }

    /// Whole seconds from answer to end (0 for a call never answered); None while live.
    pub fn duration(&self) -> Option<u64> {
        let s = self.state();
        let ended = s.ended_at?;
        Some(s.answered_at.map_or(0, |a| ((ended - a).num_milliseconds().max(0) as u64 + 500) / 1000))
    }

    pub fn answered_at(&self) -> Option<DateTime<Utc>> {
        self.state().answered_at
    }

    pub fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.state().ended_at
    }

    /// Sends the `initiated` status callback, if asked for.
    pub fn initiated(&self) {
        let s = self.state();
        if let (Some(q), Some(t)) = (&s.callbacks, &self.twilio)
            && t.events.initiated
        {
            q.push(callbacks::Event { call_status: "initiated", at: Utc::now(), duration: None, answered_by: None });
        }
    }

    /// Moves the call to `status` (once: a final status is never left), stamps the
    /// time, sends the status callback if asked for, and wakes whoever waits on it.
    /// `reason` says why a call ended, for the log and `/sim/calls`.
    pub fn set_status(&self, status: Status, reason: Option<&str>) -> bool {
        let now = Utc::now();
        let mut s = self.state();
        let current = self.status();
        if current.is_final() || current == status {
            return false;
        }
        match status {
            Status::InProgress => s.answered_at = Some(now),
            st if st.is_final() => {
                s.ended_at = Some(now);
                s.end_reason = reason.map(String::from);
            }
            _ => {}
        }
        if let Some(t) = &self.twilio {
            let wanted = match status {
                Status::Queued => false,
                Status::Ringing => t.events.ringing,
                Status::InProgress => t.events.answered,
                _ => t.events.completed,
            };
            let duration = s
                .ended_at
                .map(|end| s.answered_at.map_or(0, |a| ((end - a).num_milliseconds().max(0) as u64 + 500) / 1000));
            if wanted && let Some(q) = &s.callbacks {
                q.push(callbacks::Event {
                    call_status: status.as_str(),
                    at: now,
                    duration,
                    answered_by: if t.machine_detection { s.answered_by } else { None },
                });
            }
        }
        if status.is_final() {
            // Closing the queue lets its sender finish once the last callback is out.
            s.callbacks = None;
        }
        drop(s);
        self.status.send_replace(status);
        match reason {
            Some(reason) if status.is_final() => {
                tracing::info!(sid = %self.sid, status = status.as_str(), reason, "call ended")
            }
            _ => tracing::debug!(sid = %self.sid, status = status.as_str(), "call status"),
        }
        true
    }

    pub fn view(&self) -> CallView {
        let duration = self.duration();
        let s = self.state();
        CallView {
            sid: self.sid.clone(),
            provider: self.provider,
            index: self.index,
            to: self.to.clone(),
            from: self.from.clone(),
            call_id: s.call_id.clone(),
            outcome: self.draw.outcome.as_str(),
            status: self.status(),
            answered_by: s.answered_by,
            end_reason: s.end_reason.clone(),
            created_at: rfc3339(self.created_at),
            answered_at: s.answered_at.map(rfc3339),
            ended_at: s.ended_at.map(rfc3339),
            duration,
            stream_sid: s.stream_sid.clone(),
            media_frames_sent: self.frames_sent.load(Ordering::Relaxed),
            media_frames_received: self.frames_received.load(Ordering::Relaxed),
            model: self.draw,
            livekit: self.livekit.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn finds_the_call_id_in_a_url() {
        assert_eq!(call_id_in_url("http://gw/twilio/voice?call_id=ca_1&x=2").as_deref(), Some("ca_1"));
        assert_eq!(call_id_in_url("http://gw/cb?a=1&call_id=ca%202").as_deref(), Some("ca 2"));
        assert_eq!(call_id_in_url("http://gw/cb"), None);
        assert_eq!(call_id_in_url("http://gw/cb?call_id="), None);
    }

    #[test]
    fn statuses_have_twilios_names() {
        assert_eq!(serde_json::to_value(Status::InProgress).unwrap(), "in-progress");
        assert_eq!(serde_json::to_value(Status::NoAnswer).unwrap(), "no-answer");
        assert!(Status::Canceled.is_final() && !Status::Ringing.is_final());
        assert_eq!(rfc3339(DateTime::from_timestamp_millis(1_700_000_000_123).unwrap()), "2023-11-14T22:13:20.123Z");
    }
}
