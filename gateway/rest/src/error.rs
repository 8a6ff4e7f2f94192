//! The one error shape of the API: `{"error": {"code": "...", "message": "..."}}` with the
//! HTTP status of the [`ErrorCode`], whether the failure came from voxbridge, from a bad
//! request this gateway refused itself, or from the control plane being out of reach.
//!
//! Internal failures of this gateway and the transport's words when voxbridge or the
//! dialler is out of reach (addresses, OS errors) are not sent: the caller gets an error
//! id, and the log has the details under it (`vox_domain::Error::conceal`). voxbridge
//! conceals its own internal failures the same way; their ids are relayed as they are.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vox_domain::ErrorCode;

/// The body of every failed request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: invalid_argument, unauthenticated, permission_denied, not_found,
    /// already_exists, failed_precondition, resource_exhausted, unavailable, internal,
    /// payload_too_large, method_not_allowed.
    pub code: String,
    /// For a person: names the field and what was expected.
    pub message: String,
}

/// The failures every route may answer with, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "describes responses; never built")]
pub enum ApiErrors {
    /// Bad input (malformed JSON, an unknown enum value, a bad query parameter): the
    /// message names the field and what was expected.
    #[response(status = 400)]
    InvalidArgument(ErrorBody),
    /// No or an expired access token, or a wrong email or password.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// The user's role does not allow this.
    #[response(status = 403)]
    PermissionDenied(ErrorBody),
    /// No such object (or route).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// An object with this unique name or email already exists.
    #[response(status = 409)]
    AlreadyExists(ErrorBody),
    /// The object is not in a state that allows this.
    #[response(status = 412)]
    FailedPrecondition(ErrorBody),
    /// The request body is over the route's limit (1 MiB, 10 MiB for number uploads).
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// A failure inside voxbridge or this gateway; the message gives an error id to find
    /// the details in that process's log.
    #[response(status = 500)]
    Internal(ErrorBody),
    /// The control plane is unreachable, draining or out of capacity; retry after
    /// the `Retry-After` seconds.
    #[response(status = 503, headers(("Retry-After" = u32, description = "seconds to wait")))]
    Unavailable(ErrorBody),
}

/// A failed request, ready to be answered.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// What the message stands for, logged under its error id when answered.
    concealed: Option<(String, String)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// How this process names itself in concealed errors.
const PROCESS: &str = "voxgate";
/// How messages name voxbridge.
const VOXBRIDGE: &str = "the control plane (voxbridge)";

/// The wire name of an error code.
fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "invalid_argument",
        ErrorCode::NotFound => "not_found",
        ErrorCode::AlreadyExists => "already_exists",
        ErrorCode::FailedPrecondition => "failed_precondition",
        ErrorCode::Unauthenticated => "unauthenticated",
        ErrorCode::PermissionDenied => "permission_denied",
        ErrorCode::ResourceExhausted => "resource_exhausted",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Internal => "internal",
    }
}

impl ApiError {
    /// An error with `code`; an internal one is concealed behind an error id (unless it
    /// is voxbridge's, concealed already).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = message.into();
        let hidden = (code == ErrorCode::Internal).then(|| vox_domain::Error::new(code, &message).conceal(PROCESS));
        match hidden.flatten() {
            Some(c) => {
                ApiError { status, code: code_name(code), message: c.public.message, concealed: Some((c.id, message)) }
            }
            None => ApiError { status, code: code_name(code), message, concealed: None },
        }
    }

    /// A request this gateway refuses before asking voxbridge.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidArgument, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Unauthenticated, message)
    }

    /// voxbridge answered with something this gateway cannot represent.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Internal, message)
    }

    /// No answer from voxbridge at all; `detail` (the transport's words) is logged only.
    pub fn unreachable(detail: impl std::fmt::Display) -> Self {
        ApiError::out_of_reach(VOXBRIDGE, detail)
    }

    /// `service`'s answer, or its transport's failure to reach it (see `From<Status>`).
    pub fn from_status(service: &str, status: tonic::Status) -> Self {
        if std::error::Error::source(&status).is_some() {
            return ApiError::out_of_reach(service, status.message());
        }
        ApiError::new(ErrorCode::from_grpc(status.code()), status.message())
    }

    /// No answer from `service`; `detail` (the transport's words) is logged only.
    pub fn out_of_reach(service: &str, detail: impl std::fmt::Display) -> Self {
        let e = vox_domain::Error::unavailable(detail.to_string());
        let c = e.conceal_as(&format!("{service} is unreachable or did not answer in time; retry shortly"), PROCESS);
        let mut api = ApiError::new(ErrorCode::Unavailable, c.public.message);
        api.concealed = Some((c.id, e.message));
        api
    }

    pub fn payload_too_large(limit_bytes: usize) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: format!("request body is over the limit of {} bytes for this route", limit_bytes),
            concealed: None,
        }
    }

    /// Object storage behind the control plane failed a check: 502, code `storage_failed`.
    pub fn storage_failed(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_GATEWAY, code: "storage_failed", message: message.into(), concealed: None }
    }

    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: format!("{method} is not allowed on {path}; see /api/v1/openapi.json"),
            concealed: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error's code as the JSON body names it (`"permission_denied"`).
    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: ErrorDetail { code: self.code.to_string(), message: self.message.clone() } }
    }
}

impl From<tonic::Status> for ApiError {
    /// A status that carries a source was made by the client side of the channel (connect
    /// refused, connection reset): voxbridge never answered. Any other status is
    /// voxbridge's own answer, whose message already names the field.
    fn from(status: tonic::Status) -> Self {
        ApiError::from_status(VOXBRIDGE, status)
    }
}

impl From<vox_domain::Error> for ApiError {
    fn from(e: vox_domain::Error) -> Self {
        ApiError::new(e.code, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some((error_id, detail)) = &self.concealed {
            tracing::error!(status = self.status.as_u16(), code = self.code, error_id, error = %detail, "request failed");
        } else if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = self.code, error = %self.message, "request failed");
        } else {
            tracing::debug!(status = self.status.as_u16(), code = self.code, error = %self.message, "request refused");
        }
        let retry = self.status == StatusCode::SERVICE_UNAVAILABLE;
        let mut response = (self.status, Json(self.body())).into_response();
        if retry {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_keep_their_message_and_get_the_http_status() {
        let e = ApiError::from(tonic::Status::invalid_argument("kind: one of ..."));
        assert_eq!((e.status().as_u16(), e.body().error.code.as_str()), (400, "invalid_argument"));
        assert_eq!(e.message(), "kind: one of ...");
        let e = ApiError::from(tonic::Status::failed_precondition("region in use"));
        assert_eq!(e.status().as_u16(), 412);
        let e = ApiError::from(tonic::Status::resource_exhausted("busy"));
        assert_eq!(e.status().as_u16(), 503);
    }

    #[test]
    fn unavailable_answers_carry_retry_after() {
        let r = ApiError::from(tonic::Status::unavailable("draining")).into_response();
        assert_eq!(r.status().as_u16(), 503);
        assert_eq!(r.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()), Some(&b"1"[..]));
        let r = ApiError::invalid("x").into_response();
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn internal_and_transport_words_are_concealed_behind_an_id() {
        let e = ApiError::internal("encode dashboard: key must be a string");
        assert_eq!(e.status().as_u16(), 500);
        assert!(e.message().starts_with("internal error err_"), "{}", e.message());
        assert!(e.message().ends_with("the details are in voxgate's log under this id"), "{}", e.message());
        assert!(!e.message().contains("encode"), "{}", e.message());

        let relayed = "internal error err_0123456789ab; the details are in voxbridge's log under this id";
        let e = ApiError::from(tonic::Status::internal(relayed));
        assert_eq!(e.message(), relayed, "voxbridge's id is passed on as it is");

        let e = ApiError::unreachable("tcp connect error: Connection refused (os error 111) at 10.1.2.3:7070");
        assert_eq!(e.status().as_u16(), 503);
        assert!(e.message().starts_with("the control plane (voxbridge) is unreachable"), "{}", e.message());
        assert!(!e.message().contains("10.1.2.3") && !e.message().contains("os error"), "{}", e.message());
        assert!(vox_domain::error::concealed_id(e.message()).is_some(), "{}", e.message());
    }
}
