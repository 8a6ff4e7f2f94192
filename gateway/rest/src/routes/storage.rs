//! A region's storage check, and playing a call's recording: the URL (S3 presigned, or a
//! path on this gateway signed by voxbridge) and, for local storage, the bytes.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use vox_proto::backend::v1 as pb;

use crate::bridge::Bridge;
use crate::dto::storage::{PlaybackSignature, RecordingUrl, StorageTestResult};
use crate::error::{ApiErrors, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, Bearer};

/// Writes, reads back and deletes a small object in the region's storage (operator).
/// A failed check answers 502 `storage_failed`, naming the step (write, read back,
/// delete) and what the storage server said.
#[utoipa::path(post, path = "/api/v1/regions/{id}/storage/test", operation_id = "test_region_storage", tag = "regions",
    params(("id" = String, Path, description = "region id")),
    responses(
        (status = 200, description = "the storage works", body = StorageTestResult),
        (status = 502, description = "the storage failed the check; the message names the step and the server's answer", body = ErrorBody),
        ApiErrors))]
pub async fn test(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(region_id): ApiPath<String>,
) -> ApiResult<Json<StorageTestResult>> {
    let req = pb::TestRegionStorageRequest { region_id };
    let r = b.unary(b.storage().test_region_storage(b.request(&auth, req))).await?;
    Ok(Json(r.try_into()?))
}

/// A URL that plays the call's recording for 15 minutes with no other credential
/// (any signed-in user); 404 when the call has no recording.
#[utoipa::path(get, path = "/api/v1/calls/{id}/recording", operation_id = "get_call_recording", tag = "calls",
    params(("id" = String, Path, description = "call id")),
    responses((status = 200, description = "where to play it from, until when", body = RecordingUrl), ApiErrors))]
pub async fn recording_url(
    State(b): State<Bridge>,
    auth: Bearer,
    ApiPath(call_id): ApiPath<String>,
) -> ApiResult<Json<RecordingUrl>> {
    let r = b.unary(b.storage().get_recording_url(b.request(&auth, pb::GetRecordingUrlRequest { call_id }))).await?;
    Ok(Json(r.try_into()?))
}

/// A locally stored recording, as the signed URL from `GET /api/v1/calls/{id}/recording`
/// names it. Needs no bearer token: the signature is the credential (403 when it is
/// wrong or expired).
#[utoipa::path(get, path = "/api/v1/recordings/{key}", operation_id = "play_recording", tag = "calls", security(()),
    params(("key" = String, Path, description = "object key, e.g. recordings/2026/01/02/ca_x.wav"), PlaybackSignature),
    responses((status = 200, description = "the recording", content_type = "audio/wav"), ApiErrors))]
pub async fn play(
    State(b): State<Bridge>,
    ApiPath(key): ApiPath<String>,
    ApiQuery(sig): ApiQuery<PlaybackSignature>,
) -> ApiResult<Response> {
    let req = pb::ReadRecordingRequest { key: key.clone(), expires: sig.expires, signature: sig.signature };
    let chunks = b.within_deadline(b.storage().read_recording(b.anonymous(req))).await?.into_inner();
    let body = Body::from_stream(chunks.map(|c| c.map(|c| Bytes::from(c.data))));
    let content_type = if key.ends_with(".wav") { "audio/wav" } else { "application/octet-stream" };
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "private, no-store")], body)
        .into_response())
}
