//! What a campaign's pacer learns from the campaign's call records when it starts: after
//! a restart, a failover or a change of pacing settings the dialler reads back the calls
//! that ended recently (`ListCalls`, terminal states) and turns each record into the
//! outcomes it would have reported live, so pacing resumes with the learned answer rate,
//! ring and hold times and abandon budget instead of the cautious prior. The dialler
//! keeps nothing it cannot re-read: voxbridge's records are the memory.
//!
//! A record carries `answered_at` and `ended_at`, and keeps its last lease, whose
//! `expires_at` is the lease time plus the lease TTL the dialler asked for: the dial's
//! age counts from the lease, live as here, so the dial started at `expires_at −
//! --call-lease-seconds` (a record without a lease has no ring time to learn from; its
//! hold time and answer still count).

use vox_proto::backend::v1 as pb;

use crate::pacing::{DialResult, Observation};

/// Call states a dial ends in.
pub const ENDED: [pb::CallState; 7] = [
    pb::CallState::Completed,
    pb::CallState::Abandoned,
    pb::CallState::NoAnswer,
    pb::CallState::Busy,
    pb::CallState::Failed,
    pb::CallState::Machine,
    pb::CallState::Canceled,
];

/// How far back records are read: older ones weigh next to nothing after the pacer's
/// forgetting (a 15-minute time constant) unless the campaign is small, and then a few
/// hours hold plenty.
pub const HISTORY_SECONDS: f64 = 6.0 * 3600.0;

/// At most this many records are read per campaign (pages of 1000, newest created
/// first): enough for every estimate, and a bounded cost per campaign at takeover.
pub const HISTORY_MAX_CALLS: usize = 5000;

fn ts(t: &Option<prost_types::Timestamp>) -> Option<f64> {
    t.as_ref().map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
}

/// The outcomes of the calls that ended at or after `since`, as pacing observations
/// (in no particular order). `lease_seconds` is the lease TTL the dialler asks for.
pub fn past_outcomes(calls: &[pb::Call], lease_seconds: f64, since: f64) -> Vec<Observation> {
    let mut out = Vec::new();
    for c in calls {
        let Some(ended) = ts(&c.ended_at).filter(|&e| e >= since) else { continue };
        let state = c.state();
        if state == pb::CallState::Canceled || !ENDED.contains(&state) {
            // An operator's cancel says nothing about the line.
            continue;
        }
        let dialled = c.lease.as_ref().and_then(|l| ts(&l.expires_at)).map(|e| e - lease_seconds);
        let ring = |at: f64| dialled.map(|d| at - d).filter(|after| (0.0..3600.0).contains(after));
        match ts(&c.answered_at) {
            Some(answered) => {
                if let Some(after) = ring(answered) {
                    out.push(Observation::DialEnded { at: answered, after, result: DialResult::Human });
                }
                if state == pb::CallState::Abandoned {
                    out.push(Observation::Abandoned { at: ended });
                } else if !c.node_id.is_empty() {
                    out.push(Observation::Connected { at: answered });
                    out.push(Observation::SlotReleased { at: ended, held_for: (ended - answered).max(0.0) });
                }
            }
            None => {
                let result = match state {
                    pb::CallState::Machine => DialResult::Machine,
                    pb::CallState::NoAnswer => DialResult::NoAnswer,
                    _ => DialResult::BusyOrFailed,
                };
                if let Some(after) = ring(ended) {
                    out.push(Observation::DialEnded { at: ended, after, result });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: f64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds: s.floor() as i64, nanos: ((s - s.floor()) * 1e9) as i32 })
    }

    fn call(state: pb::CallState, leased: f64, answered: Option<f64>, ended: f64, node: &str) -> pb::Call {
        pb::Call {
            state: state as i32,
            lease: Some(pb::CallLease { expires_at: at(leased + 30.0), ..Default::default() }),
            answered_at: answered.and_then(at),
            ended_at: at(ended),
            node_id: node.into(),
            ..Default::default()
        }
    }

    #[test]
    fn records_become_the_outcomes_pacing_would_have_seen_live() {
        let calls = [
            call(pb::CallState::Completed, 1000.0, Some(1009.0), 1070.0, "n1"),
            call(pb::CallState::Abandoned, 1000.0, Some(1005.0), 1008.0, ""),
            call(pb::CallState::NoAnswer, 1000.0, None, 1026.0, ""),
            call(pb::CallState::Machine, 1000.0, None, 1012.0, ""),
            call(pb::CallState::Canceled, 1000.0, None, 1003.0, ""),
            // Ended before the window: left out.
            call(pb::CallState::Busy, 100.0, None, 103.0, ""),
        ];
        let o = past_outcomes(&calls, 30.0, 500.0);
        assert_eq!(
            o,
            vec![
                Observation::DialEnded { at: 1009.0, after: 9.0, result: DialResult::Human },
                Observation::Connected { at: 1009.0 },
                Observation::SlotReleased { at: 1070.0, held_for: 61.0 },
                Observation::DialEnded { at: 1005.0, after: 5.0, result: DialResult::Human },
                Observation::Abandoned { at: 1008.0 },
                Observation::DialEnded { at: 1026.0, after: 26.0, result: DialResult::NoAnswer },
                Observation::DialEnded { at: 1012.0, after: 12.0, result: DialResult::Machine },
            ]
        );
        // Without a lease there is no ring time, but the hold time still counts.
        let mut no_lease = calls[0].clone();
        no_lease.lease = None;
        let o = past_outcomes(&[no_lease], 30.0, 0.0);
        assert_eq!(o.len(), 2, "{o:?}");
        assert!(matches!(o[1], Observation::SlotReleased { held_for, .. } if (held_for - 61.0).abs() < 1e-6));
    }
}
