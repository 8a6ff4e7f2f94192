//! Do-not-call lists: read, add (JSON or a CSV file, each bad row reported by the row the
//! user knows it by, as the numbers upload does), remove.
//!
//! `campaign_id` in the query names a campaign's list; without it, the global list. A
//! campaign-scoped API key reaches its own campaign's list only (voxbridge decides).
//! Before a CSV body is read, voxbridge is asked for one entry of the named list, so a
//! bad token or a list the caller may not see costs one call, not a parse.

use axum::Json;
use axum::extract::{Request, State};
use vox_domain::campaign::{MAX_LISTED_REJECTIONS, NumberUpload, echo};
use vox_proto::backend::v1 as pb;

use crate::UPLOAD_BODY_LIMIT;
use crate::bridge::Bridge;
use crate::csv::{CsvNumbers, parse_numbers};
use crate::dto::campaign::NumberRejection;
use crate::dto::dnc::{DncAdded, DncList, DncNumbers, DncPage, DncPageQuery, DncRemoved};
use crate::error::{ApiError, ApiErrors, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Bearer, content_type, is_json, parse_json, read_body};

/// Numbers voxbridge takes per AddDoNotCall.
const BATCH: usize = 10_000;

fn list_id(campaign_id: Option<String>) -> String {
    campaign_id.map(|c| c.trim().to_string()).unwrap_or_default()
}

/// One page of a list, by number.
#[utoipa::path(get, path = "/api/v1/do-not-call", operation_id = "list_do_not_call", tag = "do-not-call",
    params(DncPageQuery),
    responses((status = 200, description = "one page of the list", body = DncPage), ApiErrors))]
pub async fn list(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiQuery(q): ApiQuery<DncPageQuery>,
) -> ApiResult<Json<DncPage>> {
    let limit = q.limit.unwrap_or(100);
    let req =
        pb::ListDoNotCallRequest { campaign_id: list_id(q.campaign_id), limit, after: q.after.unwrap_or_default() };
    let r = b.unary(b.dnc().list_do_not_call(b.request(&auth, req))).await?;
    Ok(Json(DncPage::from_proto(r, if limit == 0 { 100 } else { limit as usize })?))
}

/// Adds numbers to a list (operator).
///
/// - `application/json` `{"numbers": [...]}`: `row` is the 1-based position in `numbers`.
/// - `text/csv`: the first column, one number per row, rows as a spreadsheet shows them
///   (a header row, recognised in the first row only, is row 1); quoting is RFC 4180.
///
/// Invalid rows and repeats inside the upload are reported by row; every valid number is
/// put on the list (numbers already on it are counted apart). At most 10 MiB and 200,000
/// rows; the answer lists the first 1,000 rejected rows and counts them all.
#[utoipa::path(post, path = "/api/v1/do-not-call", operation_id = "add_do_not_call", tag = "do-not-call",
    params(DncList),
    request_body(description = "the numbers, as JSON or as CSV", content(
        (DncNumbers = "application/json"),
        (String = "text/csv", example = "number\n+14155550123\n"))),
    responses((status = 200, description = "how many were added, and the rows that were not", body = DncAdded),
        ApiErrors))]
pub async fn add(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiQuery(which): ApiQuery<DncList>,
    req: Request,
) -> ApiResult<Json<DncAdded>> {
    let campaign_id = list_id(which.campaign_id);
    let media = content_type(req.headers());
    let json = match media.as_deref() {
        Some(t) if is_json(t) => true,
        Some("text/csv") => false,
        other => {
            return Err(ApiError::invalid(format!(
                "Content-Type {}is not supported here; send application/json {{\"numbers\": [...]}} or text/csv",
                other.map(|t| format!("{t:?} ")).unwrap_or_default()
            )));
        }
    };
    // The caller may see this list, or is refused before the body is read.
    let peek = pb::ListDoNotCallRequest { campaign_id: campaign_id.clone(), limit: 1, after: String::new() };
    b.unary(b.dnc().list_do_not_call(b.request(&auth, peek))).await?;
    let bytes = read_body(req, &(), UPLOAD_BODY_LIMIT).await?;
    let upload = if json {
        let body: DncNumbers = parse_json(&bytes)?;
        let rows = (1..=body.numbers.len()).map(|r| r as u32).collect();
        CsvNumbers { numbers: body.numbers.iter().map(|n| echo(n)).collect(), rows }
    } else {
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| ApiError::invalid(format!("the CSV body is not UTF-8 text: {e}")))?;
        parse_numbers(text)?
    };
    let numbered: Vec<(u32, &str)> =
        upload.rows.iter().copied().zip(upload.numbers.iter().map(String::as_str)).collect();
    let parsed = NumberUpload::parse_numbered(&numbered)?;
    let valid: Vec<String> = parsed.valid.iter().map(|(_, n)| n.to_string()).collect();
    let mut added = 0;
    for batch in valid.chunks(BATCH) {
        let req = pb::AddDoNotCallRequest { campaign_id: campaign_id.clone(), numbers: batch.to_vec() };
        added += b.unary(b.dnc().add_do_not_call(b.request(&auth, req))).await?.added;
    }
    let rejected_count = parsed.rejected.len() as u32;
    Ok(Json(DncAdded {
        added,
        already_listed: (valid.len() as u32).saturating_sub(added),
        rejected: parsed
            .rejected
            .into_iter()
            .take(MAX_LISTED_REJECTIONS)
            .map(|(row, input, reason)| NumberRejection { row, input, reason })
            .collect(),
        rejected_count,
    }))
}

/// Takes numbers off a list (admin: it lets them be called again). The whole request is
/// refused if a number is not E.164, naming it.
#[utoipa::path(post, path = "/api/v1/do-not-call/remove", operation_id = "remove_do_not_call", tag = "do-not-call",
    params(DncList), request_body = DncNumbers,
    responses((status = 200, description = "how many were removed", body = DncRemoved), ApiErrors))]
pub async fn remove(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiQuery(which): ApiQuery<DncList>,
    ApiJson(body): ApiJson<DncNumbers>,
) -> ApiResult<Json<DncRemoved>> {
    let req = pb::RemoveDoNotCallRequest { campaign_id: list_id(which.campaign_id), numbers: body.numbers };
    let r = b.unary(b.dnc().remove_do_not_call(b.request(&auth, req))).await?;
    Ok(Json(DncRemoved { removed: r.removed }))
}
