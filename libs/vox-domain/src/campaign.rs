//! Campaigns: numbers, agent, calling window, retry policy and pacing settings.

use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use vox_proto::backend::v1 as pb;
use vox_proto::common::v1 as common;

use crate::call::CallState;
use crate::phone::E164;
use crate::{Error, Result, time};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    Running,
    Paused,
    Completed,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Running => "running",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Completed => "completed",
        }
    }

    pub fn to_proto(self) -> pb::CampaignStatus {
        match self {
            CampaignStatus::Draft => pb::CampaignStatus::Draft,
            CampaignStatus::Running => pb::CampaignStatus::Running,
            CampaignStatus::Paused => pb::CampaignStatus::Paused,
            CampaignStatus::Completed => pb::CampaignStatus::Completed,
        }
    }

    pub fn from_proto_filter(v: i32) -> Result<Option<Self>> {
        match pb::CampaignStatus::try_from(v) {
            Ok(pb::CampaignStatus::Unspecified) => Ok(None),
            Ok(pb::CampaignStatus::Draft) => Ok(Some(CampaignStatus::Draft)),
            Ok(pb::CampaignStatus::Running) => Ok(Some(CampaignStatus::Running)),
            Ok(pb::CampaignStatus::Paused) => Ok(Some(CampaignStatus::Paused)),
            Ok(pb::CampaignStatus::Completed) => Ok(Some(CampaignStatus::Completed)),
            Err(_) => Err(Error::invalid("status", format!("{v} is not a campaign status"))),
        }
    }

    /// The statuses a campaign may be moved to `to` from.
    pub fn allowed_from(to: CampaignStatus) -> &'static [CampaignStatus] {
        match to {
            CampaignStatus::Running => &[CampaignStatus::Draft, CampaignStatus::Paused],
            CampaignStatus::Paused => &[CampaignStatus::Running],
            CampaignStatus::Completed => &[CampaignStatus::Draft, CampaignStatus::Running, CampaignStatus::Paused],
            CampaignStatus::Draft => &[],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    Echo,
    Prompt,
    External,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSettings {
    pub kind: AgentKind,
    pub prompt_key: String,
    pub external_url: String,
    pub params: std::collections::BTreeMap<String, String>,
}

impl AgentSettings {
    pub fn from_proto(field: &str, a: Option<&common::AgentSettings>) -> Result<Self> {
        let Some(a) = a else {
            return Ok(AgentSettings {
                kind: AgentKind::Echo,
                prompt_key: String::new(),
                external_url: String::new(),
                params: Default::default(),
            });
        };
        let kind = match common::AgentKind::try_from(a.kind) {
            Ok(common::AgentKind::Unspecified | common::AgentKind::Echo) => AgentKind::Echo,
            Ok(common::AgentKind::Prompt) => AgentKind::Prompt,
            Ok(common::AgentKind::External) => AgentKind::External,
            Err(_) => {
                return Err(Error::invalid(
                    &format!("{field}.kind"),
                    "AGENT_KIND_ECHO, AGENT_KIND_PROMPT or AGENT_KIND_EXTERNAL",
                ));
            }
        };
        if kind == AgentKind::Prompt && a.prompt_key.trim().is_empty() {
            return Err(Error::invalid(
                &format!("{field}.prompt_key"),
                "required for the prompt agent: the storage key of its WAV",
            ));
        }
        if kind == AgentKind::External && !(a.external_url.starts_with("ws://") || a.external_url.starts_with("wss://"))
        {
            return Err(Error::invalid(
                &format!("{field}.external_url"),
                format!("{:?} is not a ws:// or wss:// URL of the agent server", a.external_url),
            ));
        }
        Ok(AgentSettings {
            kind,
            prompt_key: a.prompt_key.trim().to_string(),
            external_url: a.external_url.clone(),
            params: a.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        })
    }

    pub fn to_proto(&self) -> common::AgentSettings {
        common::AgentSettings {
            kind: match self.kind {
                AgentKind::Echo => common::AgentKind::Echo,
                AgentKind::Prompt => common::AgentKind::Prompt,
                AgentKind::External => common::AgentKind::External,
            } as i32,
            prompt_key: self.prompt_key.clone(),
            external_url: self.external_url.clone(),
            params: self.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

/// When calls may be placed, in the campaign's own time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallingWindow {
    pub time_zone: String,
    pub start: NaiveTime,
    /// Exclusive; 23:59:59.999 stands for "24:00".
    pub end: NaiveTime,
    /// ISO weekdays 1..=7; empty = every day.
    pub days: Vec<u32>,
}

impl CallingWindow {
    pub fn from_proto(w: Option<&pb::CallingWindow>) -> Result<Self> {
        let Some(w) = w else {
            return Err(Error::invalid("window.time_zone", "required: an IANA time zone such as \"America/New_York\""));
        };
        let tz = w.time_zone.trim();
        if tz.parse::<chrono_tz::Tz>().is_err() {
            return Err(Error::invalid(
                "window.time_zone",
                format!("{tz:?} is not an IANA time zone; use a name such as \"America/New_York\" or \"UTC\""),
            ));
        }
        let start = parse_hhmm("window.start", &w.start, "09:00")?;
        let end = parse_hhmm("window.end", &w.end, "21:00")?;
        if start >= end {
            return Err(Error::invalid("window.end", format!("{} is not after window.start {}", w.end, w.start)));
        }
        let mut days = w.days.clone();
        if let Some(bad) = days.iter().find(|d| !(1..=7).contains(*d)) {
            return Err(Error::invalid(
                "window.days",
                format!("{bad} is not an ISO weekday (1 = Monday .. 7 = Sunday)"),
            ));
        }
        days.sort_unstable();
        days.dedup();
        Ok(CallingWindow { time_zone: tz.to_string(), start, end, days })
    }

    pub fn to_proto(&self) -> pb::CallingWindow {
        let end = if self.end == end_of_day() { "24:00".to_string() } else { self.end.format("%H:%M").to_string() };
        pb::CallingWindow {
            time_zone: self.time_zone.clone(),
            start: self.start.format("%H:%M").to_string(),
            end,
            days: self.days.clone(),
        }
    }

    /// True when `at` falls inside the window in the campaign's time zone.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let Ok(tz) = self.time_zone.parse::<chrono_tz::Tz>() else { return false };
        let local = at.with_timezone(&tz);
        let day_ok = self.days.is_empty() || self.days.contains(&local.weekday().number_from_monday());
        let t = local.time();
        day_ok && t >= self.start && t < self.end
    }
}

fn end_of_day() -> NaiveTime {
    NaiveTime::from_hms_milli_opt(23, 59, 59, 999).unwrap_or(NaiveTime::MIN)
}

fn parse_hhmm(field: &str, s: &str, default: &str) -> Result<NaiveTime> {
    let s = if s.trim().is_empty() { default } else { s.trim() };
    if s == "24:00" {
        return Ok(end_of_day());
    }
    NaiveTime::parse_from_str(s, "%H:%M")
        .map_err(|_| Error::invalid(field, format!("{s:?} is not a time of day; use 24-hour HH:MM such as \"09:00\"")))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff_seconds: u32,
    pub backoff_multiplier: f64,
    pub retry_on: Vec<CallState>,
}

impl RetryPolicy {
    /// How long to wait before the attempt after `attempt` (1-based).
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let factor = self.backoff_multiplier.powi(attempt.saturating_sub(1) as i32);
        let secs = (f64::from(self.backoff_seconds) * factor).min(30.0 * 86_400.0);
        Duration::milliseconds((secs * 1000.0) as i64)
    }

    fn from_proto(r: Option<&pb::RetryPolicy>) -> Result<Self> {
        let Some(r) = r else {
            return Ok(RetryPolicy {
                max_attempts: 1,
                backoff_seconds: 300,
                backoff_multiplier: 1.0,
                retry_on: vec![],
            });
        };
        let max_attempts = if r.max_attempts == 0 { 1 } else { r.max_attempts };
        if max_attempts > 20 {
            return Err(Error::invalid("retry.max_attempts", format!("{max_attempts} is too many; use 1-20")));
        }
        let backoff_seconds = if r.backoff_seconds == 0 { 300 } else { r.backoff_seconds };
        if backoff_seconds > 7 * 86_400 {
            return Err(Error::invalid("retry.backoff_seconds", "at most 604800 (a week)"));
        }
        let backoff_multiplier = if r.backoff_multiplier == 0.0 { 1.0 } else { r.backoff_multiplier };
        if !(1.0..=10.0).contains(&backoff_multiplier) {
            return Err(Error::invalid(
                "retry.backoff_multiplier",
                format!("{backoff_multiplier} is outside 1.0-10.0"),
            ));
        }
        let mut retry_on = Vec::new();
        for (i, v) in r.retry_on.iter().enumerate() {
            let state = CallState::from_proto(&format!("retry.retry_on[{i}]"), *v)?;
            if !matches!(
                state,
                CallState::NoAnswer | CallState::Busy | CallState::Failed | CallState::Abandoned | CallState::Machine
            ) {
                return Err(Error::invalid(
                    &format!("retry.retry_on[{i}]"),
                    format!("{state} cannot be retried; use no_answer, busy, failed, abandoned or machine"),
                ));
            }
            if !retry_on.contains(&state) {
                retry_on.push(state);
            }
        }
        if retry_on.is_empty() && max_attempts > 1 {
            retry_on = vec![CallState::NoAnswer, CallState::Busy];
        }
        Ok(RetryPolicy { max_attempts, backoff_seconds, backoff_multiplier, retry_on })
    }

    fn to_proto(&self) -> pb::RetryPolicy {
        pb::RetryPolicy {
            max_attempts: self.max_attempts,
            backoff_seconds: self.backoff_seconds,
            backoff_multiplier: self.backoff_multiplier,
            retry_on: self.retry_on.iter().map(|s| s.to_proto() as i32).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PacingMode {
    Predictive,
    Progressive,
    FixedRatio,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pacing {
    pub mode: PacingMode,
    pub fixed_ratio: f64,
    pub abandon_target: f64,
    pub max_calls_per_second: u32,
}

impl Pacing {
    fn from_proto(p: Option<&pb::Pacing>) -> Result<Self> {
        let default = pb::Pacing::default();
        let p = p.unwrap_or(&default);
        let mode = match pb::PacingMode::try_from(p.mode) {
            Ok(pb::PacingMode::Unspecified | pb::PacingMode::Predictive) => PacingMode::Predictive,
            Ok(pb::PacingMode::Progressive) => PacingMode::Progressive,
            Ok(pb::PacingMode::FixedRatio) => PacingMode::FixedRatio,
            Err(_) => {
                return Err(Error::invalid(
                    "pacing.mode",
                    "PACING_MODE_PREDICTIVE, PACING_MODE_PROGRESSIVE or PACING_MODE_FIXED_RATIO",
                ));
            }
        };
        let fixed_ratio = if p.fixed_ratio == 0.0 { 1.0 } else { p.fixed_ratio };
        if !(1.0..=10.0).contains(&fixed_ratio) {
            return Err(Error::invalid(
                "pacing.fixed_ratio",
                format!("{fixed_ratio} is outside 1.0-10.0 calls per free slot"),
            ));
        }
        let abandon_target = if p.abandon_target == 0.0 { 0.03 } else { p.abandon_target };
        if !(abandon_target > 0.0 && abandon_target <= 0.5) {
            return Err(Error::invalid(
                "pacing.abandon_target",
                format!("{abandon_target} is outside (0, 0.5]; 0.03 means 3%"),
            ));
        }
        if p.max_calls_per_second > 1000 {
            return Err(Error::invalid("pacing.max_calls_per_second", "at most 1000"));
        }
        Ok(Pacing { mode, fixed_ratio, abandon_target, max_calls_per_second: p.max_calls_per_second })
    }

    fn to_proto(&self) -> pb::Pacing {
        pb::Pacing {
            mode: match self.mode {
                PacingMode::Predictive => pb::PacingMode::Predictive,
                PacingMode::Progressive => pb::PacingMode::Progressive,
                PacingMode::FixedRatio => pb::PacingMode::FixedRatio,
            } as i32,
            fixed_ratio: self.fixed_ratio,
            abandon_target: self.abandon_target,
            max_calls_per_second: self.max_calls_per_second,
        }
    }
}

/// The rules a campaign's abandons and rings are held to. Both regimes allow abandons of
/// at most [`REGULATED_ABANDON_LIMIT`] of live answers and want unanswered calls to ring
/// at least [`REGULATED_MIN_RING_SECONDS`]; they differ in the period the rate is judged
/// over: FCC/TCPA (US) 30 days per campaign, Ofcom (UK) 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComplianceRegime {
    #[default]
    Fcc,
    Ofcom,
}

/// The abandon rate both regimes allow: 3% of live answers.
pub const REGULATED_ABANDON_LIMIT: f64 = 0.03;
/// The ring time both regimes ask for before an unanswered call is given up.
pub const REGULATED_MIN_RING_SECONDS: u32 = 15;
/// The longest ring floor a campaign may set.
pub const MAX_MIN_RING_SECONDS: u32 = 120;

impl ComplianceRegime {
    pub fn as_str(self) -> &'static str {
        match self {
            ComplianceRegime::Fcc => "fcc",
            ComplianceRegime::Ofcom => "ofcom",
        }
    }

    /// The rolling period the abandon rate is judged over.
    pub fn period(self) -> Duration {
        match self {
            ComplianceRegime::Fcc => Duration::days(30),
            ComplianceRegime::Ofcom => Duration::hours(24),
        }
    }

    pub fn to_proto(self) -> pb::ComplianceRegime {
        match self {
            ComplianceRegime::Fcc => pb::ComplianceRegime::Fcc,
            ComplianceRegime::Ofcom => pb::ComplianceRegime::Ofcom,
        }
    }
}

/// What a callee hears when they answer and no worker is free within the connect window:
/// voxgate plays it (Twilio `<Say>`) before the carrier hangs up, on the answer webhook's
/// path (end reason `no_free_slot: no worker within …`). The compliance report quotes it.
pub const ABANDON_MESSAGE: &str =
    "Sorry, all of our agents are busy right now. We will call you back shortly. Goodbye.";
/// The end reason the answer webhook gives an abandon, after which [`ABANDON_MESSAGE`]
/// was played.
pub const ABANDON_WITH_MESSAGE_REASON: &str = "no_free_slot: no worker within";

/// A campaign's regime and ring floor, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compliance {
    pub regime: ComplianceRegime,
    /// Seconds an unanswered dial rings at least before the dialler gives up, whatever
    /// the provider's timeout: at least the regime's floor.
    pub min_ring_seconds: u32,
}

/// Campaigns stored before the setting existed read as FCC with its 15 s floor.
impl Default for Compliance {
    fn default() -> Self {
        Compliance { regime: ComplianceRegime::Fcc, min_ring_seconds: REGULATED_MIN_RING_SECONDS }
    }
}

impl Compliance {
    fn from_proto(c: Option<&pb::Compliance>) -> Result<Self> {
        let Some(c) = c else { return Ok(Compliance::default()) };
        let regime = match pb::ComplianceRegime::try_from(c.regime) {
            Ok(pb::ComplianceRegime::Unspecified | pb::ComplianceRegime::Fcc) => ComplianceRegime::Fcc,
            Ok(pb::ComplianceRegime::Ofcom) => ComplianceRegime::Ofcom,
            Err(_) => {
                return Err(Error::invalid(
                    "compliance.regime",
                    format!("{} is not a regime; use COMPLIANCE_REGIME_FCC or COMPLIANCE_REGIME_OFCOM", c.regime),
                ));
            }
        };
        let min_ring_seconds = match c.min_ring_seconds {
            0 => REGULATED_MIN_RING_SECONDS,
            n if n < REGULATED_MIN_RING_SECONDS => {
                return Err(Error::invalid(
                    "compliance.min_ring_seconds",
                    format!(
                        "{n} is below the {} floor of {REGULATED_MIN_RING_SECONDS} s; use \
                         {REGULATED_MIN_RING_SECONDS}-{MAX_MIN_RING_SECONDS}, or 0 for the floor",
                        regime.as_str()
                    ),
                ));
            }
            n if n > MAX_MIN_RING_SECONDS => {
                return Err(Error::invalid(
                    "compliance.min_ring_seconds",
                    format!(
                        "{n} is over {MAX_MIN_RING_SECONDS} s; use {REGULATED_MIN_RING_SECONDS}-{MAX_MIN_RING_SECONDS}"
                    ),
                ));
            }
            n => n,
        };
        Ok(Compliance { regime, min_ring_seconds })
    }

    fn to_proto(self) -> pb::Compliance {
        pb::Compliance { regime: self.regime.to_proto() as i32, min_ring_seconds: self.min_ring_seconds }
    }
}

/// Everything an operator sets on a campaign, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignSpec {
    pub name: String,
    pub region_id: String,
    pub caller_id: E164,
    pub agent: AgentSettings,
    pub weight: u32,
    pub max_concurrency: u32,
    pub window: CallingWindow,
    pub retry: RetryPolicy,
    pub pacing: Pacing,
    #[serde(default)]
    pub compliance: Compliance,
}

impl CampaignSpec {
    /// The abandon rate the campaign is held to: the lower of its pacing target and the
    /// regime's limit, so a target set above 3% never lets the ledger run over the rule.
    pub fn abandon_limit(&self) -> f64 {
        self.pacing.abandon_target.min(REGULATED_ABANDON_LIMIT)
    }

    /// Validates a spec; unset numbers take their documented defaults (weight 1,
    /// max_concurrency 10, one attempt, predictive pacing at 3% abandon, 09:00-21:00).
    pub fn from_proto(s: Option<&pb::CampaignSpec>) -> Result<Self> {
        let Some(s) = s else { return Err(Error::invalid("spec", "required")) };
        let name = s.name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(Error::invalid("spec.name", "required, at most 200 characters"));
        }
        if s.region_id.trim().is_empty() {
            return Err(Error::invalid("spec.region_id", "required: the region whose fleet places the calls"));
        }
        let weight = if s.weight == 0 { 1 } else { s.weight };
        if weight > 1000 {
            return Err(Error::invalid("spec.weight", format!("{weight} is outside 1-1000")));
        }
        let max_concurrency = if s.max_concurrency == 0 { 10 } else { s.max_concurrency };
        if max_concurrency > 100_000 {
            return Err(Error::invalid("spec.max_concurrency", format!("{max_concurrency} is outside 1-100000")));
        }
        Ok(CampaignSpec {
            name: name.to_string(),
            region_id: s.region_id.trim().to_string(),
            caller_id: E164::field("spec.caller_id", &s.caller_id)?,
            agent: AgentSettings::from_proto("spec.agent", s.agent.as_ref())?,
            weight,
            max_concurrency,
            window: CallingWindow::from_proto(s.window.as_ref()).map_err(|e| prefix(e, "spec."))?,
            retry: RetryPolicy::from_proto(s.retry.as_ref()).map_err(|e| prefix(e, "spec."))?,
            pacing: Pacing::from_proto(s.pacing.as_ref()).map_err(|e| prefix(e, "spec."))?,
            compliance: Compliance::from_proto(s.compliance.as_ref()).map_err(|e| prefix(e, "spec."))?,
        })
    }

    pub fn to_proto(&self) -> pb::CampaignSpec {
        pb::CampaignSpec {
            name: self.name.clone(),
            region_id: self.region_id.clone(),
            caller_id: self.caller_id.to_string(),
            agent: Some(self.agent.to_proto()),
            weight: self.weight,
            max_concurrency: self.max_concurrency,
            window: Some(self.window.to_proto()),
            retry: Some(self.retry.to_proto()),
            pacing: Some(self.pacing.to_proto()),
            compliance: Some(self.compliance.to_proto()),
        }
    }
}

fn prefix(mut e: Error, p: &str) -> Error {
    e.message = format!("{p}{}", e.message);
    e
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: String,
    pub spec: CampaignSpec,
    pub status: CampaignStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CampaignCounts {
    pub total: u64,
    pub pending: u64,
    pub live: u64,
    pub completed: u64,
    pub unsuccessful: u64,
}

impl CampaignCounts {
    pub fn add(&mut self, state: CallState, n: u64) {
        self.total += n;
        match state {
            CallState::Pending => self.pending += n,
            CallState::Completed => self.completed += n,
            s if s.is_terminal() => self.unsuccessful += n,
            _ => self.live += n,
        }
    }
}

pub fn campaign_to_proto(c: &Campaign, counts: CampaignCounts) -> pb::Campaign {
    pb::Campaign {
        id: c.id.clone(),
        spec: Some(c.spec.to_proto()),
        status: c.status.to_proto() as i32,
        counts: Some(pb::CampaignCounts {
            total: counts.total,
            pending: counts.pending,
            live: counts.live,
            completed: counts.completed,
            unsuccessful: counts.unsuccessful,
        }),
        created_at: Some(time::to_proto(c.created_at)),
        updated_at: Some(time::to_proto(c.updated_at)),
    }
}

/// Most numbers one upload may carry, through either RPC (voxgate may be set lower). The
/// whole upload is held in voxbridge's memory until it is stored, all or nothing.
pub const MAX_UPLOAD_ROWS: usize = 200_000;
/// Most numbers one `ImportNumbersRequest` message may carry, so that every message stays
/// far below the 4 MiB gRPC message limit.
pub const MAX_IMPORT_BATCH: usize = 5_000;
/// Inputs longer than this (after trimming) are rejected without being parsed, and echoed
/// back cut to this length: no phone number is nearly this long, and a rejection must not
/// repeat a megabyte of garbage.
pub const MAX_NUMBER_INPUT_CHARS: usize = 64;
/// Most rejections one answer lists (the first by row); `rejected_count` counts them all,
/// so a file of garbage gets a readable answer that fits in one gRPC message.
pub const MAX_LISTED_REJECTIONS: usize = 1_000;

/// Numbers of an upload, split into valid rows and rejections (each with the row the
/// caller numbered it by).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NumberUpload {
    pub valid: Vec<(u32, E164)>,
    /// (row, input as echoed back, reason), in row order.
    pub rejected: Vec<(u32, String, String)>,
}

impl NumberUpload {
    /// Validates each row (rows numbered 1, 2, 3 …) and reports duplicates inside the upload.
    pub fn parse(rows: &[String]) -> Result<Self> {
        let numbered: Vec<(u32, &str)> = rows.iter().enumerate().map(|(i, r)| (i as u32 + 1, r.as_str())).collect();
        Self::parse_numbered(&numbered)
    }

    /// Validates each (row, input); rows are the caller's (a file's rows), ascending, and
    /// name duplicates ("duplicate of row 2").
    pub fn parse_numbered(rows: &[(u32, &str)]) -> Result<Self> {
        if rows.is_empty() {
            return Err(Error::invalid("numbers", "no numbers given"));
        }
        if rows.len() > MAX_UPLOAD_ROWS {
            return Err(Error::invalid(
                "numbers",
                format!("{} rows; upload at most {MAX_UPLOAD_ROWS} at a time", rows.len()),
            ));
        }
        let mut out = NumberUpload::default();
        let mut seen = std::collections::HashMap::new();
        for &(row, raw) in rows {
            let trimmed = raw.trim();
            if trimmed.chars().count() > MAX_NUMBER_INPUT_CHARS {
                let why = format!(
                    "longer than {MAX_NUMBER_INPUT_CHARS} characters; expected an E.164 number such as +14155550123"
                );
                out.rejected.push((row, echo(trimmed), why));
                continue;
            }
            match E164::parse(raw) {
                Ok(n) => {
                    if let Some(first) = seen.get(&n) {
                        out.rejected.push((row, raw.to_string(), format!("duplicate of row {first}")));
                    } else {
                        seen.insert(n.clone(), row);
                        out.valid.push((row, n));
                    }
                }
                Err(why) => out.rejected.push((row, raw.to_string(), why)),
            }
        }
        Ok(out)
    }
}

/// `input` cut to [`MAX_NUMBER_INPUT_CHARS`] characters, marked with "…" when cut.
pub fn echo(input: &str) -> String {
    match input.char_indices().nth(MAX_NUMBER_INPUT_CHARS) {
        Some((at, _)) => format!("{}…", &input[..at]),
        None => input.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> pb::CampaignSpec {
        pb::CampaignSpec {
            name: "Renewals".into(),
            region_id: "rg_1".into(),
            caller_id: "+14155550100".into(),
            window: Some(pb::CallingWindow { time_zone: "America/New_York".into(), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_fill_unset_fields() {
        let s = CampaignSpec::from_proto(Some(&spec())).unwrap();
        assert_eq!((s.weight, s.max_concurrency), (1, 10));
        assert_eq!(s.pacing.mode, PacingMode::Predictive);
        assert_eq!(s.pacing.abandon_target, 0.03);
        assert_eq!(s.retry.max_attempts, 1);
        assert_eq!(s.window.to_proto().start, "09:00");
        assert_eq!(s.agent.kind, AgentKind::Echo);
        assert_eq!(s.compliance, Compliance { regime: ComplianceRegime::Fcc, min_ring_seconds: 15 });
    }

    #[test]
    fn compliance_is_a_setting_with_a_ring_floor() {
        let ofcom = pb::CampaignSpec {
            compliance: Some(pb::Compliance { regime: pb::ComplianceRegime::Ofcom as i32, min_ring_seconds: 20 }),
            ..spec()
        };
        let s = CampaignSpec::from_proto(Some(&ofcom)).unwrap();
        assert_eq!(s.compliance, Compliance { regime: ComplianceRegime::Ofcom, min_ring_seconds: 20 });
        assert_eq!(s.compliance.regime.period(), Duration::hours(24));
        assert_eq!(ComplianceRegime::Fcc.period(), Duration::days(30));
        assert_eq!(CampaignSpec::from_proto(Some(&s.to_proto())).unwrap(), s, "round trip");
        let short = pb::CampaignSpec { compliance: Some(pb::Compliance { regime: 0, min_ring_seconds: 10 }), ..spec() };
        let err = CampaignSpec::from_proto(Some(&short)).unwrap_err();
        assert!(err.message.starts_with("spec.compliance.min_ring_seconds: 10 is below the fcc floor"), "{err}");
        let bad = pb::CampaignSpec { compliance: Some(pb::Compliance { regime: 9, min_ring_seconds: 0 }), ..spec() };
        assert!(CampaignSpec::from_proto(Some(&bad)).unwrap_err().message.starts_with("spec.compliance.regime:"));
        // A campaign stored before the setting existed reads as FCC.
        let mut stored = serde_json::to_value(&s).unwrap();
        stored.as_object_mut().unwrap().remove("compliance");
        let old: CampaignSpec = serde_json::from_value(stored).unwrap();
        assert_eq!(old.compliance, Compliance::default());
        let high = CampaignSpec { pacing: Pacing { abandon_target: 0.05, ..s.pacing.clone() }, ..s };
        assert_eq!(high.abandon_limit(), 0.03);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases: Vec<(pb::CampaignSpec, &str)> = vec![
            (pb::CampaignSpec { caller_id: "555".into(), ..spec() }, "spec.caller_id:"),
            (
                pb::CampaignSpec {
                    window: Some(pb::CallingWindow { time_zone: "Mars/Olympus".into(), ..Default::default() }),
                    ..spec()
                },
                "spec.window.time_zone:",
            ),
            (
                pb::CampaignSpec {
                    window: Some(pb::CallingWindow {
                        time_zone: "UTC".into(),
                        start: "18:00".into(),
                        end: "09:00".into(),
                        days: vec![],
                    }),
                    ..spec()
                },
                "spec.window.end:",
            ),
            (pb::CampaignSpec { weight: 5000, ..spec() }, "spec.weight:"),
            (
                pb::CampaignSpec { pacing: Some(pb::Pacing { abandon_target: 0.9, ..Default::default() }), ..spec() },
                "spec.pacing.abandon_target:",
            ),
            (
                pb::CampaignSpec {
                    retry: Some(pb::RetryPolicy {
                        retry_on: vec![pb::CallState::Completed as i32],
                        ..Default::default()
                    }),
                    ..spec()
                },
                "spec.retry.retry_on[0]:",
            ),
        ];
        for (s, field) in cases {
            let err = CampaignSpec::from_proto(Some(&s)).unwrap_err();
            assert!(err.message.starts_with(field), "expected {field}, got {err}");
        }
    }

    #[test]
    fn window_follows_the_campaign_time_zone() {
        let w = CallingWindow::from_proto(Some(&pb::CallingWindow {
            time_zone: "America/New_York".into(),
            start: "09:00".into(),
            end: "17:00".into(),
            days: vec![1, 2, 3, 4, 5],
        }))
        .unwrap();
        // Monday 2026-11-23 14:00 UTC = 09:00 in New York.
        let monday_9am = DateTime::parse_from_rfc3339("2026-11-23T14:00:00Z").unwrap().to_utc();
        assert!(w.contains(monday_9am));
        assert!(!w.contains(monday_9am - Duration::minutes(1)));
        assert!(!w.contains(monday_9am + Duration::hours(8)));
        // Saturday.
        assert!(!w.contains(monday_9am + Duration::days(5)));
    }

    #[test]
    fn uploads_report_rows() {
        let rows: Vec<String> = ["+14155550123", "nope", "+1 415 555 0123", "+14155550124"].map(String::from).to_vec();
        let up = NumberUpload::parse(&rows).unwrap();
        assert_eq!(up.valid.len(), 2);
        assert_eq!(up.rejected.len(), 2);
        assert_eq!(up.rejected[0].0, 2);
        assert_eq!(up.rejected[1], (3, "+1 415 555 0123".into(), "duplicate of row 1".into()));
    }

    #[test]
    fn uploads_keep_the_callers_rows_and_cut_long_inputs() {
        let long = "9".repeat(5000);
        let rows = [(2, "+14155550123"), (5, long.as_str()), (9, "+1 415 555 0123")];
        let up = NumberUpload::parse_numbered(&rows).unwrap();
        assert_eq!(up.valid, vec![(2, E164::parse("+14155550123").unwrap())]);
        assert_eq!(up.rejected[0].0, 5);
        assert_eq!(up.rejected[0].1.chars().count(), MAX_NUMBER_INPUT_CHARS + 1, "cut, with a mark");
        assert!(up.rejected[0].2.starts_with("longer than 64 characters"), "{:?}", up.rejected[0].2);
        assert_eq!(up.rejected[1], (9, "+1 415 555 0123".into(), "duplicate of row 2".into()));
        let too_many: Vec<String> = vec!["+14155550123".into(); MAX_UPLOAD_ROWS + 1];
        let e = NumberUpload::parse(&too_many).unwrap_err();
        assert_eq!(e.message, "numbers: 200001 rows; upload at most 200000 at a time");
    }
}
