//! A campaign's abandon ledger, and the compliance report's query.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vox_proto::backend::v1 as pb;

use super::campaign::ComplianceRegime;
use super::{known, time};
use crate::error::{ApiError, ApiResult};

/// Abandons over live answers in `[from, to)`. A live answer is a call a person answered
/// (it reached `answered` and was not then found to be a machine), however it ended; an
/// abandon is one that ended `abandoned`. Machine answers are counted apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AbandonPeriod {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub live_answers: u64,
    pub abandons: u64,
    pub machine_answers: u64,
    /// abandons / live_answers; 0 with no live answer.
    pub abandon_rate: f64,
}

impl TryFrom<Option<pb::AbandonPeriod>> for AbandonPeriod {
    type Error = ApiError;

    fn try_from(p: Option<pb::AbandonPeriod>) -> ApiResult<Self> {
        let p = p.ok_or_else(|| ApiError::internal("voxbridge sent a ledger without a period"))?;
        Ok(AbandonPeriod {
            from: time(p.from, "period from")?,
            to: time(p.to, "period to")?,
            live_answers: p.live_answers,
            abandons: p.abandons,
            machine_answers: p.machine_answers,
            abandon_rate: p.abandon_rate,
        })
    }
}

/// The campaign's abandon rate over the rolling 24 hours and 30 days before now, from
/// its call records.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AbandonLedger {
    pub campaign_id: String,
    pub regime: ComplianceRegime,
    /// The rate the campaign is held to: its pacing target, at most 3%.
    pub limit: f64,
    pub last_24_hours: AbandonPeriod,
    pub last_30_days: AbandonPeriod,
    /// The period the regime judges by: 24 hours (Ofcom) or 30 days (FCC).
    pub regulated: AbandonPeriod,
    pub within_limit: bool,
    /// Abandons the regulated period can still take within the limit; negative once over.
    pub abandon_headroom: f64,
}

impl TryFrom<pb::AbandonLedger> for AbandonLedger {
    type Error = ApiError;

    fn try_from(l: pb::AbandonLedger) -> ApiResult<Self> {
        Ok(AbandonLedger {
            regime: known(ComplianceRegime::from_proto(l.regime), "compliance regime")?,
            limit: l.limit,
            last_24_hours: l.last_24_hours.try_into()?,
            last_30_days: l.last_30_days.try_into()?,
            regulated: l.regulated.try_into()?,
            within_limit: l.within_limit,
            abandon_headroom: l.abandon_headroom,
            campaign_id: l.campaign_id,
        })
    }
}

/// The report's period, `[from, to)`, on the instant each call was answered.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportPeriod {
    /// RFC 3339, e.g. 2026-11-01T00:00:00Z.
    pub from: DateTime<Utc>,
    /// RFC 3339, exclusive; at most 400 days after `from`.
    pub to: DateTime<Utc>,
}
