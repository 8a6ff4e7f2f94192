//! What a worker counts about its calls since it started: calls by outcome, frames in and
//! out, how late inbound frames arrive, watchdog hang-ups. `Status` carries them (with the
//! spool's figures) to the host, which exports them on `/metrics` per worker.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vox_proto::fleet::v1 as pb;

use crate::spool::SpoolStats;

/// Upper bounds of the lateness buckets, seconds (one 20 ms frame is the unit that matters).
pub const LATENESS_BOUNDS_SECONDS: [f64; 8] = [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 1.0];

#[derive(Debug, Default)]
pub struct Stats {
    frames_received: AtomicU64,
    frames_sent: AtomicU64,
    lateness: Mutex<Lateness>,
    outcomes: Mutex<BTreeMap<String, u64>>,
    watchdogs: Mutex<BTreeMap<String, u64>>,
}

#[derive(Debug, Default)]
struct Lateness {
    le: [u64; LATENESS_BOUNDS_SECONDS.len()],
    sum: f64,
}

/// Where a stream's clock started: its first frame's arrival and sequence number.
#[derive(Debug, Clone, Copy)]
pub struct StreamClock {
    first_at: Instant,
    first_sequence: u64,
}

impl StreamClock {
    /// How late a frame with `sequence` arrived at `now` against 20 ms per frame since the
    /// first one (0 when early or on time).
    pub fn lateness(&self, sequence: u64, now: Instant) -> Duration {
        let due = self.first_at + Duration::from_millis(20 * sequence.saturating_sub(self.first_sequence));
        now.saturating_duration_since(due)
    }
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: &str) {
    let mut m = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *m.entry(key.to_string()).or_default() += 1;
}

impl Stats {
    /// An inbound frame with `sequence`, on the stream whose clock is `clock` (set from the
    /// first frame).
    pub fn frame_received(&self, clock: &mut Option<StreamClock>, sequence: u64, now: Instant) {
        self.frames_received.fetch_add(1, Ordering::Relaxed);
        let c = *clock.get_or_insert(StreamClock { first_at: now, first_sequence: sequence });
        let late = c.lateness(sequence, now).as_secs_f64();
        let mut l = self.lateness.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        l.sum += late;
        for (i, bound) in LATENESS_BOUNDS_SECONDS.iter().enumerate() {
            if late <= *bound {
                l.le[i] += 1;
            }
        }
    }

    pub fn frame_sent(&self) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A call ended in `outcome` ("completed", "failed") for `reason`.
    pub fn call_ended(&self, outcome: &str, reason: &str) {
        bump(&self.outcomes, outcome);
        if let Some(watchdog) = reason.strip_prefix("watchdog:") {
            bump(&self.watchdogs, watchdog);
        }
    }

    pub fn to_proto(&self, spool: SpoolStats) -> pb::WorkerCounters {
        let l = self.lateness.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let map = |m: &Mutex<BTreeMap<String, u64>>| {
            m.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().map(|(k, v)| (k.clone(), *v)).collect()
        };
        pb::WorkerCounters {
            calls_by_outcome: map(&self.outcomes),
            frames_received: self.frames_received.load(Ordering::Relaxed),
            frames_sent: self.frames_sent.load(Ordering::Relaxed),
            lateness_bounds_seconds: LATENESS_BOUNDS_SECONDS.to_vec(),
            lateness_le_counts: l.le.to_vec(),
            lateness_seconds_sum: l.sum,
            watchdog_hangups: map(&self.watchdogs),
            recordings_backlog: spool.pending,
            recording_upload_failures: spool.upload_failures,
            recordings_quarantined: spool.quarantined,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_is_measured_against_the_first_frame_and_twenty_ms_per_frame() {
        let s = Stats::default();
        let t0 = Instant::now();
        let mut clock = None;
        s.frame_received(&mut clock, 10, t0);
        s.frame_received(&mut clock, 11, t0 + Duration::from_millis(20)); // on time
        s.frame_received(&mut clock, 12, t0 + Duration::from_millis(75)); // 35 ms late
        s.frame_received(&mut clock, 14, t0 + Duration::from_millis(60)); // early
        let p = s.to_proto(SpoolStats::default());
        assert_eq!(p.frames_received, 4);
        // ≤ 5 ms: three frames; ≤ 40 ms: all four.
        assert_eq!(p.lateness_le_counts[0], 3);
        assert_eq!(p.lateness_le_counts[3], 4);
        assert!((p.lateness_seconds_sum - 0.035).abs() < 1e-6, "{}", p.lateness_seconds_sum);
    }

    #[test]
    fn outcomes_and_watchdogs_are_counted_by_name() {
        let s = Stats::default();
        s.call_ended("completed", "caller_hangup");
        s.call_ended("failed", "watchdog:no_media");
        s.call_ended("completed", "watchdog:max_duration");
        let p = s.to_proto(SpoolStats::default());
        assert_eq!(p.calls_by_outcome["completed"], 2);
        assert_eq!(p.calls_by_outcome["failed"], 1);
        assert_eq!(p.watchdog_hangups["no_media"], 1);
        assert_eq!(p.watchdog_hangups["max_duration"], 1);
    }
}
