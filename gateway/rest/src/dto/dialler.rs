//! The outbound dialler's live status and pacing figures.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vox_proto::dialler::v1 as dpb;

use super::opt_time;
use crate::error::{ApiError, ApiResult};

/// One campaign's live pacing figures.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CampaignPacing {
    pub campaign_id: String,
    /// "predictive", "progressive" or "fixed".
    pub mode: String,
    /// Calls placed per free slot in the last tick that dialled.
    pub dial_ratio: f64,
    /// Human answers per ended dial (live estimate).
    pub answer_rate: f64,
    /// Average handle time, seconds.
    pub aht_seconds: f64,
    /// Abandoned / human answers since the dialler started.
    pub abandon_rate: f64,
    pub active_dials: u32,
    pub calls_placed: u64,
    pub calls_answered: u64,
    pub calls_abandoned: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiallerStatus {
    pub node_id: String,
    pub leader: bool,
    /// The fencing term it leads with; 0 on a standby.
    pub term: u64,
    pub last_tick_at: Option<chrono::DateTime<chrono::Utc>>,
    pub healthy: bool,
    /// Why not healthy: "no leadership ...", "voxbridge unreachable ...", "stuck tick ...".
    pub unhealthy_reason: String,
    pub campaigns: Vec<CampaignPacing>,
}

impl TryFrom<dpb::DiallerStatus> for DiallerStatus {
    type Error = ApiError;

    fn try_from(s: dpb::DiallerStatus) -> ApiResult<Self> {
        Ok(DiallerStatus {
            node_id: s.node_id,
            leader: s.leader,
            term: s.term,
            last_tick_at: opt_time(s.last_tick_at, "last_tick_at")?,
            healthy: s.healthy,
            unhealthy_reason: s.unhealthy_reason,
            campaigns: s
                .campaigns
                .into_iter()
                .map(|c| CampaignPacing {
                    campaign_id: c.campaign_id,
                    mode: c.mode,
                    dial_ratio: c.dial_ratio,
                    answer_rate: c.answer_rate,
                    aht_seconds: c.aht_seconds,
                    abandon_rate: c.abandon_rate,
                    active_dials: c.active_dials,
                    calls_placed: c.calls_placed,
                    calls_answered: c.calls_answered,
                    calls_abandoned: c.calls_abandoned,
                })
                .collect(),
        })
    }
}
