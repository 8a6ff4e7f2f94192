//! Calls and their state machine.
//!
//! ```text
//! pending -> leased -> dialing -> ringing -> answered -> attaching -> in_progress -> completed
//!               \-> pending (lease released or expired; or, from dialing, the carrier
//!                   refused the request so nothing was placed)
//! ends: completed, no_answer, busy, failed, abandoned, canceled, machine
//! (dialing/ringing/answered -> machine when the carrier's machine detection says so)
//! ```
//!
//! Every change goes through [`apply_transition`], which refuses an illegal move, a stale
//! fencing term or a wrong lease token before anything is written, and returns the new
//! call with the event to append to its timeline. Storage backends load, apply and write
//! back conditionally on [`Call::version`], so they all enforce the same rules.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use vox_proto::backend::v1 as pb;
use vox_proto::common::v1 as common;

use crate::campaign::RetryPolicy;
use crate::{Error, Result, ids, time};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Pending,
    Leased,
    Dialing,
    Ringing,
    Answered,
    Attaching,
    InProgress,
    Completed,
    NoAnswer,
    Busy,
    Failed,
    Abandoned,
    Canceled,
    /// An answering machine picked up: its own outcome, never a human answer.
    Machine,
}

use CallState::*;

impl CallState {
    pub const ALL: [CallState; 14] = [
        Pending, Leased, Dialing, Ringing, Answered, Attaching, InProgress, Completed, NoAnswer, Busy, Failed,
        Abandoned, Canceled, Machine,
    ];

    /// The states a call in this state may move to.
    pub fn next_states(self) -> &'static [CallState] {
        match self {
            Pending => &[Leased, Canceled],
            Leased => &[Pending, Dialing, Failed, Canceled],
            // Dialing -> pending: the carrier refused the request outright, so no call was
            // placed and the number goes back to the pool without using an attempt.
            Dialing => &[Pending, Ringing, Answered, NoAnswer, Busy, Failed, Canceled, Machine],
            Ringing => &[Answered, NoAnswer, Busy, Failed, Canceled, Machine],
            Answered => &[Attaching, Abandoned, Completed, Failed, Machine],
            Attaching => &[InProgress, Abandoned, Completed, Failed],
            InProgress => &[Completed, Failed],
            Completed | NoAnswer | Busy | Failed | Abandoned | Canceled | Machine => &[],
        }
    }

    pub fn can_move_to(self, to: CallState) -> bool {
        self.next_states().contains(&to)
    }

    pub fn is_terminal(self) -> bool {
        self.next_states().is_empty()
    }

    /// Leased through attaching: the dashboard's "processing".
    pub fn is_processing(self) -> bool {
        matches!(self, Leased | Dialing | Ringing | Answered | Attaching)
    }

    /// A person is on the line: the dashboard's "live conversations".
    pub fn is_conversation(self) -> bool {
        matches!(self, Answered | Attaching | InProgress)
    }

    /// Neither pending nor ended.
    pub fn is_live(self) -> bool {
        !self.is_terminal() && self != Pending
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Pending => "pending",
            Leased => "leased",
            Dialing => "dialing",
            Ringing => "ringing",
            Answered => "answered",
            Attaching => "attaching",
            InProgress => "in_progress",
            Completed => "completed",
            NoAnswer => "no_answer",
            Busy => "busy",
            Failed => "failed",
            Abandoned => "abandoned",
            Canceled => "canceled",
            Machine => "machine",
        }
    }

    pub fn parse(s: &str) -> Option<CallState> {
        CallState::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn to_proto(self) -> pb::CallState {
        match self {
            Pending => pb::CallState::Pending,
            Leased => pb::CallState::Leased,
            Dialing => pb::CallState::Dialing,
            Ringing => pb::CallState::Ringing,
            Answered => pb::CallState::Answered,
            Attaching => pb::CallState::Attaching,
            InProgress => pb::CallState::InProgress,
            Completed => pb::CallState::Completed,
            NoAnswer => pb::CallState::NoAnswer,
            Busy => pb::CallState::Busy,
            Failed => pb::CallState::Failed,
            Abandoned => pb::CallState::Abandoned,
            Canceled => pb::CallState::Canceled,
            Machine => pb::CallState::Machine,
        }
    }

    pub fn from_proto(field: &str, v: i32) -> Result<Self> {
        let state = match pb::CallState::try_from(v) {
            Ok(pb::CallState::Pending) => Pending,
            Ok(pb::CallState::Leased) => Leased,
            Ok(pb::CallState::Dialing) => Dialing,
            Ok(pb::CallState::Ringing) => Ringing,
            Ok(pb::CallState::Answered) => Answered,
            Ok(pb::CallState::Attaching) => Attaching,
            Ok(pb::CallState::InProgress) => InProgress,
            Ok(pb::CallState::Completed) => Completed,
            Ok(pb::CallState::NoAnswer) => NoAnswer,
            Ok(pb::CallState::Busy) => Busy,
            Ok(pb::CallState::Failed) => Failed,
            Ok(pb::CallState::Abandoned) => Abandoned,
            Ok(pb::CallState::Canceled) => Canceled,
            Ok(pb::CallState::Machine) => Machine,
            _ => {
                return Err(Error::invalid(
                    field,
                    format!("{v} is not a call state; use one of CALL_STATE_PENDING .. CALL_STATE_MACHINE"),
                ));
            }
        };
        Ok(state)
    }
}

impl fmt::Display for CallState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Outbound,
    Inbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Phone,
    Web,
}

impl Channel {
    pub fn from_proto(field: &str, v: i32) -> Result<Self> {
        match common::Channel::try_from(v) {
            Ok(common::Channel::Phone) => Ok(Channel::Phone),
            Ok(common::Channel::Web) => Ok(Channel::Web),
            _ => Err(Error::invalid(field, "CHANNEL_PHONE or CHANNEL_WEB")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallLease {
    pub owner: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub fencing_term: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    pub key: String,
    pub duration_ms: u64,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub id: String,
    pub campaign_id: Option<String>,
    pub region_id: String,
    pub direction: Direction,
    pub channel: Channel,
    pub to_number: String,
    pub from_number: String,
    pub state: CallState,
    pub attempt: u32,
    pub retry_of: Option<String>,
    pub due_at: DateTime<Utc>,
    pub lease: Option<CallLease>,
    pub provider_call_id: String,
    pub node_id: String,
    pub worker_index: u32,
    pub recording: Option<Recording>,
    pub end_reason: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the call entered its current state; the reaper measures staleness from it.
    pub state_since: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub version: u64,
}

impl Call {
    /// A first attempt at a campaign number, pending and due now.
    pub fn outbound(campaign_id: &str, region_id: &str, to: &str, from: &str, now: DateTime<Utc>) -> Call {
        Call {
            id: ids::new_id(ids::CALL),
            campaign_id: Some(campaign_id.to_string()),
            region_id: region_id.to_string(),
            direction: Direction::Outbound,
            channel: Channel::Phone,
            to_number: to.to_string(),
            from_number: from.to_string(),
            state: Pending,
            attempt: 1,
            retry_of: None,
            due_at: now,
            lease: None,
            provider_call_id: String::new(),
            node_id: String::new(),
            worker_index: 0,
            recording: None,
            end_reason: String::new(),
            created_at: now,
            updated_at: now,
            state_since: now,
            answered_at: None,
            ended_at: None,
            version: 1,
        }
    }

    /// The first event of every call's timeline.
    pub fn created_event(&self, actor: &str) -> CallEvent {
        CallEvent {
            seq: 1,
            at: self.created_at,
            from_state: None,
            to_state: self.state,
            actor: actor.to_string(),
            reason: "created".into(),
            fencing_term: 0,
        }
    }
}

/// One line of a call's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    pub seq: u32,
    pub at: DateTime<Utc>,
    pub from_state: Option<CallState>,
    pub to_state: CallState,
    pub actor: String,
    pub reason: String,
    pub fencing_term: u64,
}

/// A requested move of one call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transition {
    pub call_id: String,
    pub to: Option<CallState>,
    /// "user:<email>", "node:<id>" or "system".
    pub actor: String,
    /// 0: not a dialler's move. Otherwise refused when below the current term.
    pub fencing_term: u64,
    /// Checked against the lease while the call is leased; required when
    /// `require_lease_token` (the service sets it for diallers).
    pub lease_token: String,
    pub require_lease_token: bool,
    pub reason: String,
    pub provider_call_id: Option<String>,
    pub node_id: Option<String>,
    pub worker_index: Option<u32>,
    pub recording: Option<Recording>,
}

impl Transition {
    pub fn to_state(&self) -> Result<CallState> {
        self.to.ok_or_else(|| Error::invalid("to_state", "required"))
    }
}

/// What a transition produces: the new call, its timeline event, and the retry to create
/// when the outcome is one the campaign retries.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub call: Call,
    pub event: CallEvent,
    pub retry: Option<Call>,
}

/// Applies `t` to `call`. `current_term` is the leadership term now; `next_seq` the
/// position of the new event in the timeline; `retry` the campaign's policy, if any.
pub fn apply_transition(
    call: &Call,
    t: &Transition,
    current_term: u64,
    next_seq: u32,
    retry: Option<&RetryPolicy>,
    now: DateTime<Utc>,
) -> Result<Applied> {
    let to = t.to_state()?;
    if t.fencing_term > 0 && t.fencing_term < current_term {
        return Err(Error::precondition(format!(
            "stale fencing term {}: the current leadership term is {current_term}; this dialler no longer leads",
            t.fencing_term
        )));
    }
    if !call.state.can_move_to(to) {
        let allowed: Vec<&str> = call.state.next_states().iter().map(|s| s.as_str()).collect();
        let allowed = if allowed.is_empty() { "nothing: it has ended".to_string() } else { allowed.join(", ") };
        return Err(Error::precondition(format!(
            "illegal transition {} -> {to} for call {}; from {} a call may go to {allowed}",
            call.state, call.id, call.state
        )));
    }
    if call.state == Leased
        && let Some(lease) = &call.lease
    {
        let given = t.lease_token.as_str();
        if (t.require_lease_token || !given.is_empty()) && given != lease.token {
            return Err(Error::precondition(format!(
                "lease token does not match the lease on call {} (held by {})",
                call.id, lease.owner
            )));
        }
    }

    let mut next = call.clone();
    next.state = to;
    next.state_since = now;
    next.updated_at = now;
    next.version = call.version + 1;
    if let Some(p) = &t.provider_call_id {
        next.provider_call_id = p.clone();
    }
    if let Some(n) = &t.node_id {
        next.node_id = n.clone();
    }
    if let Some(w) = t.worker_index {
        next.worker_index = w;
    }
    if let Some(r) = &t.recording {
        next.recording = Some(r.clone());
    }
    if to == Pending {
        next.lease = None;
    }
    if to == Answered {
        next.answered_at = Some(now);
    }
    if to.is_terminal() {
        next.ended_at = Some(now);
        next.end_reason = if t.reason.is_empty() { to.as_str().to_string() } else { t.reason.clone() };
    }
    let event = CallEvent {
        seq: next_seq,
        at: now,
        from_state: Some(call.state),
        to_state: to,
        actor: t.actor.clone(),
        reason: t.reason.clone(),
        fencing_term: t.fencing_term,
    };
    let retry = retry.and_then(|policy| retry_of(&next, policy, now));
    Ok(Applied { call: next, event, retry })
}

/// Leases a pending call to `owner` under fencing term `term` until `now + ttl`, with a
/// fresh random token the holder must present with its next move.
pub fn apply_lease(
    call: &Call,
    owner: &str,
    term: u64,
    ttl: Duration,
    next_seq: u32,
    now: DateTime<Utc>,
) -> Result<Applied> {
    let t = Transition {
        call_id: call.id.clone(),
        to: Some(Leased),
        actor: owner.to_string(),
        fencing_term: term,
        reason: "leased".into(),
        ..Default::default()
    };
    let mut applied = apply_transition(call, &t, term, next_seq, None, now)?;
    applied.call.lease = Some(CallLease {
        owner: owner.to_string(),
        token: ids::random_token(24),
        expires_at: now + ttl,
        fencing_term: term,
    });
    Ok(applied)
}

/// The next attempt at an ended call's number, when its outcome is retried and attempts
/// remain: a new pending call, due after the policy's backoff.
pub fn retry_of(ended: &Call, policy: &RetryPolicy, now: DateTime<Utc>) -> Option<Call> {
    if ended.direction != Direction::Outbound
        || !ended.state.is_terminal()
        || !policy.retry_on.contains(&ended.state)
        || ended.attempt >= policy.max_attempts
    {
        return None;
    }
    let campaign_id = ended.campaign_id.as_deref()?;
    let delay = policy.backoff_after(ended.attempt);
    let mut next = Call::outbound(campaign_id, &ended.region_id, &ended.to_number, &ended.from_number, now);
    next.attempt = ended.attempt + 1;
    next.retry_of = Some(ended.id.clone());
    next.due_at = now + delay;
    Some(next)
}

/// How long a call may stay in each live state before the reaper ends it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StaleDeadlines {
    pub dialing: Duration,
    pub ringing: Duration,
    pub answered: Duration,
    pub attaching: Duration,
    pub in_progress: Duration,
}

impl Default for StaleDeadlines {
    fn default() -> Self {
        StaleDeadlines {
            dialing: Duration::seconds(120),
            ringing: Duration::seconds(180),
            answered: Duration::seconds(60),
            attaching: Duration::seconds(60),
            in_progress: Duration::minutes(60),
        }
    }
}

impl StaleDeadlines {
    /// The move the reaper makes for `call` at `now`, if it is stuck: an expired lease goes
    /// back to pending (it was never placed); any other stuck state ends as failed.
    pub fn reap(&self, call: &Call, now: DateTime<Utc>) -> Option<(CallState, String)> {
        let limit = match call.state {
            Leased => {
                let expired = call.lease.as_ref().is_none_or(|l| l.expires_at <= now);
                return expired.then(|| (Pending, "lease_expired".to_string()));
            }
            Dialing => self.dialing,
            Ringing => self.ringing,
            Answered => self.answered,
            Attaching => self.attaching,
            InProgress => self.in_progress,
            _ => return None,
        };
        (now - call.state_since >= limit).then(|| (Failed, format!("reaped:stale_{}", call.state)))
    }
}

pub fn call_to_proto(c: &Call) -> pb::Call {
    pb::Call {
        id: c.id.clone(),
        campaign_id: c.campaign_id.clone().unwrap_or_default(),
        region_id: c.region_id.clone(),
        direction: match c.direction {
            Direction::Outbound => common::Direction::Outbound,
            Direction::Inbound => common::Direction::Inbound,
        } as i32,
        channel: match c.channel {
            Channel::Phone => common::Channel::Phone,
            Channel::Web => common::Channel::Web,
        } as i32,
        to_number: c.to_number.clone(),
        from_number: c.from_number.clone(),
        state: c.state.to_proto() as i32,
        attempt: c.attempt,
        retry_of: c.retry_of.clone().unwrap_or_default(),
        due_at: Some(time::to_proto(c.due_at)),
        lease: c.lease.as_ref().map(|l| pb::CallLease {
            owner: l.owner.clone(),
            token: l.token.clone(),
            expires_at: Some(time::to_proto(l.expires_at)),
            fencing_term: l.fencing_term,
        }),
        provider_call_id: c.provider_call_id.clone(),
        node_id: c.node_id.clone(),
        worker_index: c.worker_index,
        recording: c.recording.as_ref().map(|r| pb::Recording {
            key: r.key.clone(),
            duration_ms: r.duration_ms,
            size_bytes: r.size_bytes,
        }),
        end_reason: c.end_reason.clone(),
        created_at: Some(time::to_proto(c.created_at)),
        updated_at: Some(time::to_proto(c.updated_at)),
        answered_at: c.answered_at.map(time::to_proto),
        ended_at: c.ended_at.map(time::to_proto),
        version: c.version,
    }
}

pub fn event_to_proto(e: &CallEvent) -> pb::CallEvent {
    pb::CallEvent {
        seq: e.seq,
        at: Some(time::to_proto(e.at)),
        from_state: e.from_state.map_or(pb::CallState::Unspecified, CallState::to_proto) as i32,
        to_state: e.to_state.to_proto() as i32,
        actor: e.actor.clone(),
        reason: e.reason.clone(),
        fencing_term: e.fencing_term,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(state: CallState) -> Call {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        Call { state, ..Call::outbound("cp_1", "rg_1", "+14155550123", "+14155550100", now) }
    }

    fn to(state: CallState) -> Transition {
        Transition { call_id: "x".into(), to: Some(state), actor: "system".into(), ..Default::default() }
    }

    #[test]
    fn the_happy_path_is_legal_and_skips_are_not() {
        let path = [Pending, Leased, Dialing, Ringing, Answered, Attaching, InProgress, Completed];
        for w in path.windows(2) {
            assert!(w[0].can_move_to(w[1]), "{} -> {}", w[0], w[1]);
        }
        assert!(!Pending.can_move_to(Dialing));
        assert!(!Ringing.can_move_to(Completed));
        assert!(!InProgress.can_move_to(Canceled));
        for end in [Completed, NoAnswer, Busy, Failed, Abandoned, Canceled, Machine] {
            assert!(end.is_terminal());
            for s in CallState::ALL {
                assert!(!end.can_move_to(s));
            }
        }
    }

    #[test]
    fn illegal_move_names_the_allowed_ones() {
        let err = apply_transition(&call(Ringing), &to(Completed), 0, 2, None, Utc::now()).unwrap_err();
        assert_eq!(err.code, crate::ErrorCode::FailedPrecondition);
        assert!(err.message.contains("ringing -> completed"), "{err}");
        assert!(err.message.contains("answered, no_answer"), "{err}");
    }

    #[test]
    fn stale_term_is_refused_before_anything_else() {
        let t = Transition { fencing_term: 3, ..to(Leased) };
        let err = apply_transition(&call(Pending), &t, 4, 2, None, Utc::now()).unwrap_err();
        assert!(err.message.contains("stale fencing term 3"), "{err}");
        assert!(apply_transition(&call(Pending), &t, 3, 2, None, Utc::now()).is_ok());
    }

    #[test]
    fn lease_token_must_match() {
        let mut c = call(Leased);
        c.lease = Some(CallLease { owner: "d1".into(), token: "tok".into(), expires_at: Utc::now(), fencing_term: 1 });
        let wrong = Transition { lease_token: "nope".into(), ..to(Dialing) };
        assert!(apply_transition(&c, &wrong, 1, 3, None, Utc::now()).is_err());
        let missing = Transition { require_lease_token: true, ..to(Dialing) };
        assert!(apply_transition(&c, &missing, 1, 3, None, Utc::now()).is_err());
        let right = Transition { lease_token: "tok".into(), require_lease_token: true, ..to(Dialing) };
        let applied = apply_transition(&c, &right, 1, 3, None, Utc::now()).unwrap();
        assert_eq!(applied.call.state, Dialing);
        assert_eq!(applied.call.version, c.version + 1);
        assert_eq!(applied.event.from_state, Some(Leased));
    }

    #[test]
    fn retryable_outcomes_make_a_delayed_next_attempt() {
        let policy = RetryPolicy {
            max_attempts: 3,
            backoff_seconds: 60,
            backoff_multiplier: 2.0,
            retry_on: vec![NoAnswer, Busy],
        };
        let now = Utc::now();
        let applied = apply_transition(&call(Ringing), &to(NoAnswer), 0, 5, Some(&policy), now).unwrap();
        let retry = applied.retry.expect("no_answer is retried");
        assert_eq!(retry.attempt, 2);
        assert_eq!(retry.state, Pending);
        assert_eq!(retry.due_at, now + Duration::seconds(60));
        assert_eq!(retry.retry_of.as_deref(), Some(applied.call.id.as_str()));

        let mut second = call(Ringing);
        second.attempt = 2;
        let retry = apply_transition(&second, &to(Busy), 0, 5, Some(&policy), now).unwrap().retry.unwrap();
        assert_eq!(retry.due_at, now + Duration::seconds(120));

        let mut last = call(Ringing);
        last.attempt = 3;
        assert!(apply_transition(&last, &to(Busy), 0, 5, Some(&policy), now).unwrap().retry.is_none());
        assert!(apply_transition(&call(Ringing), &to(Failed), 0, 5, Some(&policy), now).unwrap().retry.is_none());
    }

    #[test]
    fn reaper_rules() {
        let d = StaleDeadlines::default();
        let start = Utc::now();
        let mut c = call(InProgress);
        c.state_since = start;
        assert_eq!(d.reap(&c, start + Duration::minutes(59)), None);
        assert_eq!(d.reap(&c, start + Duration::minutes(60)), Some((Failed, "reaped:stale_in_progress".into())));
        let mut leased = call(Leased);
        leased.lease = Some(CallLease { owner: "d".into(), token: "t".into(), expires_at: start, fencing_term: 1 });
        assert_eq!(d.reap(&leased, start - Duration::seconds(1)), None);
        assert_eq!(d.reap(&leased, start), Some((Pending, "lease_expired".into())));
        assert_eq!(d.reap(&call(Pending), start + Duration::days(9)), None);
    }
}
