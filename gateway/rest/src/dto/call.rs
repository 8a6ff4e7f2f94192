//! Calls, their event timeline and the list filter.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vox_proto::backend::v1 as pb;
use vox_proto::common::v1 as common;

use super::{convert_all, known, non_empty, opt_time, time, to_proto_time, wire_enum};
use crate::error::{ApiError, ApiResult};

wire_enum! {
    /// pending → leased → dialing → ringing → answered → attaching → in_progress →
    /// completed, plus the ends no_answer, busy, failed, abandoned, canceled.
    pub enum CallState: pb::CallState {
        Pending = Pending,
        Leased = Leased,
        Dialing = Dialing,
        Ringing = Ringing,
        Answered = Answered,
        Attaching = Attaching,
        InProgress = InProgress,
        Completed = Completed,
        NoAnswer = NoAnswer,
        Busy = Busy,
        Failed = Failed,
        Abandoned = Abandoned,
        Canceled = Canceled,
        Machine = Machine,
    }
}

wire_enum! {
    pub enum Direction: common::Direction {
        Outbound = Outbound,
        Inbound = Inbound,
    }
}

wire_enum! {
    pub enum Channel: common::Channel {
        Phone = Phone,
        Web = Web,
    }
}

/// Who holds a leased call. The lease token stays between voxbridge and the holder.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallLease {
    pub owner: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub fencing_term: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Recording {
    /// Object key in the region's storage.
    pub key: String,
    pub duration_ms: u64,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Call {
    pub id: String,
    /// `null` for inbound calls outside a campaign.
    pub campaign_id: Option<String>,
    pub region_id: String,
    pub direction: Direction,
    pub channel: Channel,
    pub to_number: String,
    pub from_number: String,
    pub state: CallState,
    /// 1 for the first attempt at a number; retries are new calls with attempt + 1.
    pub attempt: u32,
    /// The call this one retries.
    pub retry_of: Option<String>,
    /// When a pending call may be leased.
    pub due_at: Option<DateTime<Utc>>,
    pub lease: Option<CallLease>,
    /// The carrier's id for the call.
    pub provider_call_id: Option<String>,
    /// The fleet node and worker holding the call.
    pub node_id: Option<String>,
    pub worker_index: Option<u32>,
    pub recording: Option<Recording>,
    /// Why the call ended, e.g. "hangup", "reaped:stale_in_progress", "no_free_slot".
    pub end_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Bumped by every change.
    pub version: u64,
}

impl TryFrom<pb::Call> for Call {
    type Error = ApiError;

    fn try_from(c: pb::Call) -> ApiResult<Self> {
        let lease = c
            .lease
            .map(|l| -> ApiResult<CallLease> {
                Ok(CallLease {
                    owner: l.owner,
                    expires_at: opt_time(l.expires_at, "lease expires_at")?,
                    fencing_term: l.fencing_term,
                })
            })
            .transpose()?;
        Ok(Call {
            direction: known(Direction::from_proto(c.direction), "call direction")?,
            channel: known(Channel::from_proto(c.channel), "call channel")?,
            state: known(CallState::from_proto(c.state), "call state")?,
            due_at: opt_time(c.due_at, "due_at")?,
            created_at: time(c.created_at, "call created_at")?,
            updated_at: time(c.updated_at, "call updated_at")?,
            answered_at: opt_time(c.answered_at, "answered_at")?,
            ended_at: opt_time(c.ended_at, "ended_at")?,
            lease,
            recording: c.recording.map(|r| Recording {
                key: r.key,
                duration_ms: r.duration_ms,
                size_bytes: r.size_bytes,
            }),
            campaign_id: non_empty(c.campaign_id),
            retry_of: non_empty(c.retry_of),
            provider_call_id: non_empty(c.provider_call_id),
            node_id: non_empty(c.node_id),
            worker_index: (c.worker_index > 0).then_some(c.worker_index),
            end_reason: non_empty(c.end_reason),
            id: c.id,
            region_id: c.region_id,
            to_number: c.to_number,
            from_number: c.from_number,
            attempt: c.attempt,
            version: c.version,
        })
    }
}

/// One page of calls, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallPage {
    pub calls: Vec<Call>,
    /// Pass as `page_token` for the next page; `null` when there are no more.
    pub next_page_token: Option<String>,
}

impl TryFrom<pb::ListCallsResponse> for CallPage {
    type Error = ApiError;

    fn try_from(r: pb::ListCallsResponse) -> ApiResult<Self> {
        Ok(CallPage { calls: convert_all(r.calls)?, next_page_token: non_empty(r.next_page_token) })
    }
}

/// One step of a call's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallEvent {
    /// 1-based position in the timeline.
    pub seq: u32,
    pub at: DateTime<Utc>,
    /// `null` for the event that created the call.
    pub from_state: Option<CallState>,
    pub to_state: CallState,
    /// "user:<email>", "node:<id>" or "system".
    pub actor: String,
    pub reason: String,
    pub fencing_term: u64,
}

impl TryFrom<pb::CallEvent> for CallEvent {
    type Error = ApiError;

    fn try_from(e: pb::CallEvent) -> ApiResult<Self> {
        Ok(CallEvent {
            at: time(e.at, "call event at")?,
            from_state: CallState::from_proto(e.from_state),
            to_state: known(CallState::from_proto(e.to_state), "call state")?,
            seq: e.seq,
            actor: e.actor,
            reason: e.reason,
            fencing_term: e.fencing_term,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallEvents {
    /// Oldest first.
    pub events: Vec<CallEvent>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct CancelRequest {
    /// Why; kept on the call's timeline.
    pub reason: String,
}

/// The calls list filter. `state` may repeat (`state=busy&state=failed`) or be a comma
/// list (`state=busy,failed`).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallFilter {
    pub campaign_id: Option<String>,
    #[param(explode = true)]
    pub state: Option<Vec<CallState>>,
    /// Created at or after this RFC 3339 time.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before this RFC 3339 time.
    pub created_before: Option<DateTime<Utc>>,
    /// Page size: default 100, at most 1000.
    pub limit: Option<u32>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

fn parse_time(field: &str, v: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.trim()).map(|t| t.with_timezone(&Utc)).map_err(|e| {
        ApiError::invalid(format!(
            "query parameter {field}: {v:?} is not an RFC 3339 time such as 2025-05-01T12:00:00Z ({e})"
        ))
    })
}

fn parse_state(v: &str) -> ApiResult<CallState> {
    serde_json::from_value(serde_json::Value::String(v.trim().to_string()))
        .map_err(|e| ApiError::invalid(format!("query parameter state: {e}")))
}

impl CallFilter {
    /// Parses the query string by hand, since `state` may repeat; unknown parameters are
    /// ignored like everywhere else.
    pub fn parse(query: &str) -> ApiResult<Self> {
        let mut f = CallFilter::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let non_blank = || (!value.trim().is_empty()).then(|| value.trim().to_string());
            match key.as_ref() {
                "campaign_id" => f.campaign_id = non_blank(),
                "page_token" => f.page_token = non_blank(),
                "created_after" => {
                    f.created_after = non_blank().map(|v| parse_time("created_after", &v)).transpose()?
                }
                "created_before" => {
                    f.created_before = non_blank().map(|v| parse_time("created_before", &v)).transpose()?
                }
                "limit" => {
                    f.limit = non_blank()
                        .map(|v| {
                            v.parse::<u32>().map_err(|_| {
                                ApiError::invalid(format!("query parameter limit: {v:?} is not a whole number"))
                            })
                        })
                        .transpose()?
                }
                "state" => {
                    let states = f.state.get_or_insert_with(Vec::new);
                    for s in value.split(',').filter(|s| !s.trim().is_empty()) {
                        states.push(parse_state(s)?);
                    }
                }
                _ => {}
            }
        }
        Ok(f)
    }
}

impl From<CallFilter> for pb::ListCallsRequest {
    fn from(f: CallFilter) -> Self {
        pb::ListCallsRequest {
            campaign_id: f.campaign_id.unwrap_or_default(),
            states: f.state.unwrap_or_default().into_iter().map(CallState::to_proto).collect(),
            created_after: f.created_after.map(to_proto_time),
            created_before: f.created_before.map(to_proto_time),
            limit: f.limit.unwrap_or(0),
            page_token: f.page_token.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_repeat_or_come_as_a_comma_list() {
        let f = CallFilter::parse("state=busy,no_answer&state=in_progress&limit=5&other=x").unwrap();
        assert_eq!(f.state.unwrap(), [CallState::Busy, CallState::NoAnswer, CallState::InProgress]);
        assert_eq!(f.limit, Some(5));
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let e = CallFilter::parse("state=ringing,lost").unwrap_err();
        assert!(e.message().contains("state") && e.message().contains("`no_answer`"), "{}", e.message());
        let e = CallFilter::parse("created_after=yesterday").unwrap_err();
        assert!(e.message().starts_with("query parameter created_after:"), "{}", e.message());
        let e = CallFilter::parse("limit=ten").unwrap_err();
        assert!(e.message().starts_with("query parameter limit:"), "{}", e.message());
    }
}
