//! The numbers upload: JSON or CSV in, pending calls out, rejected rows reported by the
//! row the user knows them by.

use axum::Json;
use axum::extract::{Request, State};
use vox_proto::backend::v1 as pb;

use crate::UPLOAD_BODY_LIMIT;
use crate::bridge::Bridge;
use crate::csv::{CsvNumbers, parse_numbers};
use crate::dto::campaign::{NumbersAdded, NumbersUpload};
use crate::error::{ApiError, ApiErrors, ApiResult};
use crate::extract::{ApiPath, Bearer, content_type, is_json, parse_json, read_body};

/// Adds numbers to a campaign as pending calls (operator); valid rows are added even when
/// others are rejected.
///
/// - `application/json` `{"numbers": [...]}`: `row` is the 1-based position in `numbers`.
/// - `text/csv`: the first column, one number per row. `row` is the row a spreadsheet
///   shows: a header row (a first cell without digits, such as "number" or "phone",
///   recognised only in the first row) is row 1, so the first number under it is row 2;
///   blank rows are skipped but counted.
///
/// At most 10 MiB and 100000 rows per upload.
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
    let media = content_type(req.headers());
    let bytes = read_body(req, &(), UPLOAD_BODY_LIMIT).await?;
    let mut upload = match media.as_deref() {
        Some(t) if is_json(t) => {
            let body: NumbersUpload = parse_json(&bytes)?;
            let rows = (1..=body.numbers.len()).map(|r| r as u32).collect();
            CsvNumbers { numbers: body.numbers, rows }
        }
        Some("text/csv") => {
            let text = std::str::from_utf8(&bytes)
                .map_err(|e| ApiError::invalid(format!("the CSV body is not UTF-8 text: {e}")))?;
            parse_numbers(text)?
        }
        other => {
            return Err(ApiError::invalid(format!(
                "Content-Type {}is not supported here; send application/json {{\"numbers\": [...]}} or text/csv",
                other.map(|t| format!("{t:?} ")).unwrap_or_default()
            )));
        }
    };
    let req = pb::AddNumbersRequest { campaign_id, numbers: std::mem::take(&mut upload.numbers) };
    let mut added = NumbersAdded::from(b.unary(b.campaigns().add_numbers(b.request(&auth, req))).await?);
    for r in &mut added.rejected {
        r.row = upload.file_row(r.row);
        r.reason = upload.file_reason(std::mem::take(&mut r.reason));
    }
    Ok(Json(added))
}
