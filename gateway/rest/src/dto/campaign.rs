//! Campaigns: settings, status and counts, and the numbers upload's result.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vox_proto::backend::v1 as pb;
use vox_proto::common::v1 as common;

use super::call::CallState;
use super::{convert_all, known, non_empty, time, wire_enum};
use crate::error::{ApiError, ApiResult};

wire_enum! {
    pub enum CampaignStatus: pb::CampaignStatus {
        Draft = Draft,
        Running = Running,
        Paused = Paused,
        /// Final: pending calls were canceled.
        Completed = Completed,
    }
}

wire_enum! {
    pub enum PacingMode: pb::PacingMode {
        /// Dials from measured answer rate, ring and talk times, under the abandon target.
        Predictive = Predictive,
        /// One call per free slot.
        Progressive = Progressive,
        /// `fixed_ratio` calls per free slot.
        FixedRatio = FixedRatio,
    }
}

wire_enum! {
    pub enum ComplianceRegime: pb::ComplianceRegime {
        /// US FCC/TCPA: abandons at most 3% of live answers over 30 days; ring at least 15 s.
        Fcc = Fcc,
        /// UK Ofcom: abandons at most 3% of live answers over 24 hours; ring at least 15 s.
        Ofcom = Ofcom,
    }
}

wire_enum! {
    pub enum AgentKind: common::AgentKind {
        /// Plays the caller's audio back.
        Echo = Echo,
        /// Plays a WAV from the region's storage, then answers DTMF choices.
        Prompt = Prompt,
        /// Relays audio and events to a customer's agent server over WebSocket.
        External = External,
    }
}

/// Everything an operator sets on a campaign. Omitted numbers take voxbridge's defaults
/// (weight 1, max_concurrency 10, one attempt, predictive pacing at 3% abandon).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CampaignSpec {
    pub name: String,
    pub region_id: String,
    /// E.164 number presented to callees.
    pub caller_id: String,
    #[serde(default)]
    pub agent: Option<AgentSettings>,
    /// Relative share of dialling capacity among running campaigns, 1..1000.
    #[serde(default)]
    pub weight: u32,
    /// Most live calls at once, 1..100000.
    #[serde(default)]
    pub max_concurrency: u32,
    #[serde(default)]
    pub window: Option<CallingWindow>,
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    #[serde(default)]
    pub pacing: Option<Pacing>,
    /// The rules the campaign's abandons and rings are held to; omitted: FCC, 15 s.
    #[serde(default)]
    pub compliance: Option<Compliance>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Compliance {
    pub regime: ComplianceRegime,
    /// Seconds an unanswered dial rings at least, whatever the provider's timeout;
    /// 0 or omitted: the regime's floor (15). 15..120.
    #[serde(default)]
    pub min_ring_seconds: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentSettings {
    pub kind: AgentKind,
    /// Storage key of the WAV the prompt agent plays.
    #[serde(default)]
    pub prompt_key: Option<String>,
    /// ws:// or wss:// URL of the external agent server.
    #[serde(default)]
    pub external_url: Option<String>,
    /// Free-form settings handed to the agent (voice, language, menu choices).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// When calls may be placed, in the campaign's time zone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct CallingWindow {
    /// IANA name, e.g. "America/New_York".
    pub time_zone: String,
    /// "HH:MM", 24-hour.
    pub start: String,
    pub end: String,
    /// ISO weekdays 1 (Monday) .. 7 (Sunday); empty means every day.
    pub days: Vec<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct RetryPolicy {
    /// Attempts per number including the first; 1 means no retry.
    pub max_attempts: u32,
    pub backoff_seconds: u32,
    /// Each further retry waits this many times longer (1.0 = constant).
    pub backoff_multiplier: f64,
    /// Outcomes that are retried: any of no_answer, busy, failed, abandoned.
    pub retry_on: Vec<CallState>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Pacing {
    pub mode: PacingMode,
    #[serde(default)]
    pub fixed_ratio: f64,
    /// Highest share of live answers allowed to be abandoned; default 0.03.
    #[serde(default)]
    pub abandon_target: f64,
    /// Calls started per second for this campaign; 0 = no campaign cap.
    #[serde(default)]
    pub max_calls_per_second: u32,
}

impl From<CampaignSpec> for pb::CampaignSpec {
    fn from(s: CampaignSpec) -> Self {
        pb::CampaignSpec {
            name: s.name,
            region_id: s.region_id,
            caller_id: s.caller_id,
            agent: s.agent.map(|a| common::AgentSettings {
                kind: a.kind.to_proto(),
                prompt_key: a.prompt_key.unwrap_or_default(),
                external_url: a.external_url.unwrap_or_default(),
                params: a.params.into_iter().collect(),
            }),
            weight: s.weight,
            max_concurrency: s.max_concurrency,
            window: s.window.map(|w| pb::CallingWindow {
                time_zone: w.time_zone,
                start: w.start,
                end: w.end,
                days: w.days,
            }),
            retry: s.retry.map(|r| pb::RetryPolicy {
                max_attempts: r.max_attempts,
                backoff_seconds: r.backoff_seconds,
                backoff_multiplier: r.backoff_multiplier,
                retry_on: r.retry_on.into_iter().map(CallState::to_proto).collect(),
            }),
            pacing: s.pacing.map(|p| pb::Pacing {
                mode: p.mode.to_proto(),
                fixed_ratio: p.fixed_ratio,
                abandon_target: p.abandon_target,
                max_calls_per_second: p.max_calls_per_second,
            }),
            compliance: s
                .compliance
                .map(|c| pb::Compliance { regime: c.regime.to_proto(), min_ring_seconds: c.min_ring_seconds }),
        }
    }
}

impl TryFrom<pb::CampaignSpec> for CampaignSpec {
    type Error = ApiError;

    fn try_from(s: pb::CampaignSpec) -> ApiResult<Self> {
        let agent = s
            .agent
            .map(|a| -> ApiResult<AgentSettings> {
                Ok(AgentSettings {
                    kind: known(AgentKind::from_proto(a.kind), "agent kind")?,
                    prompt_key: non_empty(a.prompt_key),
                    external_url: non_empty(a.external_url),
                    params: a.params.into_iter().collect(),
                })
            })
            .transpose()?;
        let retry = s
            .retry
            .map(|r| -> ApiResult<RetryPolicy> {
                Ok(RetryPolicy {
                    max_attempts: r.max_attempts,
                    backoff_seconds: r.backoff_seconds,
                    backoff_multiplier: r.backoff_multiplier,
                    retry_on: r
                        .retry_on
                        .into_iter()
                        .map(|v| known(CallState::from_proto(v), "retry_on call state"))
                        .collect::<ApiResult<_>>()?,
                })
            })
            .transpose()?;
        let pacing = s
            .pacing
            .map(|p| -> ApiResult<Pacing> {
                Ok(Pacing {
                    mode: known(PacingMode::from_proto(p.mode), "pacing mode")?,
                    fixed_ratio: p.fixed_ratio,
                    abandon_target: p.abandon_target,
                    max_calls_per_second: p.max_calls_per_second,
                })
            })
            .transpose()?;
        let compliance = s
            .compliance
            .map(|c| -> ApiResult<Compliance> {
                Ok(Compliance {
                    // Unspecified reads as FCC, as voxbridge reads it.
                    regime: ComplianceRegime::from_proto(c.regime).unwrap_or(ComplianceRegime::Fcc),
                    min_ring_seconds: c.min_ring_seconds,
                })
            })
            .transpose()?;
        Ok(CampaignSpec {
            name: s.name,
            region_id: s.region_id,
            caller_id: s.caller_id,
            agent,
            weight: s.weight,
            max_concurrency: s.max_concurrency,
            window: s.window.map(|w| CallingWindow {
                time_zone: w.time_zone,
                start: w.start,
                end: w.end,
                days: w.days,
            }),
            retry,
            pacing,
            compliance,
        })
    }
}

/// How the campaign's calls stand.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CampaignCounts {
    pub total: u64,
    pub pending: u64,
    /// leased, dialing, ringing, answered, attaching, in_progress
    pub live: u64,
    pub completed: u64,
    /// no_answer, busy, failed, abandoned, canceled
    pub unsuccessful: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Campaign {
    pub id: String,
    pub status: CampaignStatus,
    pub spec: CampaignSpec,
    pub counts: CampaignCounts,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<pb::Campaign> for Campaign {
    type Error = ApiError;

    fn try_from(c: pb::Campaign) -> ApiResult<Self> {
        let spec = c.spec.ok_or_else(|| ApiError::internal("voxbridge sent a campaign without its spec"))?;
        let counts = c.counts.unwrap_or_default();
        Ok(Campaign {
            status: known(CampaignStatus::from_proto(c.status), "campaign status")?,
            spec: CampaignSpec::try_from(spec)?,
            counts: CampaignCounts {
                total: counts.total,
                pending: counts.pending,
                live: counts.live,
                completed: counts.completed,
                unsuccessful: counts.unsuccessful,
            },
            created_at: time(c.created_at, "campaign created_at")?,
            updated_at: time(c.updated_at, "campaign updated_at")?,
            id: c.id,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CampaignList {
    pub campaigns: Vec<Campaign>,
}

impl TryFrom<pb::ListCampaignsResponse> for CampaignList {
    type Error = ApiError;

    fn try_from(r: pb::ListCampaignsResponse) -> ApiResult<Self> {
        Ok(CampaignList { campaigns: convert_all(r.campaigns)? })
    }
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignFilter {
    /// Only campaigns in this status.
    pub status: Option<CampaignStatus>,
}

/// Numbers to add as pending calls, one per row; rows are 1-based positions in `numbers`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NumbersUpload {
    #[schema(example = json!(["+14155550123", "+442071838750"]))]
    pub numbers: Vec<String>,
}

/// A row that was not added, and why (invalid, or a duplicate in the upload or campaign).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NumberRejection {
    pub row: u32,
    pub input: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NumbersAdded {
    /// Rows added as pending calls.
    pub accepted: u32,
    /// Rows not added, in row order: the first 1,000 of them.
    pub rejected: Vec<NumberRejection>,
    /// How many rows were not added, in all.
    pub rejected_count: u32,
}

impl From<pb::AddNumbersResponse> for NumbersAdded {
    fn from(r: pb::AddNumbersResponse) -> Self {
        NumbersAdded {
            accepted: r.accepted,
            rejected: r
                .rejected
                .into_iter()
                .map(|n| NumberRejection { row: n.row, input: n.input, reason: n.reason })
                .collect(),
            rejected_count: r.rejected_count,
        }
    }
}
