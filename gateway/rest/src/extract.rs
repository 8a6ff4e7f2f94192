//! Extractors that refuse a bad request with the API's JSON error instead of axum's
//! plain-text rejections: the caller's bearer token, JSON bodies, query strings and path
//! parameters. Every message names what was wrong (the field path for JSON and queries).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use tonic::metadata::{Ascii, MetadataValue};

use crate::JSON_BODY_LIMIT;
use crate::error::{ApiError, ApiResult};

/// The caller's `Authorization: Bearer <token>`, forwarded to voxbridge as is. Missing or
/// malformed: 401 before voxbridge is asked.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(..)")
    }
}

impl Bearer {
    pub fn metadata(&self) -> MetadataValue<Ascii> {
        self.0.clone()
    }

    fn from_headers(headers: &HeaderMap) -> ApiResult<Self> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthenticated(
                "missing Authorization header: sign in with POST /api/v1/auth/login and send \
                 `Authorization: Bearer <access_token>`",
            ));
        };
        let malformed = || ApiError::unauthenticated("Authorization header must be `Bearer <access_token>`");
        let text = value.to_str().map_err(|_| malformed())?.trim();
        let (scheme, token) = text.split_once(' ').ok_or_else(malformed)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(malformed());
        }
        MetadataValue::try_from(format!("Bearer {token}")).map(Bearer).map_err(|_| malformed())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> ApiResult<Self> {
        Bearer::from_headers(&parts.headers)
    }
}

/// The media type of the request body, lowercased, without parameters.
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
}

pub fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

/// Reads the whole body under the route's limit (`DefaultBodyLimit`); `limit` only words
/// the 413.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S, limit: usize) -> ApiResult<Bytes> {
    Bytes::from_request(req, state).await.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(limit)
        } else {
            ApiError::invalid(format!("could not read the request body: {}", r.body_text()))
        }
    })
}

/// Parses a JSON document, naming the field path of a value that does not fit.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            ApiError::invalid(format!("malformed JSON body: {inner}"))
        } else if path == "." {
            ApiError::invalid(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::invalid(format!("invalid JSON body: {path}: {inner}"))
        }
    })?;
    de.end().map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))?;
    Ok(value)
}

/// A JSON request body (`Content-Type: application/json`, at most 1 MiB).
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        match content_type(req.headers()) {
            Some(t) if is_json(&t) => {}
            Some(t) => {
                return Err(ApiError::invalid(format!(
                    "Content-Type {t:?} is not supported here; send a JSON body with Content-Type: application/json"
                )));
            }
            None => {
                return Err(ApiError::invalid(
                    "missing Content-Type: send a JSON body with Content-Type: application/json",
                ));
            }
        }
        let bytes = read_body(req, state, JSON_BODY_LIMIT).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Like [`ApiJson`], but an empty body means `T::default()` (bodies whose fields are all
/// optional, such as a cancel reason).
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let media = content_type(req.headers());
        let bytes = read_body(req, state, JSON_BODY_LIMIT).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        match media {
            Some(t) if is_json(&t) => parse_json(&bytes).map(OptionalJson),
            _ => Err(ApiError::invalid("send the body as JSON with Content-Type: application/json, or no body")),
        }
    }
}

/// Parses a query string, naming the parameter that does not fit.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> ApiResult<T> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ApiError::invalid(format!("invalid query string: {}", e.inner()))
        } else {
            ApiError::invalid(format!("query parameter {path}: {}", e.inner()))
        }
    })
}

/// Query parameters; unknown parameters are ignored.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> ApiResult<Self> {
        parse_query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Path parameters.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|r| ApiError::invalid(format!("bad path: {}", r.body_text())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code, reason = "only parsed")]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code, reason = "only parsed")]
    struct Inner {
        count: u32,
    }

    #[test]
    fn json_errors_name_the_problem() {
        let e = parse_json::<Body>(br#"{"name": "a",}"#).unwrap_err();
        assert!(e.message().starts_with("malformed JSON body:"), "{}", e.message());
        let e = parse_json::<Body>(br#"{"name": "a", "inner": {"count": "x"}}"#).unwrap_err();
        assert!(e.message().starts_with("invalid JSON body: inner.count: invalid type"), "{}", e.message());
        let e = parse_json::<Body>(br#"{}"#).unwrap_err();
        assert!(e.message().contains("missing field `name`"), "{}", e.message());
        let e = parse_json::<Body>(br#"{"name": "a"} trailing"#).unwrap_err();
        assert!(e.message().starts_with("malformed JSON body:"), "{}", e.message());
    }

    #[test]
    fn bearer_needs_the_scheme_and_a_token() {
        let mut h = HeaderMap::new();
        assert_eq!(Bearer::from_headers(&h).unwrap_err().status(), StatusCode::UNAUTHORIZED);
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(Bearer::from_headers(&h).unwrap_err().status(), StatusCode::UNAUTHORIZED);
        h.insert(header::AUTHORIZATION, "bearer  tok.en ".parse().unwrap());
        assert_eq!(Bearer::from_headers(&h).unwrap().metadata().to_str().unwrap(), "Bearer tok.en");
    }
}

/// Arbitrary bodies, queries and Authorization headers: never a panic, and a refusal
/// says what was wrong (the body, a field path, a query parameter or the header).
#[cfg(test)]
mod properties {
    use super::*;
    use crate::dto::auth::{CreateUserRequest, LoginRequest, UpdateUserRequest};
    use crate::dto::call::CancelRequest;
    use crate::dto::campaign::{CampaignSpec, NumbersUpload};
    use crate::dto::node::{LifecycleRequest, RegisterNodeRequest, UpdateNodeRequest};
    use crate::dto::region::{CreateRegionRequest, RegionStorageInput};
    use axum::http::HeaderValue;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// Parses `bytes` as every request body the API takes.
    fn every_body(bytes: &[u8]) -> Result<(), TestCaseError> {
        fn one<T: DeserializeOwned>(bytes: &[u8]) -> Result<(), TestCaseError> {
            if let Err(e) = parse_json::<T>(bytes) {
                let m = e.message();
                prop_assert!(m.starts_with("malformed JSON body: ") || m.starts_with("invalid JSON body: "), "{m:?}");
                prop_assert!(m.len() > "invalid JSON body: ".len(), "{m:?}");
                prop_assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            }
            Ok(())
        }
        one::<LoginRequest>(bytes)?;
        one::<CreateUserRequest>(bytes)?;
        one::<UpdateUserRequest>(bytes)?;
        one::<CancelRequest>(bytes)?;
        one::<CampaignSpec>(bytes)?;
        one::<NumbersUpload>(bytes)?;
        one::<LifecycleRequest>(bytes)?;
        one::<RegisterNodeRequest>(bytes)?;
        one::<UpdateNodeRequest>(bytes)?;
        one::<CreateRegionRequest>(bytes)?;
        one::<RegionStorageInput>(bytes)?;
        Ok(())
    }

    /// JSON objects with the API's field names holding values of any type.
    fn body_like() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,16}".prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(2, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(".{0,6}", inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        let key = prop_oneof![
            Just("name"),
            Just("email"),
            Just("password"),
            Just("role"),
            Just("numbers"),
            Just("reason"),
            Just("region_id"),
            Just("agent_id"),
            Just("max_concurrent"),
            Just("enabled"),
            Just("disabled"),
            Just("kind"),
            Just("capacity"),
            Just("bucket"),
            Just("schedule"),
            Just("timezone"),
            Just("retry"),
            Just("display_name"),
            Just("x"),
        ];
        prop::collection::btree_map(key, value, 0..6)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()).to_string())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_bytes_as_a_body_are_refused_clearly(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            every_body(&bytes)?;
        }

        #[test]
        fn any_text_as_a_body_is_refused_clearly(text in ".{0,200}") {
            every_body(text.as_bytes())?;
        }

        #[test]
        fn body_shaped_json_parses_or_names_the_field(text in body_like()) {
            every_body(text.as_bytes())?;
        }

        #[test]
        fn any_query_parses_or_names_the_parameter(query in ".{0,120}") {
            #[derive(Debug, serde::Deserialize)]
            #[allow(dead_code, reason = "only parsed")]
            struct Page {
                limit: Option<u32>,
                state: Option<String>,
                enabled: Option<bool>,
            }
            if let Err(e) = parse_query::<Page>(&query) {
                let m = e.message();
                prop_assert!(m.starts_with("query parameter ") || m.starts_with("invalid query string: "), "{m:?}");
            }
        }

        #[test]
        fn any_authorization_header_is_a_bearer_or_a_401(value in prop::collection::vec(any::<u8>(), 0..120)) {
            let Ok(value) = HeaderValue::from_bytes(&value) else { return Ok(()) };
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value);
            if let Err(e) = Bearer::from_headers(&h) {
                prop_assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
                prop_assert!(e.message().contains("Authorization"), "{:?}", e.message());
            }
        }
    }
}
