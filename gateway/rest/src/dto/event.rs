//! The activity feed as integrations read it: `GET /api/v1/events` pages and the
//! `/api/v1/events/stream` WebSocket carry these.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vox_proto::backend::v1 as pb;

use super::call::{Call, CallEvent};
use super::campaign::CampaignStatus;
use super::{known, non_empty, time};
use crate::error::{ApiError, ApiResult};

/// A campaign's move.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CampaignChange {
    pub from: CampaignStatus,
    pub to: CampaignStatus,
    /// "user:<email>", "key:<id>", "node:<id>" or "system".
    pub actor: String,
}

/// A campaign's pacing as its dialler reports it (campaign.pacing, every 10 s or so
/// while the campaign runs).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Pacing {
    /// "predictive", "progressive", "fixed" or "erlang".
    pub mode: String,
    /// Calls placed per free slot in the dialler's last tick.
    pub dial_ratio: f64,
    /// Human answers / ended dials (learned; recent calls weigh more).
    pub answer_rate: f64,
    /// Mean seconds a connected call holds its slot.
    pub aht_seconds: f64,
    /// Mean seconds from the dial to a person answering.
    pub ring_seconds: f64,
    /// Abandons / human answers since the dialler started pacing the campaign.
    pub abandon_rate: f64,
    /// The campaign's abandon target, a fraction (0.03 = 3%).
    pub abandon_target: f64,
    /// Abandons the campaign can still afford within its target.
    pub abandon_credit: f64,
    pub active_dials: u32,
    pub calls_placed: u64,
    pub calls_answered: u64,
    pub calls_abandoned: u64,
    /// The dialler node pacing the campaign.
    pub dialler_id: String,
}

/// A call's stored recording read back and measured (call.recording_analyzed). Speech is a
/// level gate per 20 ms frame and channel, not voice detection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordingAnalysis {
    pub call_id: String,
    pub duration_seconds: f64,
    pub caller_speech_seconds: f64,
    pub agent_speech_seconds: f64,
    /// Time in which neither side spoke.
    pub silence_seconds: f64,
}

/// One event of the feed. `type` is one of call.created, call.dialing, call.ringing,
/// call.answered, call.in_progress, call.ended, call.abandoned, call.recording_ready,
/// call.recording_analyzed, campaign.state_changed, campaign.pacing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Its place in the feed, in commit order: reconnect with `after=<the last id seen>`.
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub at: DateTime<Utc>,
    /// `null` for calls outside any campaign.
    pub campaign_id: Option<String>,
    /// The call as it stood after the change (call.* events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<Call>,
    /// The timeline line of the move (call.* events but call.recording_ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<CallEvent>,
    /// call.ended and call.abandoned: the disposition (the call's final state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
    /// call.ended: seconds from answer to end (`null` when never answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// call.recording_ready: GET it with the same credential for a playback URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_url: Option<String>,
    /// campaign.state_changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<CampaignChange>,
    /// campaign.pacing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pacing: Option<Pacing>,
    /// call.recording_analyzed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_analysis: Option<RecordingAnalysis>,
}

impl TryFrom<pb::Event> for Event {
    type Error = ApiError;

    fn try_from(e: pb::Event) -> ApiResult<Self> {
        let mut out = Event {
            id: e.id,
            at: time(e.at, "event at")?,
            campaign_id: non_empty(e.campaign_id),
            call: None,
            change: None,
            disposition: None,
            duration_seconds: None,
            recording_url: None,
            campaign: None,
            pacing: None,
            recording_analysis: None,
            kind: e.r#type,
        };
        match e.subject {
            Some(pb::event::Subject::Call(c)) => {
                let call = Call::try_from(c.call.ok_or_else(|| ApiError::internal("event without its call"))?)?;
                if matches!(out.kind.as_str(), "call.ended" | "call.abandoned") {
                    out.disposition = serde_json::to_value(call.state).ok().and_then(|v| v.as_str().map(String::from));
                    out.duration_seconds = match (call.answered_at, call.ended_at) {
                        (Some(a), Some(e)) => Some((e - a).num_milliseconds() as f64 / 1000.0),
                        _ => None,
                    };
                }
                if out.kind == "call.recording_ready" {
                    out.recording_url = Some(format!("/api/v1/calls/{}/recording", call.id));
                }
                out.change = c.change.map(CallEvent::try_from).transpose()?;
                out.call = Some(call);
            }
            Some(pb::event::Subject::Campaign(c)) => {
                out.campaign = Some(CampaignChange {
                    from: known(CampaignStatus::from_proto(c.from), "campaign status")?,
                    to: known(CampaignStatus::from_proto(c.to), "campaign status")?,
                    actor: c.actor,
                });
            }
            Some(pb::event::Subject::Recording(r)) => {
                let seconds = |ms: u64| ms as f64 / 1000.0;
                out.recording_url = Some(format!("/api/v1/calls/{}/recording", r.call_id));
                out.recording_analysis = Some(RecordingAnalysis {
                    duration_seconds: seconds(r.duration_ms),
                    caller_speech_seconds: seconds(r.caller_speech_ms),
                    agent_speech_seconds: seconds(r.agent_speech_ms),
                    silence_seconds: seconds(r.silence_ms),
                    call_id: r.call_id,
                });
            }
            Some(pb::event::Subject::Pacing(p)) => {
                let f = p.figures.ok_or_else(|| ApiError::internal("pacing event without its figures"))?;
                out.pacing = Some(Pacing {
                    mode: f.mode,
                    dial_ratio: f.dial_ratio,
                    answer_rate: f.answer_rate,
                    aht_seconds: f.aht_seconds,
                    ring_seconds: f.ring_seconds,
                    abandon_rate: f.abandon_rate,
                    abandon_target: f.abandon_target,
                    abandon_credit: f.abandon_credit,
                    active_dials: f.active_dials,
                    calls_placed: f.calls_placed,
                    calls_answered: f.calls_answered,
                    calls_abandoned: f.calls_abandoned,
                    dialler_id: p.dialler_id,
                });
            }
            None => return Err(ApiError::internal("event without a subject")),
        }
        Ok(out)
    }
}

/// Events a reader missed because they were pruned (older than voxbridge's
/// `--event-retention-days`) before it asked.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventGap {
    pub first_missed_id: u64,
    pub last_missed_id: u64,
}

impl From<pb::EventGap> for EventGap {
    fn from(g: pb::EventGap) -> Self {
        EventGap { first_missed_id: g.first_missed_id, last_missed_id: g.last_missed_id }
    }
}

/// One page of events, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass as `after` for the next page.
    pub next_after: u64,
    /// Set when events after `after` were already pruned.
    pub gap: Option<EventGap>,
}

/// Which events to read: `after` the last id seen (0: from the oldest kept), of one
/// campaign, of some types (comma-separated; `call.*` and `campaign.*` name families).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(default)]
pub struct EventFilter {
    pub after: u64,
    pub campaign_id: Option<String>,
    pub types: Option<String>,
    /// 1..=1000, default 100 (pages only).
    pub page_size: Option<u32>,
}

impl EventFilter {
    pub fn types(&self) -> Vec<String> {
        self.types
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect()
    }
}
