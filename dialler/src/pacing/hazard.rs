//! A piecewise-constant hazard learned from occurrences and exposure: the life-table
//! estimator the pacer uses for "how soon will this dial be answered" and "how soon
//! will this call free its slot", given how old the dial or call already is.
//!
//! Time is cut into bins by age. In each bin the hazard of cause `c` is
//! `events[c] / exposure`, where exposure is the seconds that subjects spent at that
//! age while still at risk (Kalbfleisch & Prentice, *The Statistical Analysis of
//! Failure Time Data*, 2nd ed. 2002, ch. 1–3: the occurrence/exposure rate of the
//! piecewise exponential model). Counting exposure of subjects that have not ended yet
//! is what makes the estimate unbiased early in a campaign, when the only calls that
//! have ended are the short ones (a plain mean of finished talk times would say calls
//! are short and over-dial).
//!
//! Memory is bounded (a few numbers per bin); [`HazardTable::decay`] forgets old data
//! so the estimate follows a campaign whose behaviour drifts, and a prior of a few
//! pseudo-subjects gives sane answers before anything was observed. The prior's weight
//! is set by the owner ([`HazardTable::set_prior_scale`]) and fades as subjects finish,
//! so after a few dozen calls the data speaks for itself.
//!
//! For durations that always end (a call's hold on its slot; see
//! [`HazardTable::extrapolating_the_tail`]), beyond the oldest age at which anything
//! ended there are no events, only the exposure of subjects still at risk there (calls
//! in progress longer than any finished one). A bin-by-bin estimate leaves that tail to
//! the prior, which early in a campaign is most of the mean: a 180 s prior holding on
//! for 20 s calls reported handle times of 100 s and more. So past the last event the
//! prior's pseudo-subjects end at the data's rate, pooled over the last
//! [`TAIL_EVENTS`] events' ages and everything beyond (the exponential-tail MLE of the
//! piecewise model, its exposure including the calls still running there): where much
//! exposure saw no event the hazard stays near zero, where little did it follows the
//! data's tail. Dials do not extrapolate: busy lines end in 3 s, answers come later,
//! and the first seconds of a campaign must not say nobody answers.

/// Events (decayed counts) the hazard past the last event is pooled over.
pub const TAIL_EVENTS: f64 = 3.0;

/// Learned hazards for `C` competing causes over age bins (seconds).
#[derive(Debug, Clone)]
pub struct HazardTable<const C: usize> {
    /// Bin `i` covers `[starts[i], starts[i + 1])`; the last bin has no end.
    starts: Vec<f64>,
    exposure: Vec<f64>,
    events: Vec<[f64; C]>,
    prior_exposure: Vec<f64>,
    prior_events: Vec<[f64; C]>,
    /// Weight of the prior now, as a share of its full weight (see `set_prior_scale`).
    prior_scale: f64,
    /// Past the last event, shrink towards the data's pooled tail rather than the prior
    /// (see [`HazardTable::extrapolating_the_tail`]).
    data_tail: bool,
    // Derived by `refresh`.
    rate: Vec<[f64; C]>,
    total: Vec<f64>,
    /// Cumulative total hazard Λ at each bin start.
    cum_hazard: Vec<f64>,
    /// P(ended by cause c before each bin start), from age 0.
    cum_cause: Vec<[f64; C]>,
}

impl<const C: usize> HazardTable<C> {
    /// A table over bins starting at `starts` (strictly increasing, first 0), with a
    /// prior of `prior_weight` pseudo-subjects whose cause hazards are `prior_rate`.
    pub fn new(starts: Vec<f64>, prior_rate: [f64; C], prior_weight: f64) -> Self {
        assert!(!starts.is_empty() && starts[0] == 0.0, "bins start at age 0");
        assert!(starts.windows(2).all(|w| w[0] < w[1]), "bins increase");
        let n = starts.len();
        let h: f64 = prior_rate.iter().sum();
        let mut prior_exposure = vec![0.0; n];
        let mut prior_events = vec![[0.0; C]; n];
        for i in 0..n {
            // Seconds a pseudo-subject following the prior spends in bin i.
            let survive = |x: f64| (-h * x).exp();
            let exposure = match starts.get(i + 1) {
                Some(&end) if h > 0.0 => (survive(starts[i]) - survive(end)) / h,
                Some(&end) => end - starts[i],
                None if h > 0.0 => survive(starts[i]) / h,
                None => 1.0,
            };
            prior_exposure[i] = prior_weight * exposure;
            for c in 0..C {
                prior_events[i][c] = prior_exposure[i] * prior_rate[c];
            }
        }
        let mut table = HazardTable {
            starts,
            exposure: vec![0.0; n],
            events: vec![[0.0; C]; n],
            prior_exposure,
            prior_events,
            prior_scale: 1.0,
            data_tail: false,
            rate: vec![[0.0; C]; n],
            total: vec![0.0; n],
            cum_hazard: vec![0.0; n],
            cum_cause: vec![[0.0; C]; n],
        };
        table.refresh();
        table
    }

    /// Bins `[0, step), [step, 2 step), …` up to `end`, then `[end, ∞)`.
    pub fn uniform_starts(step: f64, end: f64) -> Vec<f64> {
        let n = (end / step).ceil() as usize;
        (0..=n).map(|i| i as f64 * step).collect()
    }

    fn bin(&self, age: f64) -> usize {
        self.starts.partition_point(|&s| s <= age).saturating_sub(1)
    }

    /// Records that one subject was at risk from age `from` to age `to`.
    pub fn add_exposure(&mut self, from: f64, to: f64) {
        let (from, to) = (from.max(0.0), to.max(0.0));
        if to <= from {
            return;
        }
        let mut i = self.bin(from);
        let mut at = from;
        while at < to {
            let end = self.starts.get(i + 1).copied().unwrap_or(f64::INFINITY).min(to);
            self.exposure[i] += end - at;
            at = end;
            i += 1;
        }
    }

    /// Records that one subject ended by `cause` at `age`.
    pub fn add_event(&mut self, age: f64, cause: usize) {
        let i = self.bin(age.max(0.0));
        self.events[i][cause] += 1.0;
    }

    /// Multiplies everything observed so far by `factor` (0..=1); the prior stays.
    pub fn decay(&mut self, factor: f64) {
        for (e, ev) in self.exposure.iter_mut().zip(self.events.iter_mut()) {
            *e *= factor;
            for x in ev.iter_mut() {
                *x *= factor;
            }
        }
    }

    /// Past the oldest age at which anything ended, the prior's pseudo-subjects end at the
    /// data's pooled tail rate rather than at the prior's. For durations whose every
    /// subject ends (calls holding a slot); not for dials, whose early ends (busy in 3 s)
    /// say nothing about the answers that come later.
    pub fn extrapolating_the_tail(mut self) -> Self {
        self.data_tail = true;
        self.refresh();
        self
    }

    /// Sets the prior's weight to `scale` (0..=1) of what it was created with; takes
    /// effect at the next [`refresh`](Self::refresh).
    pub fn set_prior_scale(&mut self, scale: f64) {
        self.prior_scale = scale.clamp(0.0, 1.0);
    }

    /// Recomputes the hazards and cumulative curves from what was recorded.
    pub fn refresh(&mut self) {
        let n = self.starts.len();
        let w = self.prior_scale;
        let rate_of =
            |events: &[f64; C], exposure: f64, c: usize| if exposure > 0.0 { events[c] / exposure } else { 0.0 };
        // The tail: from the bin holding the last events (at least TAIL_EVENTS of them,
        // counted back from the oldest age that had one) to the end, pooled.
        let event_count = |i: usize| self.events[i].iter().sum::<f64>();
        let last = if self.data_tail { (0..n).rev().find(|&i| event_count(i) > 1e-9) } else { None };
        let tail_from = last.map(|last| {
            let mut from = last;
            let mut seen = event_count(last);
            while from > 0 && seen < TAIL_EVENTS {
                from -= 1;
                seen += event_count(from);
            }
            from
        });
        let pooled = tail_from.map(|from| {
            let mut events = [0.0; C];
            let mut exposure = 0.0;
            for i in from..n {
                exposure += self.exposure[i] + w * self.prior_exposure[i];
                for (c, e) in events.iter_mut().enumerate() {
                    *e += self.events[i][c] + w * self.prior_events[i][c];
                }
            }
            (events, exposure)
        });
        for i in 0..n {
            let mut total = 0.0;
            for c in 0..C {
                let r = match (last, &pooled) {
                    (Some(last), Some((events, exposure))) if i > last => {
                        // No event here: the data's exposure (calls still running) with
                        // the prior's pseudo-exposure at the pooled rate, not the prior's.
                        let pooled_rate = rate_of(events, *exposure, c);
                        let pseudo = w * self.prior_exposure[i];
                        if self.exposure[i] + pseudo > 0.0 {
                            pseudo * pooled_rate / (self.exposure[i] + pseudo)
                        } else {
                            pooled_rate
                        }
                    }
                    _ => {
                        let mut events = self.events[i];
                        for (e, p) in events.iter_mut().zip(&self.prior_events[i]) {
                            *e += w * p;
                        }
                        rate_of(&events, self.exposure[i] + w * self.prior_exposure[i], c)
                    }
                };
                self.rate[i][c] = r;
                total += r;
            }
            self.total[i] = total;
        }
        for i in 0..n.saturating_sub(1) {
            let len = self.starts[i + 1] - self.starts[i];
            let h = self.total[i];
            self.cum_hazard[i + 1] = self.cum_hazard[i] + h * len;
            let s = (-self.cum_hazard[i]).exp();
            let ended = if h > 0.0 { s * (1.0 - (-h * len).exp()) / h } else { 0.0 };
            for c in 0..C {
                self.cum_cause[i + 1][c] = self.cum_cause[i][c] + ended * self.rate[i][c];
            }
        }
    }

    fn cum_hazard_at(&self, age: f64) -> f64 {
        let i = self.bin(age);
        self.cum_hazard[i] + self.total[i] * (age - self.starts[i])
    }

    /// P(still at risk at `age`), from age 0.
    pub fn survival(&self, age: f64) -> f64 {
        (-self.cum_hazard_at(age.max(0.0))).exp()
    }

    /// P(ended by `cause` before `age`), from age 0.
    pub fn ended_by(&self, age: f64, cause: usize) -> f64 {
        let age = age.max(0.0);
        let i = self.bin(age);
        let h = self.total[i];
        if h <= 0.0 {
            return self.cum_cause[i][cause];
        }
        let s = (-self.cum_hazard[i]).exp();
        self.cum_cause[i][cause] + s * (self.rate[i][cause] / h) * (1.0 - (-h * (age - self.starts[i])).exp())
    }

    /// P(ends, any cause, before age `to` | at risk at age `from`).
    pub fn p_any_between(&self, from: f64, to: f64) -> f64 {
        if to <= from {
            return 0.0;
        }
        1.0 - (self.cum_hazard_at(from.max(0.0)) - self.cum_hazard_at(to)).exp()
    }

    /// P(ends by `cause` before age `to` | at risk at age `from`).
    pub fn p_cause_between(&self, from: f64, to: f64, cause: usize) -> f64 {
        if to <= from {
            return 0.0;
        }
        let s = self.survival(from);
        if s < 1e-200 {
            let i = self.bin(from.max(0.0));
            let share = if self.total[i] > 0.0 { self.rate[i][cause] / self.total[i] } else { 0.0 };
            return share * self.p_any_between(from, to);
        }
        ((self.ended_by(to, cause) - self.ended_by(from, cause)) / s).clamp(0.0, 1.0)
    }

    /// Expected remaining time at risk from age `from` (the mean residual life).
    pub fn mean_residual(&self, from: f64) -> f64 {
        let from = from.max(0.0);
        let s0 = self.survival(from);
        if s0 <= 0.0 {
            return 0.0;
        }
        let mut sum = 0.0;
        let mut at = from;
        for i in self.bin(from)..self.starts.len() {
            let h = self.total[i];
            let s = self.survival(at);
            match self.starts.get(i + 1) {
                Some(&end) => {
                    let len = end - at;
                    sum += if h > 0.0 { s * (1.0 - (-h * len).exp()) / h } else { s * len };
                    at = end;
                }
                None if h > 0.0 => sum += s / h,
                None => return f64::INFINITY,
            }
        }
        sum / s0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn prior_alone_is_the_prior_exponential() {
        let t = HazardTable::<1>::new(HazardTable::<1>::uniform_starts(5.0, 100.0), [1.0 / 50.0], 3.0);
        assert!((t.survival(50.0) - (-1.0f64).exp()).abs() < 1e-9);
        assert!((t.mean_residual(0.0) - 50.0).abs() < 1e-6);
        assert!((t.p_any_between(10.0, 20.0) - (1.0 - (-0.2f64).exp())).abs() < 1e-9);
    }

    #[test]
    fn learns_a_fixed_duration_despite_censoring() {
        // Every subject lasts exactly 30 s; half of them are still running (censored
        // at 20 s). A naive mean of the finished ones would also say 30 s here, but
        // the table must also say nothing ends before 30 s.
        let mut t = HazardTable::<1>::new(HazardTable::<1>::uniform_starts(5.0, 100.0), [1.0 / 50.0], 0.1);
        for _ in 0..500 {
            t.add_exposure(0.0, 30.0);
            t.add_event(30.0, 0);
            t.add_exposure(0.0, 20.0);
        }
        t.refresh();
        assert!(t.p_any_between(0.0, 29.9) < 0.01);
        assert!(t.p_any_between(28.0, 36.0) > 0.9);
    }

    #[test]
    fn competing_causes_split_the_mass() {
        let mut t = HazardTable::<2>::new(HazardTable::<2>::uniform_starts(1.0, 25.0), [0.02, 0.01], 1.0);
        // 30% answered at 9.5 s, 15% failed at 3.5 s, the rest given up at 25 s.
        for _ in 0..300 {
            t.add_exposure(0.0, 9.5);
            t.add_event(9.5, 0);
        }
        for _ in 0..150 {
            t.add_exposure(0.0, 3.5);
            t.add_event(3.5, 1);
        }
        for _ in 0..550 {
            t.add_exposure(0.0, 25.0);
        }
        t.refresh();
        assert!((t.ended_by(25.0, 0) - 0.3).abs() < 0.01, "{}", t.ended_by(25.0, 0));
        assert!(t.p_cause_between(10.0, 25.0, 0) < 0.01);
    }
}
