//! Password work within a budget. One Argon2id hash takes ~19 MiB and tens of
//! milliseconds of a core, so a burst of sign-ins must neither eat the memory nor the
//! cores the heartbeats need:
//!
//! - at most [`Passwords::hashing_slots`] hashes run at once (half the cores, at least
//!   one), at most [`MAX_WAITING`] more wait for a slot, each at most [`HASH_WAIT`];
//!   anyone else is refused at once with `RESOURCE_EXHAUSTED`;
//! - each client address gets `--login-attempts-per-minute` sign-ins (all at once, then
//!   refilled evenly over the minute), counted before the password is looked at. The address is the TCP peer's,
//!   or, when a gateway signs the request with its node secret, the client address the
//!   gateway names in `x-vox-client-address` (voxgate rate-limits its own clients too).
//!   Addresses unseen for a minute are forgotten.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;
use vox_domain::{Error, Result};

use crate::crypto;

/// Hashes that may queue for a hashing slot.
pub const MAX_WAITING: usize = 32;
/// How long a hash may wait for a slot.
pub const HASH_WAIT: Duration = Duration::from_secs(5);

/// The metadata a gateway names its client's address in.
pub const CLIENT_ADDRESS: &str = "x-vox-client-address";

#[derive(Debug)]
pub struct Passwords {
    slots: Arc<Semaphore>,
    hashing_slots: usize,
    in_flight: AtomicUsize,
    attempts: DefaultKeyedRateLimiter<IpAddr>,
}

/// Why a sign-in was refused before its password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    Address,
    Hashing,
}

impl Throttled {
    pub fn label(self) -> &'static str {
        match self {
            Throttled::Address => "address",
            Throttled::Hashing => "hashing",
        }
    }
}

impl Passwords {
    pub fn new(attempts_per_minute: u32) -> Arc<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let hashing_slots = (cores / 2).max(1);
        let per_minute = NonZeroU32::new(attempts_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let passwords = Arc::new(Passwords {
            slots: Arc::new(Semaphore::new(hashing_slots)),
            hashing_slots,
            in_flight: AtomicUsize::new(0),
            attempts: RateLimiter::keyed(Quota::per_minute(per_minute)),
        });
        // Forget idle addresses, so a scan of many addresses does not grow the map forever.
        let weak = Arc::downgrade(&passwords);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let Some(p) = weak.upgrade() else { return };
                p.attempts.retain_recent();
                p.attempts.shrink_to_fit();
            }
        });
        passwords
    }

    /// Hashes that run at once.
    pub fn hashing_slots(&self) -> usize {
        self.hashing_slots
    }

    /// Counts one sign-in attempt from `addr`; over budget is an error to answer as is.
    pub fn sign_in_attempt(&self, addr: IpAddr) -> std::result::Result<(), (Throttled, Error)> {
        self.attempts.check_key(&addr).map_err(|_| {
            (
                Throttled::Address,
                Error::new(
                    vox_domain::ErrorCode::ResourceExhausted,
                    format!("too many sign-in attempts from {addr}; wait a minute and try again"),
                ),
            )
        })
    }

    /// Whether `password` matches the PHC string, within the hashing budget.
    pub async fn matches(&self, password: String, phc: String) -> std::result::Result<bool, (Throttled, Error)> {
        self.run(move || crypto::password_matches(&password, &phc)).await
    }

    /// A new PHC string for `password`, within the hashing budget.
    pub async fn hash(&self, password: String) -> Result<String> {
        self.run(move || crypto::hash_password(&password)).await.map_err(|(_, e)| e)?
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> std::result::Result<T, (Throttled, Error)> {
        let busy = || {
            (
                Throttled::Hashing,
                Error::new(
                    vox_domain::ErrorCode::ResourceExhausted,
                    "too many sign-ins in progress; retry in a few seconds",
                ),
            )
        };
        // Hashes running or waiting; over the bound, refuse without waiting at all.
        // (A guard, so a caller that gives up mid-wait still counts itself out.)
        let in_flight = InFlight::enter(&self.in_flight);
        if in_flight.before >= self.hashing_slots + MAX_WAITING {
            return Err(busy());
        }
        async {
            let Ok(Ok(permit)) = tokio::time::timeout(HASH_WAIT, Arc::clone(&self.slots).acquire_owned()).await else {
                return Err(busy());
            };
            tokio::task::spawn_blocking(move || {
                let out = work();
                drop(permit);
                out
            })
            .await
            .map_err(|e| (Throttled::Hashing, Error::internal(format!("password hashing task: {e}"))))
        }
        .await
    }
}

struct InFlight<'a> {
    count: &'a AtomicUsize,
    before: usize,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        InFlight { count, before: count.fetch_add(1, Ordering::SeqCst) }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests stop on failure")]
    use super::*;

    #[tokio::test]
    async fn an_address_gets_its_budget_and_no_more() {
        let p = Passwords::new(30);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let allowed = (0..50).filter(|_| p.sign_in_attempt(a).is_ok()).count();
        assert_eq!(allowed, 30, "the per-minute budget at once, and no more");
        let (why, e) = p.sign_in_attempt(a).unwrap_err();
        assert_eq!(why, Throttled::Address);
        assert!(e.message.contains("192.0.2.1"), "{}", e.message);
        assert!(p.sign_in_attempt(b).is_ok(), "another address is not affected");
    }

    #[tokio::test]
    async fn hashes_beyond_the_queue_are_refused_at_once() {
        let p = Passwords::new(30);
        let phc = crypto::decoy_password_hash().to_string();
        let tries = p.hashing_slots() + MAX_WAITING + 40;
        let started = std::time::Instant::now();
        let results = futures::future::join_all((0..tries).map(|_| p.matches("x".into(), phc.clone()))).await;
        let refused = results.iter().filter(|r| matches!(r, Err((Throttled::Hashing, _)))).count();
        assert!(refused >= 40, "{refused} of {tries} refused");
        assert!(results.iter().any(|r| matches!(r, Ok(false))), "the ones admitted were checked");
        assert!(started.elapsed() < HASH_WAIT * 3, "{:?}", started.elapsed());
    }
}
