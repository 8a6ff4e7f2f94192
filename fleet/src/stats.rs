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

/// The last inbound frame of a stream: when it arrived and its sequence number.
///
/// A frame's lateness is how much longer than 20 ms per frame it took to arrive after the
/// frame before it: a stall in the network, the gateway or the worker shows on the first
/// frame after it, while a sender whose clock runs a little slow does not pile up
/// seconds of "lateness" over a long call.
#[derive(Debug, Clone, Copy)]
pub struct StreamClock {
    last_at: Instant,
    last_sequence: u64,
}

impl StreamClock {
    /// How late a frame with `sequence` arrived at `now` (0 when on time or early).
    pub fn lateness(&self, sequence: u64, now: Instant) -> Duration {
        let due = self.last_at + Duration::from_millis(20 * sequence.saturating_sub(self.last_sequence));
        now.saturating_duration_since(due)
    }
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: &str) {
    let mut m = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *m.entry(key.to_string()).or_default() += 1;
}

impl Stats {
    /// An inbound frame with `sequence`, on the stream whose last frame is `clock` (None
    /// before the first).
    pub fn frame_received(&self, clock: &mut Option<StreamClock>, sequence: u64, now: Instant) {
        self.frames_received.fetch_add(1, Ordering::Relaxed);
        let late = clock.map_or(0.0, |c| c.lateness(sequence, now).as_secs_f64());
        *clock = Some(StreamClock { last_at: now, last_sequence: sequence });
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
    fn lateness_is_the_wait_beyond_twenty_ms_per_frame_since_the_frame_before() {
        let s = Stats::default();
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut clock = None;
        s.frame_received(&mut clock, 10, ms(0));
        s.frame_received(&mut clock, 11, ms(20)); // on time
        s.frame_received(&mut clock, 12, ms(75)); // a 35 ms stall
        s.frame_received(&mut clock, 13, ms(76)); // the burst after it: early
        s.frame_received(&mut clock, 15, ms(116)); // a lost frame, then on time
        let p = s.to_proto(SpoolStats::default());
        assert_eq!(p.frames_received, 5);
        // ≤ 5 ms: four frames; ≤ 40 ms: all five.
        assert_eq!(p.lateness_le_counts[0], 4);
        assert_eq!(p.lateness_le_counts[3], 5);
        assert!((p.lateness_seconds_sum - 0.035).abs() < 1e-6, "{}", p.lateness_seconds_sum);
    }

    #[test]
    fn a_sender_a_little_slow_is_not_ever_later() {
        let s = Stats::default();
        let t0 = Instant::now();
        let mut clock = None;
        // 21 ms a frame for 1,000 frames: 1 ms late each, not 1 s late at the end.
        for i in 0..1000u64 {
            s.frame_received(&mut clock, i, t0 + Duration::from_millis(21 * i));
        }
        let p = s.to_proto(SpoolStats::default());
        assert_eq!(p.lateness_le_counts[0], 1000, "every frame within 5 ms");
        assert!((p.lateness_seconds_sum - 0.999).abs() < 1e-6, "{}", p.lateness_seconds_sum);
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
