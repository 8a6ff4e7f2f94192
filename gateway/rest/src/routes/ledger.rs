//! A campaign's abandon ledger and its compliance report (CSV).
//!
//! The report is RFC 4180 CSV: a header row, CRLF line ends, and any field holding a
//! comma, quote or line break quoted with its quotes doubled. It holds every abandoned
//! call of the period, read from voxbridge page by page before the first byte is sent,
//! so a report is whole or an error, never cut short.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use vox_proto::backend::v1 as pb;

use crate::bridge::Bridge;
use crate::dto::ledger::{AbandonLedger, ReportPeriod};
use crate::dto::{opt_time, to_proto_time};
use crate::error::{ApiErrors, ApiResult};
use crate::extract::{ApiPath, ApiQuery, Bearer};

/// Rows fetched from voxbridge at a time.
const PAGE: u32 = 5000;

/// The columns of the report, in order.
pub const REPORT_COLUMNS: [&str; 10] = [
    "call_id",
    "to_number",
    "from_number",
    "attempt",
    "dialed_at",
    "answered_at",
    "abandoned_at",
    "ring_seconds",
    "message_played",
    "end_reason",
];

/// The campaign's abandon rate over the rolling 24 hours and 30 days, from its call
/// records, against the limit its regime and target set.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/ledger", operation_id = "get_abandon_ledger", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, description = "the campaign's abandon ledger now", body = AbandonLedger), ApiErrors))]
pub async fn get(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(campaign_id): ApiPath<String>,
) -> ApiResult<Json<AbandonLedger>> {
    let req = pb::GetAbandonLedgerRequest { campaign_id };
    let r = b.unary(b.campaigns().get_abandon_ledger(b.request(&auth, req))).await?;
    Ok(Json(r.try_into()?))
}

/// One CSV field, quoted when RFC 4180 needs it.
fn field(v: &str) -> String {
    if v.contains([',', '"', '\r', '\n']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_string() }
}

fn stamp(t: Option<prost_types::Timestamp>) -> ApiResult<String> {
    Ok(opt_time(t, "report time")?.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)).unwrap_or_default())
}

/// The report of the calls, header row first.
pub fn report_csv(calls: Vec<pb::AbandonedCall>) -> ApiResult<String> {
    let mut out = REPORT_COLUMNS.join(",") + "\r\n";
    for c in calls {
        let row = [
            c.call_id,
            c.to_number,
            c.from_number,
            c.attempt.to_string(),
            stamp(c.dialed_at)?,
            stamp(c.answered_at)?,
            stamp(c.abandoned_at)?,
            format!("{:.3}", c.ring_seconds),
            c.message_played,
            c.end_reason,
        ];
        out += &row.iter().map(|v| field(v)).collect::<Vec<_>>().join(",");
        out += "\r\n";
    }
    Ok(out)
}

/// Every abandoned call of the campaign answered in `[from, to)`, oldest first, with when
/// it was placed, answered and ended, how long it rang (from ringing, or from placing when
/// the carrier reported no ringing, to the answer) and what the callee heard. Headers
/// `X-Vox-Live-Answers` and `X-Vox-Abandons` give the period's counts.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/compliance.csv", operation_id = "get_compliance_report",
    tag = "campaigns",
    params(("id" = String, Path, description = "campaign id"), ReportPeriod),
    responses((status = 200, description = "RFC 4180 CSV, one row per abandoned call", body = String,
        content_type = "text/csv"), ApiErrors))]
pub async fn report(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(campaign_id): ApiPath<String>,
    ApiQuery(period): ApiQuery<ReportPeriod>,
) -> ApiResult<Response> {
    let mut calls = Vec::new();
    let mut page_token = String::new();
    let mut counts = None;
    loop {
        let req = pb::ListAbandonedCallsRequest {
            campaign_id: campaign_id.clone(),
            from: Some(to_proto_time(period.from)),
            to: Some(to_proto_time(period.to)),
            limit: PAGE,
            page_token: page_token.clone(),
        };
        let page = b.unary(b.campaigns().list_abandoned_calls(b.request(&auth, req))).await?;
        calls.extend(page.calls);
        counts = page.period.or(counts);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let counts = counts.unwrap_or_default();
    let name = format!(
        "compliance-{campaign_id}-{}-{}.csv",
        period.from.format("%Y%m%dT%H%M%SZ"),
        period.to.format("%Y%m%dT%H%M%SZ")
    );
    let disposition = format!("attachment; filename=\"{}\"", name.replace(['"', '\\', '\r', '\n'], "_"));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8; header=present".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::HeaderName::from_static("x-vox-live-answers"), counts.live_answers.to_string()),
            (header::HeaderName::from_static("x-vox-abandons"), counts.abandons.to_string()),
        ],
        report_csv(calls)?,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_as_rfc_4180_asks() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("Sorry, busy"), "\"Sorry, busy\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        let csv = report_csv(vec![pb::AbandonedCall {
            call_id: "ca_1".into(),
            ring_seconds: 19.0,
            message_played: "Sorry, all of our agents are busy".into(),
            ..Default::default()
        }])
        .unwrap();
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], REPORT_COLUMNS.join(","));
        assert_eq!(lines[1], "ca_1,,,0,,,,19.000,\"Sorry, all of our agents are busy\",");
        assert_eq!(lines[2], "", "every row ends with CRLF");
    }
}
