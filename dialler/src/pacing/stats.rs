//! What a campaign's pacer has learned from the calls it placed: how dials end and
//! when (human answer, other early end such as busy, failed or an answering machine, or
//! given up at the ring timeout), and how long a connected call holds its slot.
//!
//! Both are [`HazardTable`]s fed with exposure (the ringing and connected calls seen in
//! each snapshot) and with events (the outcomes reported through
//! [`Observation`](super::Observation)). Times are seconds on the dialler's clock,
//! passed in with every snapshot and observation; nothing here reads a clock.
//!
//! How fast it learns and forgets:
//! * the prior is worth [`Priors::weight`] calls while nothing has finished and fades
//!   as calls finish (half its weight after [`Priors::fade_calls`], a tenth after nine
//!   times as many), so a campaign whose calls last 20 s is seen as such within its
//!   first minutes, not after hundreds of calls;
//! * old observations are forgotten with time constant
//!   [`PacerSettings::memory_seconds`], but never below
//!   [`PacerSettings::memory_floor_calls`] finished calls, so a large campaign follows
//!   a change of answer rate within minutes while a small one keeps enough calls to
//!   estimate anything;
//! * [`LiveStats::learn_past`] takes in calls that ended before this pacer existed
//!   (read back from the call records after a restart or failover), each weighted by
//!   its age as if it had been seen live.
//!
//! [`Priors::weight`]: super::Priors::weight
//! [`Priors::fade_calls`]: super::Priors::fade_calls
//! [`PacerSettings::memory_seconds`]: super::PacerSettings::memory_seconds
//! [`PacerSettings::memory_floor_calls`]: super::PacerSettings::memory_floor_calls

use super::hazard::HazardTable;
use super::{DialResult, Observation, PacerSettings, Snapshot};

const HUMAN: usize = 0;
const OTHER: usize = 1;

/// Running totals, for metrics and for the abandon feedback.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub dials_ended: u64,
    pub human_answers: u64,
    pub connects: u64,
    pub abandons: u64,
    pub releases: u64,
}

/// The live statistics of one campaign's calls.
#[derive(Debug, Clone)]
pub struct LiveStats {
    ring: HazardTable<2>,
    hold: HazardTable<1>,
    ring_timeout: f64,
    /// The oldest age at which a dial was given up unanswered: a carrier that gives up
    /// before the dialler's timeout leaves the ages beyond without data (and the prior
    /// would answer dials there).
    gave_up_at: Option<f64>,
    memory_seconds: f64,
    memory_floor: f64,
    fade_calls: f64,
    /// Finished dials and released slots, decayed like the tables.
    ring_finished: f64,
    hold_finished: f64,
    last_snapshot: Option<f64>,
    /// When the tables were last decayed.
    decayed_at: Option<f64>,
    totals: Totals,
}

impl LiveStats {
    pub fn new(settings: &PacerSettings) -> Self {
        let timeout = settings.ring_timeout_seconds;
        let prior = &settings.prior;
        // Constant prior hazards that end `answer_rate` and `other_end_rate` of dials
        // before the timeout; answers may come at any age, which is the cautious view.
        let unresolved = (1.0 - prior.answer_rate - prior.other_end_rate).clamp(0.01, 1.0);
        let total = -unresolved.ln() / timeout;
        let resolved = prior.answer_rate + prior.other_end_rate;
        let ring_prior = [total * prior.answer_rate / resolved, total * prior.other_end_rate / resolved];
        // Hold bins: 5 s up to 5 min, 30 s up to 15 min, 150 s up to 30 min, then one.
        let mut hold_starts = HazardTable::<1>::uniform_starts(5.0, 300.0);
        hold_starts.extend((1..=20).map(|i| 300.0 + 30.0 * i as f64));
        hold_starts.extend((1..=6).map(|i| 900.0 + 150.0 * i as f64));
        LiveStats {
            ring: HazardTable::new(HazardTable::<2>::uniform_starts(1.0, timeout), ring_prior, prior.weight),
            hold: HazardTable::new(hold_starts, [1.0 / prior.mean_hold_seconds], prior.weight).extrapolating_the_tail(),
            ring_timeout: timeout,
            gave_up_at: None,
            memory_seconds: settings.memory_seconds,
            memory_floor: settings.memory_floor_calls,
            fade_calls: prior.fade_calls,
            ring_finished: 0.0,
            hold_finished: 0.0,
            last_snapshot: None,
            decayed_at: None,
            totals: Totals::default(),
        }
    }

    /// Exposure of a subject that ended at `after` (its age) at time `at`: from its age
    /// at the last snapshot (which already counted the time before) to its end.
    fn exposure_start(&self, at: f64, after: f64) -> f64 {
        match self.last_snapshot {
            Some(t) => (after - (at - t)).max(0.0),
            None => 0.0,
        }
    }

    pub fn observe(&mut self, o: &Observation) {
        match *o {
            Observation::DialEnded { at, after, result } => {
                self.totals.dials_ended += 1;
                self.ring_finished += 1.0;
                let from = self.exposure_start(at, after);
                self.ring.add_exposure(from, after);
                match result {
                    DialResult::Human => {
                        self.totals.human_answers += 1;
                        self.ring.add_event(after, HUMAN);
                    }
                    DialResult::Machine | DialResult::BusyOrFailed => self.ring.add_event(after, OTHER),
                    DialResult::NoAnswer => self.gave_up_at = Some(self.gave_up_at.unwrap_or(0.0).max(after)),
                }
                self.ring.set_prior_scale(self.fade(self.ring_finished));
                self.ring.refresh();
            }
            Observation::Connected { .. } => self.totals.connects += 1,
            Observation::Abandoned { .. } => self.totals.abandons += 1,
            Observation::SlotReleased { at, held_for } => {
                self.totals.releases += 1;
                self.hold_finished += 1.0;
                let from = self.exposure_start(at, held_for);
                self.hold.add_exposure(from, held_for);
                self.hold.add_event(held_for, 0);
                self.hold.set_prior_scale(self.fade(self.hold_finished));
                self.hold.refresh();
            }
        }
    }

    /// The prior's share of its full weight after `finished` calls.
    fn fade(&self, finished: f64) -> f64 {
        self.fade_calls / (self.fade_calls + finished.max(0.0))
    }

    /// Forgets what is older than the memory allows, up to `now`: each table decays
    /// while it holds more than the floor of finished calls.
    fn decay_to(&mut self, now: f64) {
        let Some(d) = self.decayed_at.map(|t| (now - t).max(0.0)) else {
            self.decayed_at = Some(now);
            return;
        };
        self.decayed_at = Some(now.max(self.decayed_at.unwrap_or(now)));
        let factor = (-d / self.memory_seconds).exp();
        if self.ring_finished * factor >= self.memory_floor {
            self.ring.decay(factor);
            self.ring_finished *= factor;
        } else if self.ring_finished > self.memory_floor {
            let f = self.memory_floor / self.ring_finished;
            self.ring.decay(f);
            self.ring_finished *= f;
        }
        if self.hold_finished * factor >= self.memory_floor {
            self.hold.decay(factor);
            self.hold_finished *= factor;
        } else if self.hold_finished > self.memory_floor {
            let f = self.memory_floor / self.hold_finished;
            self.hold.decay(f);
            self.hold_finished *= f;
        }
    }

    fn refresh(&mut self) {
        self.ring.set_prior_scale(self.fade(self.ring_finished));
        self.hold.set_prior_scale(self.fade(self.hold_finished));
        self.ring.refresh();
        self.hold.refresh();
    }

    /// Counts the time the snapshot's calls spent at risk since the last snapshot,
    /// forgets a little of the past and refreshes the estimates.
    pub fn accrue(&mut self, s: &Snapshot<'_>) {
        let since = self.last_snapshot.map(|t| (s.now - t).max(0.0));
        for &age in s.ringing {
            self.ring.add_exposure(since.map_or(0.0, |d| age - d), age);
        }
        for &age in s.connected {
            self.hold.add_exposure(since.map_or(0.0, |d| age - d), age);
        }
        self.decay_to(s.now);
        self.refresh();
        self.last_snapshot = Some(s.now);
    }

    /// Takes in outcomes of calls that ended before this pacer saw any snapshot (read
    /// back from the call records), in any order: each is counted whole (the calls are
    /// over) and weighted by its age at `now` as if it had been seen live. Call before
    /// the first [`accrue`](Self::accrue); afterwards outcomes go through
    /// [`observe`](Self::observe).
    pub fn learn_past(&mut self, past: &[Observation], now: f64) {
        if self.is_live() {
            return;
        }
        let mut past: Vec<&Observation> = past.iter().filter(|o| o.at() <= now).collect();
        past.sort_by(|a, b| a.at().total_cmp(&b.at()));
        for o in past {
            self.decay_to(o.at());
            self.observe(o);
        }
        self.decay_to(now);
        self.refresh();
    }

    /// Whether a snapshot was seen: from then on outcomes come live, not from the past.
    pub fn is_live(&self) -> bool {
        self.last_snapshot.is_some()
    }

    /// Calls the estimates rest on now: finished dials (decayed) and released slots.
    pub fn learned_calls(&self) -> (f64, f64) {
        (self.ring_finished, self.hold_finished)
    }

    /// The age at which dials stop ringing: the dialler's timeout, or sooner if the
    /// carrier gives up sooner.
    pub fn ring_timeout(&self) -> f64 {
        self.gave_up_at.map_or(self.ring_timeout, |t| t.min(self.ring_timeout))
    }

    /// Share of dials answered by a human (before the ring timeout).
    pub fn answer_rate(&self) -> f64 {
        self.ring.ended_by(self.ring_timeout(), HUMAN)
    }

    /// P(a dial ringing for `age` s is answered by a human within the next `within` s).
    pub fn p_answer_within(&self, age: f64, within: f64) -> f64 {
        self.ring.p_cause_between(age, (age + within).min(self.ring_timeout()), HUMAN)
    }

    /// P(a dial ringing for `age` s is answered by a human at all).
    pub fn p_answer_eventually(&self, age: f64) -> f64 {
        self.p_answer_within(age, self.ring_timeout())
    }

    /// P(a call holding its slot for `age` s frees it within the next `within` s).
    pub fn p_release_within(&self, age: f64, within: f64) -> f64 {
        self.hold.p_any_between(age, age + within)
    }

    /// Mean seconds a connected call holds its slot (talk plus release).
    pub fn mean_hold_seconds(&self) -> f64 {
        self.hold.mean_residual(0.0)
    }

    /// The answer delay of human answers as `(seconds, probability)` points, one per
    /// second of ringing, the probabilities summing to 1.
    pub fn answer_delay_points(&self) -> Vec<(f64, f64)> {
        let total = self.answer_rate();
        let timeout = self.ring_timeout();
        let steps = timeout.ceil() as usize;
        let mut out = Vec::with_capacity(steps);
        let mut before = 0.0;
        for i in 0..steps {
            let end = ((i + 1) as f64).min(timeout);
            let by = self.ring.ended_by(end, HUMAN);
            let mass = if total > 0.0 { (by - before) / total } else { 0.0 };
            before = by;
            if mass > 1e-4 {
                out.push((i as f64 + 0.5, mass));
            }
        }
        let sum: f64 = out.iter().map(|p| p.1).sum();
        for p in &mut out {
            p.1 /= sum.max(1e-12);
        }
        out
    }

    /// Mean seconds from dial to human answer.
    pub fn mean_time_to_answer(&self) -> f64 {
        self.answer_delay_points().iter().map(|(t, p)| t * p).sum()
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }
}
