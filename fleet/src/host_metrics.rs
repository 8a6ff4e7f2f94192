//! The fleet host's `/metrics` (`--metrics-listen`, 127.0.0.1:7100 by default): each
//! worker's state and counters as the host last polled them (every heartbeat, ~2 s), plus
//! what every Vox process exports (build, CPU, memory). Names:
//!
//! - `voxcore_worker_slots{state}`: workers per state (idle, reserved, busy, draining, and
//!   down for a worker that did not answer its last poll);
//! - `voxcore_worker_state{worker, state}`: 1 for each worker's current state;
//! - `voxcore_calls_total{worker, outcome}`, `voxcore_frames_received_total{worker}`,
//!   `voxcore_frames_sent_total{worker}`, `voxcore_frame_lateness_seconds{worker}` (a
//!   histogram of the wait beyond 20 ms per frame since the frame before), `voxcore_watchdog_hangups_total{worker,
//!   reason}`, since each worker process started (a restarted worker starts again at 0,
//!   which `rate()` handles);
//! - `voxcore_recordings_backlog{worker}`, `voxcore_recording_upload_failures_total{worker}`
//!   and `voxcore_recordings_quarantined` (the host's shared quarantine folder).
//!
//! `/metrics` carries no secret and answers anyone who reaches the port: bind it to
//! loopback or a private address. A taken port is logged and the host runs on without
//! metrics (two hosts on one machine, in development), rather than refusing calls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use vox_proto::common::v1::WorkerState;
use vox_proto::fleet::v1 as pb;

/// The last status each worker answered (None: it did not answer its last poll).
#[derive(Debug, Default)]
pub struct Polled(Mutex<BTreeMap<u32, Option<pb::WorkerStatus>>>);

impl Polled {
    pub fn set(&self, index: u32, status: Option<pb::WorkerStatus>) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(index, status);
    }

    fn snapshot(&self) -> BTreeMap<u32, Option<pb::WorkerStatus>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

const STATES: [&str; 5] = ["idle", "reserved", "busy", "draining", "down"];

fn state_name(s: Option<&pb::WorkerStatus>) -> &'static str {
    match s.map(|s| WorkerState::try_from(s.state)) {
        None => "down",
        Some(Ok(WorkerState::Idle)) => "idle",
        Some(Ok(WorkerState::Reserved)) => "reserved",
        Some(Ok(WorkerState::InCall)) => "busy",
        Some(Ok(WorkerState::Draining)) => "draining",
        Some(_) => "down",
    }
}

/// The collector `/metrics` renders.
#[derive(Debug)]
pub struct HostMetrics(pub Arc<Polled>);

type Labels<'a> = Vec<(&'static str, String)>;

impl Collector for HostMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let workers = self.0.snapshot();
        let mut per_state: BTreeMap<&str, u64> = STATES.iter().map(|s| (*s, 0)).collect();
        for s in workers.values() {
            *per_state.entry(state_name(s.as_ref())).or_default() += 1;
        }
        {
            let mut e =
                encoder.encode_descriptor("voxcore_worker_slots", "Workers per state", None, MetricType::Gauge)?;
            for (state, n) in &per_state {
                let labels: Labels = vec![("state", state.to_string())];
                ConstGauge::new(*n as i64).encode(e.encode_family(&labels)?)?;
            }
        }
        {
            let mut e = encoder.encode_descriptor(
                "voxcore_worker_state",
                "1 for the state each worker is in",
                None,
                MetricType::Gauge,
            )?;
            for (index, s) in &workers {
                let labels: Labels = vec![("worker", index.to_string()), ("state", state_name(s.as_ref()).into())];
                ConstGauge::new(1).encode(e.encode_family(&labels)?)?;
            }
        }
        let counters: Vec<(String, pb::WorkerCounters)> =
            workers.iter().filter_map(|(i, s)| Some((i.to_string(), s.as_ref()?.counters.clone()?))).collect();
        let counter = |encoder: &mut DescriptorEncoder,
                       name: &str,
                       help: &str,
                       rows: &mut dyn Iterator<Item = (Labels, u64)>|
         -> Result<(), std::fmt::Error> {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, v) in rows {
                ConstCounter::new(v).encode(e.encode_family(&labels)?)?;
            }
            Ok(())
        };
        let by_worker = |w: &str| vec![("worker", w.to_string())];
        counter(
            &mut encoder,
            "voxcore_calls",
            "Calls ended, by worker and outcome",
            &mut counters.iter().flat_map(|(w, c)| {
                c.calls_by_outcome.iter().map(move |(o, n)| (vec![("worker", w.clone()), ("outcome", o.clone())], *n))
            }),
        )?;
        counter(
            &mut encoder,
            "voxcore_frames_received",
            "Audio frames received from the gateway",
            &mut counters.iter().map(|(w, c)| (by_worker(w), c.frames_received)),
        )?;
        counter(
            &mut encoder,
            "voxcore_frames_sent",
            "Audio frames sent to the gateway",
            &mut counters.iter().map(|(w, c)| (by_worker(w), c.frames_sent)),
        )?;
        counter(
            &mut encoder,
            "voxcore_watchdog_hangups",
            "Calls a watchdog hung up, by worker and watchdog",
            &mut counters.iter().flat_map(|(w, c)| {
                c.watchdog_hangups.iter().map(move |(r, n)| (vec![("worker", w.clone()), ("reason", r.clone())], *n))
            }),
        )?;
        counter(
            &mut encoder,
            "voxcore_recording_upload_failures",
            "Failed recording upload attempts",
            &mut counters.iter().map(|(w, c)| (by_worker(w), c.recording_upload_failures)),
        )?;
        {
            let mut e = encoder.encode_descriptor(
                "voxcore_recordings_backlog",
                "Finished recordings waiting to upload",
                None,
                MetricType::Gauge,
            )?;
            for (w, c) in &counters {
                ConstGauge::new(c.recordings_backlog as i64).encode(e.encode_family(&by_worker(w))?)?;
            }
        }
        {
            // One folder shared by the host's workers: every worker reports the same count.
            let quarantined = counters.iter().map(|(_, c)| c.recordings_quarantined).max().unwrap_or(0);
            let e = encoder.encode_descriptor(
                "voxcore_recordings_quarantined",
                "Recordings set aside in the spool's quarantine folder",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(quarantined as i64).encode(e)?;
        }
        let mut e = encoder.encode_descriptor(
            "voxcore_frame_lateness_seconds",
            "How late inbound frames arrived: the wait beyond 20 ms per frame since the frame before",
            None,
            MetricType::Histogram,
        )?;
        for (w, c) in &counters {
            let mut previous = 0;
            let mut buckets: Vec<(f64, u64)> = c
                .lateness_bounds_seconds
                .iter()
                .zip(&c.lateness_le_counts)
                .map(|(bound, le)| {
                    let this = le.saturating_sub(previous);
                    previous = *le;
                    (*bound, this)
                })
                .collect();
            buckets.push((f64::MAX, c.frames_received.saturating_sub(previous)));
            e.encode_family(&by_worker(w))?.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                c.lateness_seconds_sum,
                c.frames_received,
                &buckets,
                None,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests stop on failure")]
    use super::*;

    #[test]
    fn workers_are_exported_by_state_and_with_their_counters() {
        let polled = Arc::new(Polled::default());
        let counters = pb::WorkerCounters {
            calls_by_outcome: [("completed".to_string(), 3)].into(),
            frames_received: 10,
            frames_sent: 9,
            lateness_bounds_seconds: vec![0.01, 0.1],
            lateness_le_counts: vec![7, 9],
            lateness_seconds_sum: 0.25,
            watchdog_hangups: [("no_media".to_string(), 1)].into(),
            recordings_backlog: 2,
            recording_upload_failures: 4,
            recordings_quarantined: 1,
        };
        polled.set(
            1,
            Some(pb::WorkerStatus {
                state: WorkerState::InCall as i32,
                counters: Some(counters),
                ..Default::default()
            }),
        );
        polled.set(2, None);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(HostMetrics(polled)));
        let text = vox_telemetry::metrics::render("voxcore", &registry);
        for line in [
            "voxcore_worker_slots{state=\"busy\"} 1",
            "voxcore_worker_slots{state=\"down\"} 1",
            "voxcore_worker_slots{state=\"idle\"} 0",
            "voxcore_worker_state{worker=\"2\",state=\"down\"} 1",
            "voxcore_calls_total{worker=\"1\",outcome=\"completed\"} 3",
            "voxcore_frames_received_total{worker=\"1\"} 10",
            "voxcore_frames_sent_total{worker=\"1\"} 9",
            "voxcore_watchdog_hangups_total{worker=\"1\",reason=\"no_media\"} 1",
            "voxcore_recordings_backlog{worker=\"1\"} 2",
            "voxcore_recordings_quarantined 1",
            "voxcore_frame_lateness_seconds_bucket{le=\"0.01\",worker=\"1\"} 7",
            "voxcore_frame_lateness_seconds_bucket{le=\"0.1\",worker=\"1\"} 9",
            "voxcore_frame_lateness_seconds_bucket{le=\"+Inf\",worker=\"1\"} 10",
            "voxcore_frame_lateness_seconds_count{worker=\"1\"} 10",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
