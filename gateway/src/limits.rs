//! Per-client rate limits at the edge: every request counts against its client address
//! (`--rate-limit-per-second`, burst twice that), and sign-in attempts against a much
//! smaller budget (`--login-attempts-per-minute`), so a password cannot be guessed at
//! line rate. Over the limit: 429 with `Retry-After`.
//!
//! The limiters keep one entry per address they have seen. A timer forgets, every
//! [`SWEEP_EVERY`], the addresses whose budget is full again (an entry then is
//! indistinguishable from a new one), so a scan from many addresses, or a proxy naming
//! many clients, costs memory only while those addresses are active.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::forwarded::ClientAddr;
use crate::routes::problem;

/// How often idle addresses are forgotten.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

type Limiter = DefaultKeyedRateLimiter<IpAddr>;

#[derive(Debug)]
pub struct Limits {
    requests: Arc<Limiter>,
    logins: Arc<Limiter>,
}

impl Limits {
    /// The limits, with their sweeper on the current Tokio runtime.
    pub fn new(per_second: u32, logins_per_minute: u32) -> Self {
        Self::sweeping_every(per_second, logins_per_minute, SWEEP_EVERY)
    }

    fn sweeping_every(per_second: u32, logins_per_minute: u32, every: Duration) -> Self {
        let per_second = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = per_second.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        let logins = NonZeroU32::new(logins_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let limits = Limits {
            requests: Arc::new(RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))),
            logins: Arc::new(RateLimiter::keyed(Quota::per_minute(logins))),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(sweep(Arc::downgrade(&limits.requests), Arc::downgrade(&limits.logins), every));
            }
            Err(_) => tracing::warn!("rate limits made outside a Tokio runtime: idle addresses are never forgotten"),
        }
        limits
    }

    /// Counts one request from `ip` (and one sign-in attempt when `login`); over a
    /// budget, what the client is told.
    fn admit(&self, ip: IpAddr, login: bool) -> Result<(), &'static str> {
        if self.requests.check_key(&ip).is_err() {
            return Err("too many requests from this address; slow down");
        }
        if login && self.logins.check_key(&ip).is_err() {
            return Err("too many sign-in attempts from this address; wait a minute");
        }
        Ok(())
    }

    /// The addresses the limiters remember (every address is in the request limiter).
    pub fn addresses(&self) -> usize {
        self.requests.len()
    }
}

/// Forgets idle addresses every `every`, until the limiters are dropped.
async fn sweep(requests: Weak<Limiter>, logins: Weak<Limiter>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (Some(requests), Some(logins)) = (requests.upgrade(), logins.upgrade()) else { return };
        for limiter in [&requests, &logins] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        tracing::debug!(addresses = requests.len(), "rate limiter forgot idle addresses");
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
    if let Err(message) = limits.admit(ip, req.uri().path() == "/api/v1/auth/login") {
        return too_many(message);
    }
    next.run(req).await
}

fn too_many(message: &str) -> Response {
    let mut r = problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
    r.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn idle_addresses_are_forgotten_after_their_quota_period() {
        // 1 ms per request, 10 ms per sign-in: every budget is full again within 50 ms.
        let limits = Limits::sweeping_every(1000, 6000, Duration::from_millis(100));
        for i in 0..10_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            limits.admit(ip, i % 2 == 0).unwrap();
        }
        assert_eq!(limits.addresses(), 10_000);
        let mut left = limits.addresses();
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            left = limits.addresses() + limits.logins.len();
            if left == 0 {
                break;
            }
        }
        assert_eq!(left, 0, "every idle address forgotten");
    }

    #[tokio::test]
    async fn an_address_over_its_budget_is_remembered_until_it_refills() {
        let limits = Limits::sweeping_every(1, 1, Duration::from_millis(50));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        limits.admit(ip, true).unwrap();
        assert!(limits.admit(ip, true).unwrap_err().contains("sign-in"), "one sign-in a minute");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(limits.addresses(), 1, "still limited, so still remembered");
        assert!(limits.admit(ip, true).is_err(), "a sweep does not reset a budget in use");
    }
}
