//! Exactly one active dialler: the leadership lease, held through voxbridge.
//!
//! Every dialler asks voxbridge for the lease (`AcquireLeadership`) every third of its
//! TTL; the holder renews it and keeps its fencing term, and a standby gets it (with a
//! higher term) once the holder's lease ran out. The term is stamped on every lease and
//! transition the leader makes, and voxbridge refuses a stale one.
//!
//! The process also keeps its own, more cautious, view of how long it may act: the lease
//! counts from when the request was *sent* (before voxbridge started its TTL), minus a
//! safety margin, on the monotonic clock. A leader frozen by SIGSTOP (or a long GC-like
//! pause, or a partition) wakes up past that instant and does nothing, not even an
//! already-leased dial, until a fresh renewal says it still leads. Together with the
//! fenced transition to `dialing` before every dial, this makes the seeds' "two diallers
//! over-dial" incident impossible rather than unlikely.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use vox_node::Bridge;
use vox_proto::backend::v1 as pb;

/// What this process knows about the lease.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// The term of our lease, while we hold it.
    pub term: u64,
    /// Until when we may act on it (monotonic).
    pub valid_until: Option<Instant>,
    /// Who holds it, as voxbridge last said.
    pub holder: String,
    /// The last failure to reach voxbridge, cleared by the next answer.
    pub error: Option<String>,
}

/// The shared view, read by the tick loop and the placement tasks.
#[derive(Debug, Default)]
pub struct Leadership(Mutex<View>);

impl Leadership {
    fn lock(&self) -> std::sync::MutexGuard<'_, View> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The term this process may act with right now, if it leads.
    pub fn current(&self) -> Option<u64> {
        let v = self.lock();
        match v.valid_until {
            Some(until) if Instant::now() < until && v.term > 0 => Some(v.term),
            _ => None,
        }
    }

    pub fn view(&self) -> View {
        self.lock().clone()
    }

    /// Records voxbridge's answer to a request sent at `sent`.
    pub fn record(&self, sent: Instant, ttl: Duration, reply: &pb::Leadership) {
        let mut v = self.lock();
        v.error = None;
        v.holder = reply.holder_id.clone();
        if reply.held_by_caller {
            if v.term != reply.term {
                tracing::info!(term = reply.term, "leading: this dialler holds the leadership lease");
            }
            v.term = reply.term;
            v.valid_until = Some(sent + safe_part(ttl));
        } else {
            if v.valid_until.is_some() {
                tracing::warn!(holder = %reply.holder_id, term = reply.term, "lost the leadership lease; standing by");
            }
            v.term = 0;
            v.valid_until = None;
        }
    }

    pub fn record_error(&self, error: String) {
        self.lock().error = Some(error);
    }

    /// Gives up acting at once (shutdown).
    pub fn step_down(&self) -> Option<u64> {
        let mut v = self.lock();
        v.valid_until = None;
        (v.term > 0).then_some(v.term)
    }
}

/// The share of the TTL a holder acts on: the TTL minus a margin for clock rate
/// differences and the time a request takes (a fifth, at least 1 s).
fn safe_part(ttl: Duration) -> Duration {
    let margin = (ttl / 5).max(Duration::from_secs(1));
    ttl.saturating_sub(margin)
}

/// Asks for (or renews) the lease until `stop` flips, then releases it.
pub async fn run(
    bridge: Bridge,
    ttl: Duration,
    leadership: std::sync::Arc<Leadership>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let every = (ttl / 5).max(Duration::from_millis(200));
    let ttl_seconds = u32::try_from(ttl.as_secs()).unwrap_or(10).max(1);
    loop {
        let sent = Instant::now();
        let req = pb::AcquireLeadershipRequest { holder_id: bridge.node_id().to_string(), ttl_seconds };
        match tokio::time::timeout(every.max(Duration::from_secs(1)), bridge.leadership().acquire_leadership(req)).await
        {
            Ok(Ok(reply)) => leadership.record(sent, ttl, &reply.into_inner()),
            Ok(Err(s)) => {
                tracing::warn!(code = ?s.code(), error = s.message(), "leadership request failed");
                leadership.record_error(format!("voxbridge unreachable: {}", s.message()));
            }
            Err(_) => leadership.record_error("voxbridge unreachable: the leadership request timed out".into()),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => break,
        }
    }
    if let Some(term) = leadership.step_down() {
        let req = pb::ReleaseLeadershipRequest { holder_id: bridge.node_id().to_string(), term };
        match bridge.leadership().release_leadership(req).await {
            Ok(_) => tracing::info!(term, "released the leadership lease"),
            Err(s) => {
                tracing::warn!(error = s.message(), "could not release the leadership lease; it runs out by itself")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(holder: &str, term: u64, mine: bool) -> pb::Leadership {
        pb::Leadership { holder_id: holder.into(), term, expires_at: None, held_by_caller: mine }
    }

    #[test]
    fn a_holder_acts_only_inside_the_safe_part_of_its_lease() {
        let l = Leadership::default();
        assert_eq!(l.current(), None);
        l.record(Instant::now(), Duration::from_secs(10), &reply("d1", 3, true));
        assert_eq!(l.current(), Some(3));
        // A request sent long ago (a frozen process) grants nothing now.
        l.record(Instant::now() - Duration::from_secs(9), Duration::from_secs(10), &reply("d1", 3, true));
        assert_eq!(l.current(), None);
        l.record(Instant::now(), Duration::from_secs(10), &reply("d2", 4, false));
        assert_eq!(l.current(), None);
        assert_eq!(l.view().holder, "d2");
    }

    #[test]
    fn stepping_down_stops_acting_at_once() {
        let l = Leadership::default();
        l.record(Instant::now(), Duration::from_secs(10), &reply("d1", 7, true));
        assert_eq!(l.step_down(), Some(7));
        assert_eq!(l.current(), None);
    }
}
