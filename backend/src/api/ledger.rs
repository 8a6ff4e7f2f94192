//! The abandon ledger and the compliance report of a campaign, from its call records.
//!
//! Regulators judge abandons per campaign over a rolling period: at most 3% of live
//! answers over 30 days (FCC/TCPA), or over 24 hours (Ofcom). voxbridge counts both
//! periods on every read ([`vox_store::AbandonLedgerStore`]; what a live answer and an
//! abandon are is written there), so the figures are the call records' own and need no
//! running total that could drift. The campaign's regime picks the period it is judged
//! by; its limit is the lower of its pacing target and 3%.
//!
//! The report lists every abandoned call of a period with its ring time (from the
//! dialler's move to `ringing`, or to `dialing` when the carrier sent no ringing, until
//! the answer, from the call's timeline) and what the callee heard, read from how the
//! call ended: the answer webhook plays [`ABANDON_MESSAGE`] before hanging up; a media
//! stream that finds no worker is closed and the carrier hangs up in silence.

use chrono::{DateTime, Duration, Utc};
use vox_domain::call::{Call, CallState};
use vox_domain::campaign::{ABANDON_MESSAGE, ABANDON_WITH_MESSAGE_REASON, Campaign};
use vox_domain::{Error, Result, time};
use vox_proto::backend::v1 as pb;
use vox_store::AnswerTally;

use crate::bridge::Bridge;
use crate::metrics::label;

/// Default and largest page of the report.
const REPORT_PAGE: usize = 1000;
const MAX_REPORT_PAGE: usize = 5000;
/// The longest period one report covers.
const MAX_REPORT_DAYS: i64 = 400;

/// What the report says when nothing was played.
pub const NO_MESSAGE: &str = "none: the media stream found no free worker and was closed; the carrier ended the \
     call without a message";

fn period(from: DateTime<Utc>, to: DateTime<Utc>, t: AnswerTally) -> pb::AbandonPeriod {
    pb::AbandonPeriod {
        from: Some(time::to_proto(from)),
        to: Some(time::to_proto(to)),
        live_answers: t.live_answers,
        abandons: t.abandons,
        machine_answers: t.machine_answers,
        abandon_rate: t.abandon_rate(),
    }
}

/// The campaign's ledger at `now`, also set on voxbridge's `/metrics` gauges.
pub async fn ledger(bridge: &Bridge, campaign: &Campaign) -> Result<pb::AbandonLedger> {
    let now = bridge.clock.now();
    let ledger = &bridge.stores.ledger;
    let day_from = now - Duration::hours(24);
    let month_from = now - Duration::days(30);
    let day = ledger.answer_tally(&campaign.id, day_from, now).await?;
    let month = ledger.answer_tally(&campaign.id, month_from, now).await?;
    let regime = campaign.spec.compliance.regime;
    let (regulated, regulated_from) =
        if regime.period() <= Duration::hours(24) { (day, day_from) } else { (month, month_from) };
    let limit = campaign.spec.abandon_limit();
    let m = &bridge.metrics;
    for (name, t) in [("24h", day), ("30d", month)] {
        let labels = vec![("campaign_id", campaign.id.clone()), ("period", name.to_string())];
        m.campaign_abandon_rate.get_or_create(&labels).set(t.abandon_rate());
        m.campaign_live_answers.get_or_create(&labels).set(i64::try_from(t.live_answers).unwrap_or(i64::MAX));
        m.campaign_abandons.get_or_create(&labels).set(i64::try_from(t.abandons).unwrap_or(i64::MAX));
    }
    m.campaign_abandon_limit.get_or_create(&label("campaign_id", campaign.id.clone())).set(limit);
    Ok(pb::AbandonLedger {
        campaign_id: campaign.id.clone(),
        regime: regime.to_proto() as i32,
        limit,
        last_24_hours: Some(period(day_from, now, day)),
        last_30_days: Some(period(month_from, now, month)),
        regulated: Some(period(regulated_from, now, regulated)),
        within_limit: regulated.abandon_rate() <= limit,
        abandon_headroom: limit * regulated.live_answers as f64 - regulated.abandons as f64,
    })
}

/// What the callee of an abandoned call heard.
pub fn message_played(call: &Call) -> String {
    if call.end_reason.starts_with(ABANDON_WITH_MESSAGE_REASON) {
        ABANDON_MESSAGE.to_string()
    } else {
        NO_MESSAGE.to_string()
    }
}

fn page_token(call: &Call) -> String {
    format!("{}|{}", call.answered_at.map_or(0, |t| t.timestamp_millis()), call.id)
}

fn parse_page_token(token: &str) -> Result<Option<(DateTime<Utc>, String)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || Error::invalid("page_token", "not a next_page_token of this report; start again without one");
    let (at, id) = token.split_once('|').ok_or_else(bad)?;
    let at = at.parse::<i64>().ok().and_then(DateTime::<Utc>::from_timestamp_millis).ok_or_else(bad)?;
    Ok(Some((at, id.to_string())))
}

/// One page of the compliance report of `campaign` for the request's period.
pub async fn abandoned_calls(
    bridge: &Bridge,
    campaign: &Campaign,
    r: &pb::ListAbandonedCallsRequest,
) -> Result<pb::ListAbandonedCallsResponse> {
    let from = r.from.as_ref().ok_or_else(|| Error::invalid("from", "required: the start of the period"))?;
    let to = r.to.as_ref().ok_or_else(|| Error::invalid("to", "required: the end of the period (exclusive)"))?;
    let (from, to) = (time::from_proto("from", from)?, time::from_proto("to", to)?);
    if to <= from {
        return Err(Error::invalid("to", format!("{to} is not after from {from}")));
    }
    if to - from > Duration::days(MAX_REPORT_DAYS) {
        return Err(Error::invalid("to", format!("the period is longer than {MAX_REPORT_DAYS} days; split it")));
    }
    let limit = super::limit("limit", r.limit, REPORT_PAGE, MAX_REPORT_PAGE)?;
    let after = parse_page_token(&r.page_token)?;
    let calls = bridge.stores.ledger.abandoned_calls(&campaign.id, from, to, after, limit).await?;
    let next_page_token =
        if calls.len() == limit { calls.last().map(page_token).unwrap_or_default() } else { String::new() };
    let mut rows = Vec::with_capacity(calls.len());
    for call in calls {
        let events = bridge.stores.calls.list_call_events(&call.id).await?;
        let at = |state: CallState| events.iter().find(|e| e.to_state == state).map(|e| e.at);
        let dialed_at = at(CallState::Dialing);
        let ring_from = at(CallState::Ringing).or(dialed_at);
        let ring_seconds = match (ring_from, call.answered_at) {
            (Some(from), Some(answered)) => (answered - from).num_milliseconds().max(0) as f64 / 1000.0,
            _ => 0.0,
        };
        rows.push(pb::AbandonedCall {
            call_id: call.id.clone(),
            to_number: call.to_number.clone(),
            from_number: call.from_number.clone(),
            attempt: call.attempt,
            dialed_at: dialed_at.map(time::to_proto),
            answered_at: call.answered_at.map(time::to_proto),
            abandoned_at: call.ended_at.map(time::to_proto),
            ring_seconds,
            message_played: message_played(&call),
            end_reason: call.end_reason,
        });
    }
    let tally = bridge.stores.ledger.answer_tally(&campaign.id, from, to).await?;
    Ok(pb::ListAbandonedCallsResponse { calls: rows, next_page_token, period: Some(period(from, to, tally)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_bad_ones_are_named() {
        let mut call = Call::outbound("cp_1", "rg_1", "+14155550123", "+14155550100", Utc::now());
        let at = DateTime::<Utc>::from_timestamp_millis(1_790_000_000_123).unwrap();
        call.answered_at = Some(at);
        assert_eq!(parse_page_token(&page_token(&call)).unwrap(), Some((at, call.id.clone())));
        assert_eq!(parse_page_token("").unwrap(), None);
        assert!(parse_page_token("nope").unwrap_err().message.starts_with("page_token:"));
    }

    #[test]
    fn the_message_played_follows_how_the_call_was_abandoned() {
        let mut call = Call::outbound("cp_1", "rg_1", "+14155550123", "+14155550100", Utc::now());
        call.end_reason = "no_free_slot: no worker within 2000 ms".into();
        assert_eq!(message_played(&call), ABANDON_MESSAGE);
        call.end_reason = "no_free_slot".into();
        assert!(message_played(&call).starts_with("none:"));
    }
}
