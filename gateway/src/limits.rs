//! Per-client rate limits at the edge: every request counts against its client address
//! (`--rate-limit-per-second`, burst twice that), and sign-in attempts against a much
//! smaller budget (`--login-attempts-per-minute`), so a password cannot be guessed at
//! line rate. Over the limit: 429 with `Retry-After`.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::forwarded::ClientAddr;
use crate::routes::problem;

#[derive(Debug)]
pub struct Limits {
    requests: DefaultKeyedRateLimiter<IpAddr>,
    logins: DefaultKeyedRateLimiter<IpAddr>,
}

impl Limits {
    pub fn new(per_second: u32, logins_per_minute: u32) -> Self {
        let per_second = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = per_second.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        let logins = NonZeroU32::new(logins_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Limits {
            requests: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            logins: RateLimiter::keyed(Quota::per_minute(logins)),
        }
    }
}

pub async fn enforce(
    State(limits): State<Arc<Limits>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    // Behind a trusted proxy, the client it names (see `forwarded`).
    let ip = req.extensions().get::<ClientAddr>().map_or(peer.ip(), |c| c.0);
    if limits.requests.check_key(&ip).is_err() {
        return too_many("too many requests from this address; slow down");
    }
    if req.uri().path() == "/api/v1/auth/login" && limits.logins.check_key(&ip).is_err() {
        return too_many("too many sign-in attempts from this address; wait a minute");
    }
    next.run(req).await
}

fn too_many(message: &str) -> Response {
    let mut r = problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
    r.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    r
}
