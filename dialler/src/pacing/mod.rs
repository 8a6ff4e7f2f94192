//! Pacing: how many calls a campaign starts this tick.
//!
//! The dialler's tick loop asks each campaign's [`Pacer`] once per tick, handing it a
//! [`Snapshot`] of the campaign's situation (free slots, dials ringing, calls holding a
//! slot and their ages), and reports every outcome to it as an [`Observation`]. The
//! pacer keeps its own [`LiveStats`] from those observations. Pacing is pure: time is
//! a number carried by snapshots and observations (seconds on the dialler's clock),
//! and nothing here sleeps, reads a clock or draws random numbers, so the benchmark
//! ([`crate::bench`]) runs exactly this code on a virtual clock.
//!
//! Strategies ([`Strategy`]):
//! * **progressive**: one dial per free slot, counting dials already ringing; never
//!   abandons, idles slots through every unanswered dial;
//! * **fixed ratio** `r`: keep `r` dials ringing per free slot;
//! * **erlang**: open loop, dial so that the expected human answers of all ringing
//!   dials match the free slots (the benchmark's baseline);
//! * **predictive** (the default): see [`predictive`] for the algorithm.

pub mod controller;
pub mod hazard;
pub mod predictive;
pub mod stats;

use vox_domain::campaign::{Pacing, PacingMode};

pub use controller::{AbandonController, ControllerSettings};
pub use stats::{LiveStats, Totals};

/// What a campaign looks like at the start of a tick. Ages are seconds.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// Now, in seconds on the dialler's clock (any origin; only differences count).
    pub now: f64,
    /// Slots the campaign may use right now (its share of the fleet).
    pub slots: u32,
    /// Of those, slots idle now.
    pub free_slots: u32,
    /// Human answers waiting for a slot (still inside the abandon window).
    pub held_answers: u32,
    /// Age of each dial still ringing (placed, not answered, failed or given up).
    pub ringing: &'a [f64],
    /// Age of each call holding a slot (since it connected; talk, then release).
    pub connected: &'a [f64],
}

/// How a dial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialResult {
    /// A person answered (whether or not a slot was free for them).
    Human,
    /// An answering machine; never counted as a human answer.
    Machine,
    /// Busy, rejected or failed.
    BusyOrFailed,
    /// Given up at the ring timeout.
    NoAnswer,
}

/// Something the pacer learns from; `at` is when it happened (dialler clock seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation {
    /// A dial stopped ringing `after` seconds after it was placed.
    DialEnded { at: f64, after: f64, result: DialResult },
    /// A human answer reached a slot.
    Connected { at: f64 },
    /// A human answer found no free slot within the abandon window.
    Abandoned { at: f64 },
    /// A call ended and its slot is free again, `held_for` seconds after it connected
    /// (talk plus release).
    SlotReleased { at: f64, held_for: f64 },
}

impl Observation {
    /// When it happened.
    pub fn at(&self) -> f64 {
        match *self {
            Observation::DialEnded { at, .. }
            | Observation::Connected { at }
            | Observation::Abandoned { at }
            | Observation::SlotReleased { at, .. } => at,
        }
    }
}

/// How a campaign decides how many calls to start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    Progressive,
    FixedRatio(f64),
    Erlang,
    Predictive,
}

impl Strategy {
    /// The name used in metrics and the benchmark's output.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Progressive => "progressive",
            Strategy::FixedRatio(_) => "fixed",
            Strategy::Erlang => "erlang",
            Strategy::Predictive => "predictive",
        }
    }
}

/// The cautious beliefs a pacer starts from, worth `weight` observed calls each until
/// calls finish.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Priors {
    /// Share of dials answered by a person (high is cautious).
    pub answer_rate: f64,
    /// Share of dials ending early otherwise (busy, failed, machine).
    pub other_end_rate: f64,
    /// Mean seconds a connected call holds its slot (long is cautious).
    pub mean_hold_seconds: f64,
    /// Calls the prior is worth before anything finished.
    pub weight: f64,
    /// Finished calls after which the prior keeps half its weight (`fade / (fade + n)`
    /// after `n`).
    pub fade_calls: f64,
}

impl Default for Priors {
    fn default() -> Self {
        Priors { answer_rate: 0.5, other_end_rate: 0.1, mean_hold_seconds: 180.0, weight: 5.0, fade_calls: 3.0 }
    }
}

/// Everything a pacer is configured with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacerSettings {
    /// Highest acceptable share of human answers abandoned (0.03 = 3%).
    pub abandon_target: f64,
    /// How long an answer may wait for a slot before it counts as abandoned.
    pub abandon_window_seconds: f64,
    /// When the dialler gives up on a ringing dial.
    pub ring_timeout_seconds: f64,
    /// Time constant of forgetting old observations.
    pub memory_seconds: f64,
    /// Forgetting stops while fewer finished calls than this are remembered (per table:
    /// dials for the answer estimates, released slots for the hold time).
    pub memory_floor_calls: f64,
    /// Never keep more than this many dials ringing per slot.
    pub max_ringing_per_slot: f64,
    pub prior: Priors,
    pub controller: ControllerSettings,
}

impl Default for PacerSettings {
    fn default() -> Self {
        PacerSettings {
            abandon_target: 0.03,
            abandon_window_seconds: 2.0,
            ring_timeout_seconds: 25.0,
            memory_seconds: 900.0,
            memory_floor_calls: 300.0,
            max_ringing_per_slot: 10.0,
            prior: Priors::default(),
            controller: ControllerSettings::default(),
        }
    }
}

/// One campaign's pacer: a strategy, what it has learned, and the abandon feedback.
#[derive(Debug, Clone)]
pub struct Pacer {
    strategy: Strategy,
    settings: PacerSettings,
    stats: LiveStats,
    controller: AbandonController,
}

impl Pacer {
    pub fn new(strategy: Strategy, settings: PacerSettings) -> Self {
        Pacer {
            strategy,
            stats: LiveStats::new(&settings),
            controller: AbandonController::new(settings.abandon_target, settings.controller),
            settings,
        }
    }

    /// The pacer a campaign's settings ask for, giving up on dials after
    /// `ring_timeout_seconds`, with default tuning otherwise.
    pub fn for_campaign(pacing: &Pacing, ring_timeout_seconds: f64) -> Self {
        let strategy = match pacing.mode {
            PacingMode::Predictive => Strategy::Predictive,
            PacingMode::Progressive => Strategy::Progressive,
            PacingMode::FixedRatio => Strategy::FixedRatio(pacing.fixed_ratio),
        };
        Pacer::new(
            strategy,
            PacerSettings { abandon_target: pacing.abandon_target, ring_timeout_seconds, ..PacerSettings::default() },
        )
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    pub fn stats(&self) -> &LiveStats {
        &self.stats
    }

    /// Abandons the campaign can still afford within its target (see [`controller`]).
    /// The campaign's abandon target (abandons / human answers), as its settings say.
    pub fn abandon_target(&self) -> f64 {
        self.settings.abandon_target
    }

    pub fn abandon_credit(&self) -> f64 {
        self.controller.credit()
    }

    /// The campaign's regulated period as voxbridge counts it (see
    /// [`AbandonController::set_ledger`]): a hard limit on the risk the pacer takes.
    pub fn set_ledger(&mut self, live_answers: u64, abandons: u64, limit: f64) {
        self.controller.set_ledger(live_answers, abandons, limit);
    }

    /// Abandons the regulated period can still take; `None` before the ledger is read.
    pub fn ledger_credit(&self) -> Option<f64> {
        self.controller.ledger_credit()
    }

    /// The predictive pacer's current risk threshold (see [`controller`]).
    pub fn risk_threshold(&self) -> f64 {
        self.controller.threshold()
    }

    /// Learns from one outcome. Report outcomes in time order.
    pub fn observe(&mut self, o: Observation) {
        match o {
            Observation::Connected { at } => self.controller.record_answer(false, at),
            Observation::Abandoned { at } => self.controller.record_answer(true, at),
            _ => {}
        }
        self.stats.observe(&o);
    }

    /// Learns from calls that ended before this pacer existed (see
    /// [`LiveStats::learn_past`]); their answers and abandons also count in the abandon
    /// budget, so a restarted dialler neither forgets recent abandons nor starts from
    /// an empty budget.
    pub fn learn_past(&mut self, past: &[Observation], now: f64) {
        if self.stats.is_live() {
            return;
        }
        let mut sorted: Vec<&Observation> = past.iter().filter(|o| o.at() <= now).collect();
        sorted.sort_by(|a, b| a.at().total_cmp(&b.at()));
        for o in sorted {
            match o {
                Observation::Connected { at } => self.controller.record_answer(false, *at),
                Observation::Abandoned { at } => self.controller.record_answer(true, *at),
                _ => {}
            }
        }
        self.stats.learn_past(past, now);
    }

    /// How many calls to start now.
    pub fn calls_to_start(&mut self, s: &Snapshot<'_>) -> u32 {
        self.stats.accrue(s);
        let ringing = s.ringing.len() as f64;
        let open = f64::from(s.free_slots) - f64::from(s.held_answers);
        let cap = (self.settings.max_ringing_per_slot * f64::from(s.slots) - ringing).max(0.0);
        let wanted = match self.strategy {
            Strategy::Progressive => open - ringing,
            Strategy::FixedRatio(r) => (r * open).round() - ringing,
            Strategy::Erlang => {
                let expected: f64 = s.ringing.iter().map(|&age| self.stats.p_answer_eventually(age)).sum();
                ((open - expected) / self.stats.answer_rate().max(0.01)).round()
            }
            Strategy::Predictive => f64::from(predictive::calls_to_start(
                &self.stats,
                s,
                self.controller.threshold(),
                self.settings.abandon_window_seconds,
                cap as u32,
            )),
        };
        // With the regulated period at its limit no strategy dials ahead of its free
        // slots (predictive is held by its threshold, which is then 0).
        let wanted = if self.ledger_credit().is_some_and(|c| c <= 0.0) && self.strategy != Strategy::Predictive {
            wanted.min(open - ringing)
        } else {
            wanted
        };
        wanted.clamp(0.0, cap) as u32
    }
}

#[cfg(test)]
mod tests;
