//! Following placed calls to their ends, as voxbridge records them.
//!
//! Carriers report to voxgate, which moves the calls in voxbridge; the dialler reads
//! the records back each tick (one `ListCalls` of the campaign's live calls, plus a
//! `GetCall` for each call that left that list) and turns what changed into pacing
//! [`Observation`]s and into the counters `/metrics` shows. Live calls the dialler did
//! not place itself (a previous leader's, after a failover or restart) are adopted, so
//! capacity is never double counted. Times are seconds since the Unix epoch.
//!
//! It also checks each campaign's ring-time floor (its `compliance.min_ring_seconds`, at
//! least `--min-ring-seconds`): a dial the carrier ended
//! as no-answer sooner than the floor after it accepted the call is counted as a short
//! ring, whatever timeout the carrier was given, so an operator can show the floor held
//! (or see which carrier cut it).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use vox_domain::call::CallState;
use vox_proto::backend::v1 as pb;

use crate::pacing::{DialResult, Observation};

/// Seconds since the epoch.
pub fn secs(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn ts(t: &Option<prost_types::Timestamp>) -> Option<f64> {
    t.as_ref().map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
}

/// One call the dialler follows.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub campaign_id: String,
    pub state: CallState,
    /// When it was leased (the dial's age counts from here).
    pub placed_at: f64,
    /// When the carrier accepted it (ringing starts about then).
    pub dialled_at: Option<f64>,
    pub answered_at: Option<f64>,
    /// Reported to pacing already.
    dial_ended: bool,
    connected: bool,
}

/// Per-campaign counts since this process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub placed: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub machine: u64,
    pub completed: u64,
    pub unanswered: u64,
    /// No-answers the carrier ended before the ring-time floor.
    pub short_rings: u64,
}

/// What one campaign's live calls look like now.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Ages of dials not yet answered or ended (leased, dialing, ringing).
    pub ringing: Vec<f64>,
    /// Ages (since the answer) of calls holding a slot (attaching, in progress).
    pub connected: Vec<f64>,
    /// Answered, waiting for a slot.
    pub held_answers: u32,
}

impl Live {
    /// Slots its calls hold or are about to hold.
    pub fn busy(&self) -> u32 {
        self.connected.len() as u32 + self.held_answers
    }

    pub fn total(&self) -> u32 {
        self.ringing.len() as u32 + self.busy()
    }
}

#[derive(Debug, Default)]
pub struct Tracker {
    calls: HashMap<String, Tracked>,
    counters: HashMap<String, Counters>,
    /// The ring-time floor, seconds (0: none), for campaigns without their own.
    min_ring: f64,
    /// Each campaign's own floor, seconds.
    campaign_min_ring: HashMap<String, f64>,
}

/// Slack on the ring-time floor for the time between the carrier starting to ring and
/// its answer to the create request.
const SHORT_RING_SLACK_SECONDS: f64 = 1.0;

impl Tracker {
    /// A tracker that counts no-answers shorter than `min_ring_seconds` as short rings.
    pub fn new(min_ring_seconds: f64) -> Self {
        Tracker { min_ring: min_ring_seconds, ..Tracker::default() }
    }

    /// Sets the campaign's ring-time floor (never under the tracker's own).
    pub fn set_min_ring(&mut self, campaign_id: &str, seconds: f64) {
        self.campaign_min_ring.insert(campaign_id.to_string(), seconds.max(self.min_ring));
    }

    /// The ring-time floor of the campaign's dials.
    pub fn min_ring(&self, campaign_id: &str) -> f64 {
        self.campaign_min_ring.get(campaign_id).copied().unwrap_or(self.min_ring)
    }

    /// Starts following a call the dialler just leased.
    pub fn leased(&mut self, call_id: &str, campaign_id: &str, now: f64) {
        self.calls.insert(
            call_id.to_string(),
            Tracked {
                campaign_id: campaign_id.to_string(),
                state: CallState::Leased,
                placed_at: now,
                dialled_at: None,
                answered_at: None,
                dial_ended: false,
                connected: false,
            },
        );
    }

    /// The carrier accepted the call at `now`.
    pub fn placed(&mut self, call_id: &str, now: f64) {
        if let Some(t) = self.calls.get_mut(call_id) {
            t.dialled_at = Some(now);
            self.counters.entry(t.campaign_id.clone()).or_default().placed += 1;
        }
    }

    /// The call went back to the pool without being placed.
    pub fn returned(&mut self, call_id: &str) {
        self.calls.remove(call_id);
    }

    pub fn counters(&self, campaign_id: &str) -> Counters {
        self.counters.get(campaign_id).copied().unwrap_or_default()
    }

    pub fn campaigns(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.calls.values().map(|t| t.campaign_id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Ids of followed calls of `campaign_id` missing from `live` (they ended).
    pub fn missing(&self, campaign_id: &str, live: &[pb::Call]) -> Vec<String> {
        let ids: std::collections::HashSet<&str> = live.iter().map(|c| c.id.as_str()).collect();
        self.calls
            .iter()
            .filter(|(id, t)| t.campaign_id == campaign_id && !ids.contains(id.as_str()))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Takes in the current record of a call and returns what pacing should learn. A
    /// terminal call stops being followed.
    pub fn update(&mut self, call: &pb::Call, now: f64) -> Vec<Observation> {
        let Ok(state) = CallState::from_proto("state", call.state) else { return Vec::new() };
        if state == CallState::Pending {
            // Back in the pool (a lease given back or expired): not a dial any more.
            self.calls.remove(&call.id);
            return Vec::new();
        }
        let mut out = Vec::new();
        let t = self.calls.entry(call.id.clone()).or_insert_with(|| Tracked {
            // Adopted: a previous leader's call.
            campaign_id: call.campaign_id.clone(),
            state,
            placed_at: ts(&call.updated_at).unwrap_or(now),
            dialled_at: None,
            answered_at: None,
            dial_ended: false,
            connected: false,
        });
        let counters = self.counters.entry(t.campaign_id.clone()).or_default();
        let min_ring = self.campaign_min_ring.get(&t.campaign_id).copied().unwrap_or(self.min_ring);
        t.state = state;
        let ended_at = ts(&call.ended_at).unwrap_or(now);
        let answered_at = ts(&call.answered_at);
        if let Some(a) = answered_at
            && !t.dial_ended
        {
            t.dial_ended = true;
            t.answered_at = Some(a);
            counters.answered += 1;
            out.push(Observation::DialEnded { at: a, after: (a - t.placed_at).max(0.0), result: DialResult::Human });
        }
        if matches!(state, CallState::Attaching | CallState::InProgress) && !t.connected {
            t.connected = true;
            out.push(Observation::Connected { at: t.answered_at.unwrap_or(now) });
        }
        if state.is_terminal() {
            if !t.dial_ended {
                let result = match state {
                    CallState::Machine => {
                        counters.machine += 1;
                        DialResult::Machine
                    }
                    CallState::NoAnswer => DialResult::NoAnswer,
                    _ => DialResult::BusyOrFailed,
                };
                if state != CallState::Machine {
                    counters.unanswered += 1;
                }
                if state == CallState::NoAnswer
                    && let Some(rang) = t.dialled_at.map(|d| ended_at - d)
                    && rang < min_ring - SHORT_RING_SLACK_SECONDS
                {
                    counters.short_rings += 1;
                    if counters.short_rings == 1 {
                        tracing::warn!(
                            call_id = %call.id,
                            campaign_id = %t.campaign_id,
                            rang_seconds = rang,
                            min_ring_seconds = min_ring,
                            "the carrier gave up on a dial before the ring-time floor (counted in voxdialler_short_rings_total)"
                        );
                    }
                }
                out.push(Observation::DialEnded { at: ended_at, after: (ended_at - t.placed_at).max(0.0), result });
            }
            if state == CallState::Abandoned {
                counters.abandoned += 1;
                out.push(Observation::Abandoned { at: ended_at });
            } else if t.connected {
                let held_for = (ended_at - t.answered_at.unwrap_or(ended_at)).max(0.0);
                out.push(Observation::SlotReleased { at: ended_at, held_for });
            }
            if state == CallState::Completed {
                counters.completed += 1;
            }
            self.calls.remove(&call.id);
        }
        out
    }

    /// The campaign's live calls now.
    pub fn live(&self, campaign_id: &str, now: f64) -> Live {
        let mut live = Live::default();
        for t in self.calls.values().filter(|t| t.campaign_id == campaign_id) {
            match t.state {
                CallState::Pending | CallState::Leased | CallState::Dialing | CallState::Ringing => {
                    live.ringing.push((now - t.placed_at).max(0.0))
                }
                CallState::Answered => live.held_answers += 1,
                CallState::Attaching | CallState::InProgress => {
                    live.connected.push((now - t.answered_at.unwrap_or(now)).max(0.0))
                }
                _ => {}
            }
        }
        live
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str, state: pb::CallState, answered: Option<i64>, ended: Option<i64>) -> pb::Call {
        pb::Call {
            id: id.into(),
            campaign_id: "cp_1".into(),
            state: state as i32,
            answered_at: answered.map(|s| prost_types::Timestamp { seconds: s, nanos: 0 }),
            ended_at: ended.map(|s| prost_types::Timestamp { seconds: s, nanos: 0 }),
            ..Default::default()
        }
    }

    #[test]
    fn a_connected_call_reports_its_answer_connect_and_release_once() {
        let mut t = Tracker::default();
        t.leased("ca_1", "cp_1", 100.0);
        t.placed("ca_1", 101.0);
        assert!(t.update(&call("ca_1", pb::CallState::Ringing, None, None), 105.0).is_empty());
        assert_eq!(t.live("cp_1", 105.0).ringing, vec![5.0]);
        let o = t.update(&call("ca_1", pb::CallState::InProgress, Some(110), None), 111.0);
        assert_eq!(
            o,
            vec![
                Observation::DialEnded { at: 110.0, after: 10.0, result: DialResult::Human },
                Observation::Connected { at: 110.0 }
            ]
        );
        assert!(t.update(&call("ca_1", pb::CallState::InProgress, Some(110), None), 112.0).is_empty());
        assert_eq!(t.live("cp_1", 120.0).connected, vec![10.0]);
        let o = t.update(&call("ca_1", pb::CallState::Completed, Some(110), Some(170)), 171.0);
        assert_eq!(o, vec![Observation::SlotReleased { at: 170.0, held_for: 60.0 }]);
        assert!(t.is_empty());
        let c = t.counters("cp_1");
        assert_eq!((c.placed, c.answered, c.completed, c.abandoned), (1, 1, 1, 0));
    }

    #[test]
    fn abandons_machines_and_no_answers_are_their_own_outcomes() {
        let mut t = Tracker::default();
        for id in ["a", "m", "n"] {
            t.leased(id, "cp_1", 0.0);
        }
        let o = t.update(&call("a", pb::CallState::Abandoned, Some(8), Some(10)), 10.0);
        assert_eq!(o[1], Observation::Abandoned { at: 10.0 });
        let o = t.update(&call("m", pb::CallState::Machine, None, Some(12)), 12.0);
        assert_eq!(o, vec![Observation::DialEnded { at: 12.0, after: 12.0, result: DialResult::Machine }]);
        let o = t.update(&call("n", pb::CallState::NoAnswer, None, Some(25)), 25.0);
        assert_eq!(o, vec![Observation::DialEnded { at: 25.0, after: 25.0, result: DialResult::NoAnswer }]);
        let c = t.counters("cp_1");
        assert_eq!((c.answered, c.abandoned, c.machine, c.unanswered), (1, 1, 1, 1));
    }

    #[test]
    fn no_answers_before_the_ring_time_floor_are_counted() {
        let mut t = Tracker::new(15.0);
        for id in ["short", "long", "busy"] {
            t.leased(id, "cp_1", 0.0);
            t.placed(id, 1.0);
        }
        t.update(&call("short", pb::CallState::NoAnswer, None, Some(9)), 9.0);
        t.update(&call("long", pb::CallState::NoAnswer, None, Some(16)), 16.0);
        t.update(&call("busy", pb::CallState::Busy, None, Some(3)), 3.0);
        assert_eq!(t.counters("cp_1").short_rings, 1);
    }

    #[test]
    fn each_campaign_is_held_to_its_own_ring_floor() {
        let mut t = Tracker::new(15.0);
        t.set_min_ring("cp_1", 30.0);
        t.set_min_ring("cp_2", 5.0);
        assert_eq!((t.min_ring("cp_1"), t.min_ring("cp_2"), t.min_ring("cp_3")), (30.0, 15.0, 15.0));
        t.leased("rang_20s", "cp_1", 0.0);
        t.placed("rang_20s", 1.0);
        // 19 s of ringing clears the fleet's 15 s but not the campaign's 30 s.
        t.update(&call("rang_20s", pb::CallState::NoAnswer, None, Some(20)), 20.0);
        assert_eq!(t.counters("cp_1").short_rings, 1);
    }
}
