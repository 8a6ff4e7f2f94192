//! The activity feed: what integrations (CRMs, webhooks) learn about calls and campaigns,
//! as one ordered, durable log.
//!
//! Every entry is written by the store in the same transaction as the change it reports,
//! so a change is never visible without its entry nor an entry without its change, and
//! a crash between the two cannot happen. Entries are numbered by the store in commit
//! order (SQLite: its single writer; MongoDB: a counter document incremented inside the
//! transaction, which serialises feed writers), so a reader that has seen entry `n` has
//! seen every entry before it and resumes with "everything after `n`".
//!
//! Which call moves are reported, and as what:
//! - `call.created` — an inbound or web call was created. Outbound campaign numbers are
//!   not reported one by one when they are added (a 150,000-row upload would flood every
//!   integration); an outbound call first appears as `call.dialing`.
//! - `call.dialing`, `call.ringing`, `call.answered`, `call.in_progress` — the states of
//!   the same names (leasing and attaching a worker are internal steps and not reported).
//! - `call.ended` — any terminal state but abandoned, with the disposition (the state),
//!   the reason and the talk time; a number canceled before it was ever dialled (a
//!   completed campaign cancels all its pending numbers) is not reported.
//! - `call.abandoned` — a live answer with no agent to take it.
//! - `call.recording_ready` — the call's recording is stored.
//! - `call.recording_analyzed` — voxbridge read the stored recording back (a job on the
//!   `recordings` work queue): it is whole, and this is each side's talk time.
//! - `campaign.state_changed` — a campaign started, paused, completed.
//! - `campaign.pacing` — the leading dialler's pacing figures for a running campaign
//!   (dial ratio, learned answer rate and hold time, abandon rate against its target),
//!   reported by the dialler every few seconds through the fenced `ReportPacing`, so a
//!   deposed dialler cannot write figures.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use vox_proto::backend::v1 as pb;

use crate::call::{Call, CallEvent, CallState};
use crate::campaign::CampaignStatus;

/// Every event type, in the spelling integrations filter on.
pub const EVENT_TYPES: [&str; 11] = [
    "call.created",
    "call.dialing",
    "call.ringing",
    "call.answered",
    "call.in_progress",
    "call.ended",
    "call.abandoned",
    "call.recording_ready",
    "call.recording_analyzed",
    "campaign.state_changed",
    "campaign.pacing",
];

/// What a stored recording holds, read back from storage (`call.recording_analyzed`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingAnalysis {
    pub call_id: String,
    pub key: String,
    pub duration_ms: u64,
    pub caller_speech_ms: u64,
    pub agent_speech_ms: u64,
    pub silence_ms: u64,
}

/// One campaign's pacing as the leading dialler reports it (`campaign.pacing`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PacingFigures {
    pub campaign_id: String,
    /// "predictive", "progressive", "fixed" or "erlang" (the campaign's pacing strategy).
    pub mode: String,
    pub dial_ratio: f64,
    pub answer_rate: f64,
    pub aht_seconds: f64,
    pub ring_seconds: f64,
    pub abandon_rate: f64,
    pub abandon_target: f64,
    pub abandon_credit: f64,
    pub active_dials: u32,
    pub calls_placed: u64,
    pub calls_answered: u64,
    pub calls_abandoned: u64,
}

/// The pacing strategies a dialler reports.
const PACING_MODES: [&str; 4] = ["predictive", "progressive", "fixed", "erlang"];

impl PacingFigures {
    /// Checks a report entry; a bad figure is named by `field` (e.g. `campaigns[2]`) and
    /// its own name.
    pub fn from_proto(field: &str, p: &pb::PacingFigures) -> crate::Result<PacingFigures> {
        let campaign_id = p.campaign_id.trim().to_string();
        if campaign_id.is_empty() || campaign_id.len() > 64 {
            return Err(crate::Error::invalid(&format!("{field}.campaign_id"), "required: a campaign id"));
        }
        if !PACING_MODES.contains(&p.mode.as_str()) {
            return Err(crate::Error::invalid(
                &format!("{field}.mode"),
                format!("{:?} is not a pacing mode; expected one of {}", p.mode, PACING_MODES.join(", ")),
            ));
        }
        let figures = [
            ("dial_ratio", p.dial_ratio, f64::MAX),
            ("answer_rate", p.answer_rate, 1.0),
            ("aht_seconds", p.aht_seconds, f64::MAX),
            ("ring_seconds", p.ring_seconds, f64::MAX),
            ("abandon_rate", p.abandon_rate, 1.0),
            ("abandon_target", p.abandon_target, 1.0),
            ("abandon_credit", p.abandon_credit, f64::MAX),
        ];
        for (name, value, max) in figures {
            if !value.is_finite() || !(0.0..=max).contains(&value) {
                let range = if max == 1.0 { "a fraction from 0 to 1" } else { "a finite number, 0 or more" };
                return Err(crate::Error::invalid(&format!("{field}.{name}"), format!("{value} is not {range}")));
            }
        }
        Ok(PacingFigures {
            campaign_id,
            mode: p.mode.clone(),
            dial_ratio: p.dial_ratio,
            answer_rate: p.answer_rate,
            aht_seconds: p.aht_seconds,
            ring_seconds: p.ring_seconds,
            abandon_rate: p.abandon_rate,
            abandon_target: p.abandon_target,
            abandon_credit: p.abandon_credit,
            active_dials: p.active_dials,
            calls_placed: p.calls_placed,
            calls_answered: p.calls_answered,
            calls_abandoned: p.calls_abandoned,
        })
    }

    pub fn to_proto(&self) -> pb::PacingFigures {
        pb::PacingFigures {
            campaign_id: self.campaign_id.clone(),
            mode: self.mode.clone(),
            dial_ratio: self.dial_ratio,
            answer_rate: self.answer_rate,
            aht_seconds: self.aht_seconds,
            ring_seconds: self.ring_seconds,
            abandon_rate: self.abandon_rate,
            abandon_target: self.abandon_target,
            abandon_credit: self.abandon_credit,
            active_dials: self.active_dials,
            calls_placed: self.calls_placed,
            calls_answered: self.calls_answered,
            calls_abandoned: self.calls_abandoned,
        }
    }
}

/// True when `t` names an event type (or a family: `call.*`, `campaign.*`).
pub fn is_event_type(t: &str) -> bool {
    EVENT_TYPES.contains(&t) || matches!(t, "call.*" | "campaign.*")
}

/// Checks requested event types (trimmed); a bad one is named by its position in `field`.
pub fn check_types(field: &str, types: &[String]) -> crate::Result<Vec<String>> {
    let mut out = Vec::with_capacity(types.len());
    for (i, t) in types.iter().enumerate() {
        let t = t.trim();
        if !is_event_type(t) {
            return Err(crate::Error::invalid(
                &format!("{field}[{i}]"),
                format!(
                    "{t:?} is not an event type; expected one of {}, or call.* / campaign.*",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        out.push(t.to_string());
    }
    Ok(out)
}

/// True when an event of type `kind` is wanted by `filter` (empty: every type).
pub fn type_matches(filter: &[String], kind: &str) -> bool {
    filter.is_empty()
        || filter.iter().any(|f| f == kind || f.strip_suffix('*').is_some_and(|family| kind.starts_with(family)))
}

/// What an entry is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "subject", rename_all = "snake_case")]
pub enum Subject {
    /// The call as it stood after the change, and the timeline line of the change (absent
    /// for `call.recording_ready`, which is not a move).
    Call {
        call: Box<Call>,
        change: Option<CallEvent>,
    },
    Campaign {
        campaign_id: String,
        from: CampaignStatus,
        to: CampaignStatus,
        actor: String,
    },
    /// A call's stored recording, measured.
    Recording {
        analysis: RecordingAnalysis,
    },
    /// A dialler's pacing figures for the campaign, and who reported them.
    Pacing {
        figures: PacingFigures,
        dialler_id: String,
        fencing_term: u64,
    },
}

/// One entry of the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedEvent {
    /// Its place in the feed, from 1, in commit order; 0 until the store numbers it.
    pub id: u64,
    pub at: DateTime<Utc>,
    /// One of [`EVENT_TYPES`].
    pub kind: String,
    pub campaign_id: Option<String>,
    pub subject: Subject,
}

impl FeedEvent {
    /// The entry reporting `change` of `call` (the call as it stands after it), if that
    /// move is reported at all.
    pub fn for_call_change(call: &Call, change: &CallEvent) -> Option<FeedEvent> {
        let kind = match (change.from_state, change.to_state) {
            (None, _) if call.direction == crate::call::Direction::Inbound || call.campaign_id.is_none() => {
                "call.created"
            }
            (None, _) => return None,
            // Never dialled: it never appeared, so its end is not reported either.
            (Some(CallState::Pending), _) => return None,
            (Some(_), CallState::Dialing) => "call.dialing",
            (Some(_), CallState::Ringing) => "call.ringing",
            (Some(_), CallState::Answered) => "call.answered",
            (Some(_), CallState::InProgress) => "call.in_progress",
            (Some(_), CallState::Abandoned) => "call.abandoned",
            (Some(_), to) if to.is_terminal() => "call.ended",
            _ => return None,
        };
        Some(FeedEvent {
            id: 0,
            at: change.at,
            kind: kind.into(),
            campaign_id: call.campaign_id.clone(),
            subject: Subject::Call { call: Box::new(call.clone()), change: Some(change.clone()) },
        })
    }

    /// The entry saying `call`'s recording is stored.
    pub fn recording_ready(call: &Call, now: DateTime<Utc>) -> FeedEvent {
        FeedEvent {
            id: 0,
            at: now,
            kind: "call.recording_ready".into(),
            campaign_id: call.campaign_id.clone(),
            subject: Subject::Call { call: Box::new(call.clone()), change: None },
        }
    }

    /// The entry saying a campaign went from `from` to `to`.
    pub fn campaign_status(
        campaign_id: &str,
        from: CampaignStatus,
        to: CampaignStatus,
        actor: &str,
        now: DateTime<Utc>,
    ) -> FeedEvent {
        FeedEvent {
            id: 0,
            at: now,
            kind: "campaign.state_changed".into(),
            campaign_id: Some(campaign_id.to_string()),
            subject: Subject::Campaign { campaign_id: campaign_id.to_string(), from, to, actor: actor.to_string() },
        }
    }

    /// The entry saying `call`'s stored recording was read back and holds `analysis`.
    pub fn recording_analyzed(call: &Call, analysis: RecordingAnalysis, now: DateTime<Utc>) -> FeedEvent {
        FeedEvent {
            id: 0,
            at: now,
            kind: "call.recording_analyzed".into(),
            campaign_id: call.campaign_id.clone(),
            subject: Subject::Recording { analysis },
        }
    }

    /// The entry carrying `figures` as reported by dialler `dialler_id` at `fencing_term`.
    pub fn pacing(figures: PacingFigures, dialler_id: &str, fencing_term: u64, now: DateTime<Utc>) -> FeedEvent {
        FeedEvent {
            id: 0,
            at: now,
            kind: "campaign.pacing".into(),
            campaign_id: Some(figures.campaign_id.clone()),
            subject: Subject::Pacing { figures, dialler_id: dialler_id.to_string(), fencing_term },
        }
    }

    /// The entry on the wire. The call's lease is left out: its token is the dialler's
    /// proof of holding the call, and readers of the feed are integrations.
    pub fn to_proto(&self) -> pb::Event {
        let subject = match &self.subject {
            Subject::Call { call, change } => {
                let mut call = crate::call::call_to_proto(call);
                call.lease = None;
                pb::event::Subject::Call(pb::CallChange {
                    call: Some(call),
                    change: change.as_ref().map(crate::call::event_to_proto),
                })
            }
            Subject::Campaign { campaign_id, from, to, actor } => pb::event::Subject::Campaign(pb::CampaignChange {
                campaign_id: campaign_id.clone(),
                from: from.to_proto() as i32,
                to: to.to_proto() as i32,
                actor: actor.clone(),
            }),
            Subject::Recording { analysis: a } => pb::event::Subject::Recording(pb::RecordingAnalysis {
                call_id: a.call_id.clone(),
                key: a.key.clone(),
                duration_ms: a.duration_ms,
                caller_speech_ms: a.caller_speech_ms,
                agent_speech_ms: a.agent_speech_ms,
                silence_ms: a.silence_ms,
            }),
            Subject::Pacing { figures, dialler_id, fencing_term } => pb::event::Subject::Pacing(pb::PacingReport {
                figures: Some(figures.to_proto()),
                dialler_id: dialler_id.clone(),
                fencing_term: *fencing_term,
            }),
        };
        pb::Event {
            id: self.id,
            at: Some(crate::time::to_proto(self.at)),
            r#type: self.kind.clone(),
            campaign_id: self.campaign_id.clone().unwrap_or_default(),
            subject: Some(subject),
        }
    }

    /// The call this entry is about, if any.
    pub fn call(&self) -> Option<&Call> {
        match &self.subject {
            Subject::Call { call, .. } => Some(call),
            Subject::Campaign { .. } | Subject::Pacing { .. } | Subject::Recording { .. } => None,
        }
    }
}

/// Which entries a reader wants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedQuery {
    /// Entries with an id above this one (0: from the oldest kept).
    pub after: u64,
    /// Only this campaign's entries.
    pub campaign_id: Option<String>,
    /// At most this many.
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{Call, Direction};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap()
    }

    fn change(from: Option<CallState>, to: CallState) -> CallEvent {
        CallEvent {
            seq: 2,
            at: now(),
            from_state: from,
            to_state: to,
            actor: "node:n1".into(),
            reason: String::new(),
            fencing_term: 0,
        }
    }

    #[test]
    fn outbound_numbers_are_not_reported_when_added_but_every_visible_move_is() {
        let mut call = Call::outbound("cmp_1", "reg_1", "+14155550100", "+14155550199", now());
        assert_eq!(FeedEvent::for_call_change(&call, &call.created_event("system")), None);
        assert_eq!(FeedEvent::for_call_change(&call, &change(Some(CallState::Pending), CallState::Leased)), None);
        call.state = CallState::Canceled;
        assert_eq!(FeedEvent::for_call_change(&call, &change(Some(CallState::Pending), CallState::Canceled)), None);
        let kinds: Vec<String> = [
            (CallState::Leased, CallState::Dialing),
            (CallState::Dialing, CallState::Ringing),
            (CallState::Ringing, CallState::Answered),
            (CallState::Answered, CallState::Attaching),
            (CallState::Attaching, CallState::InProgress),
            (CallState::InProgress, CallState::Completed),
            (CallState::Answered, CallState::Abandoned),
            (CallState::Ringing, CallState::NoAnswer),
            (CallState::Ringing, CallState::Machine),
        ]
        .into_iter()
        .filter_map(|(from, to)| {
            call.state = to;
            FeedEvent::for_call_change(&call, &change(Some(from), to)).map(|e| e.kind)
        })
        .collect();
        assert_eq!(
            kinds,
            [
                "call.dialing",
                "call.ringing",
                "call.answered",
                "call.in_progress",
                "call.ended",
                "call.abandoned",
                "call.ended",
                "call.ended"
            ]
        );
    }

    #[test]
    fn inbound_calls_are_reported_when_created() {
        let mut call = Call::outbound("cmp_1", "reg_1", "+14155550100", "+14155550199", now());
        call.direction = Direction::Inbound;
        let e = FeedEvent::for_call_change(&call, &call.created_event("node:gw")).expect("reported");
        assert_eq!(e.kind, "call.created");
        assert_eq!(e.campaign_id.as_deref(), Some("cmp_1"));
    }

    #[test]
    fn pacing_reports_with_impossible_figures_are_refused_by_name() {
        let good = pb::PacingFigures {
            campaign_id: "cmp_1".into(),
            mode: "predictive".into(),
            dial_ratio: 2.5,
            answer_rate: 0.3,
            aht_seconds: 42.0,
            abandon_target: 0.03,
            ..Default::default()
        };
        let f = PacingFigures::from_proto("campaigns[0]", &good).expect("good figures");
        assert_eq!(f.to_proto(), good);
        let e = FeedEvent::pacing(f, "dl_1", 4, now());
        assert_eq!((e.kind.as_str(), e.campaign_id.as_deref()), ("campaign.pacing", Some("cmp_1")));
        let bad = [
            (pb::PacingFigures { answer_rate: 1.5, ..good.clone() }, "campaigns[0].answer_rate"),
            (pb::PacingFigures { dial_ratio: f64::NAN, ..good.clone() }, "campaigns[0].dial_ratio"),
            (pb::PacingFigures { aht_seconds: -1.0, ..good.clone() }, "campaigns[0].aht_seconds"),
            (pb::PacingFigures { mode: "fast".into(), ..good.clone() }, "campaigns[0].mode"),
            (pb::PacingFigures { campaign_id: " ".into(), ..good.clone() }, "campaigns[0].campaign_id"),
        ];
        for (figures, field) in bad {
            let err = PacingFigures::from_proto("campaigns[0]", &figures).expect_err(field);
            assert!(err.message.contains(field), "{field}: {}", err.message);
        }
    }

    #[test]
    fn type_filters_take_exact_types_and_families() {
        assert!(type_matches(&[], "call.ended"));
        assert!(type_matches(&["call.*".into()], "call.ended"));
        assert!(!type_matches(&["campaign.*".into()], "call.ended"));
        assert!(type_matches(&["call.answered".into(), "call.ended".into()], "call.ended"));
        assert!(!type_matches(&["call.answered".into()], "call.ended"));
        assert!(is_event_type("call.recording_ready") && is_event_type("call.*") && !is_event_type("call.nope"));
    }
}
