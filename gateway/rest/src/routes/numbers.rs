//! The numbers upload: JSON or CSV in, pending calls out, rejected rows reported by the
//! row the user knows them by.
//!
//! The order is the point: the caller's token and role are checked with voxbridge
//! before a byte of the body is read, so a stranger's 10 MiB costs one `WhoAmI`, not a
//! parse. Then the whole file is parsed and its rows counted (a bad line anywhere
//! refuses it whole); only then does voxbridge get it, through `ImportNumbers` in
//! batches of at most 5,000 rows, and store it all or nothing.

use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use vox_domain::ErrorCode;
use vox_domain::campaign::{MAX_IMPORT_BATCH, echo};
use vox_proto::backend::v1 as pb;

use crate::UPLOAD_BODY_LIMIT;
use crate::bridge::Bridge;
use crate::csv::{CsvNumbers, parse_numbers};
use crate::dto::campaign::{NumbersAdded, NumbersUpload};
use crate::error::{ApiError, ApiErrors, ApiResult};
use crate::extract::{ApiPath, Bearer, content_type, is_json, parse_json, read_body};

/// Longest silence from voxbridge while it stores an upload; it reports progress every
/// few seconds, so this only catches a voxbridge that is gone.
const IMPORT_SILENCE: Duration = Duration::from_secs(60);

/// Adds numbers to a campaign as pending calls (operator); valid rows are added even when
/// others are rejected, all in one step: the valid rows of an upload land together or
/// not at all.
///
/// - `application/json` `{"numbers": [...]}`: `row` is the 1-based position in `numbers`.
/// - `text/csv`: the first column, one number per row. `row` is the row a spreadsheet
///   shows: a header row (a first cell without digits, such as "number" or "phone",
///   recognised only in the first row) is row 1, so the first number under it is row 2;
///   blank rows are skipped but counted. Quoting is RFC 4180: a stray quote refuses the
///   file, naming its line and column.
///
/// At most 10 MiB and 200,000 rows per upload (voxgate's `--max-upload-rows`); the
/// answer lists the first 1,000 rejected rows and counts them all. A bad token or a
/// viewer is refused before the body is read.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/numbers", operation_id = "add_numbers", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    request_body(description = "the numbers, as JSON or as CSV", content(
        (NumbersUpload = "application/json"),
        (String = "text/csv", example = "number\n+14155550123\n+14155550124\n"))),
    responses((status = 200, description = "how many were added, and the rows that were not", body = NumbersAdded),
        ApiErrors))]
pub async fn add(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(campaign_id): ApiPath<String>,
    req: Request,
) -> ApiResult<Json<NumbersAdded>> {
    may_add_numbers(&b, &auth).await?;
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
    let bytes = read_body(req, &(), UPLOAD_BODY_LIMIT).await?;
    let upload = if json {
        let body: NumbersUpload = parse_json(&bytes)?;
        let rows = (1..=body.numbers.len()).map(|r| r as u32).collect();
        // Cut like CSV cells, so one batch stays small whatever the body holds.
        CsvNumbers { numbers: body.numbers.iter().map(|n| echo(n)).collect(), rows }
    } else {
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| ApiError::invalid(format!("the CSV body is not UTF-8 text: {e}")))?;
        parse_numbers(text)?
    };
    let max = b.max_upload_rows();
    if upload.numbers.len() > max {
        return Err(ApiError::invalid(format!(
            "the upload has {} rows; at most {max} are taken at a time (voxgate's --max-upload-rows): split the \
             file; nothing was added",
            upload.numbers.len()
        )));
    }
    Ok(Json(import(&b, &auth, campaign_id, upload).await?))
}

/// Refuses a caller who may not add numbers (a bad token, a viewer) with voxbridge's own
/// answer, before the body is read.
async fn may_add_numbers(b: &Bridge, auth: &Bearer) -> ApiResult<()> {
    let me = b.unary(b.auth().who_am_i(b.request(auth, pb::WhoAmIRequest {}))).await?;
    match pb::Role::try_from(me.role) {
        Ok(pb::Role::Admin | pb::Role::Operator) => Ok(()),
        _ => Err(ApiError::new(
            ErrorCode::PermissionDenied,
            format!("adding numbers needs the operator or admin role, which {} does not have", me.email),
        )),
    }
}

/// Sends the upload to voxbridge in batches and waits for its answer.
async fn import(b: &Bridge, auth: &Bearer, campaign_id: String, upload: CsvNumbers) -> ApiResult<NumbersAdded> {
    let mut batches = Vec::with_capacity(upload.numbers.len() / MAX_IMPORT_BATCH + 1);
    let mut numbers = upload.numbers.into_iter();
    let mut rows = upload.rows.into_iter();
    loop {
        let batch = pb::ImportNumbersRequest {
            campaign_id: if batches.is_empty() { campaign_id.clone() } else { String::new() },
            numbers: numbers.by_ref().take(MAX_IMPORT_BATCH).collect(),
            rows: rows.by_ref().take(MAX_IMPORT_BATCH).collect(),
        };
        let last = batch.numbers.len() < MAX_IMPORT_BATCH;
        batches.push(batch);
        if last {
            break;
        }
    }
    let request = b.stream_request(auth, tokio_stream::iter(batches));
    let mut replies = b.within_deadline(b.campaigns().import_numbers(request)).await?.into_inner();
    loop {
        let reply = tokio::time::timeout(IMPORT_SILENCE, replies.message())
            .await
            .map_err(|_| ApiError::unreachable(format!("no word on the upload for {} s", IMPORT_SILENCE.as_secs())))?
            .map_err(ApiError::from)?;
        match reply.and_then(|r| r.reply) {
            Some(pb::import_numbers_reply::Reply::Done(done)) => return Ok(NumbersAdded::from(done)),
            Some(pb::import_numbers_reply::Reply::Progress(_)) => {}
            None => return Err(ApiError::unreachable("voxbridge ended the upload without an answer")),
        }
    }
}
