//! The carrier model of the pacing benchmark: what happens to each dialled number,
//! drawn from a seeded random stream so every pacer meets the same numbers.
//!
//! Each number gets a fate when it is dialled: a person answers after a lognormal
//! delay and then talks for a lognormal time; or the line is busy or fails after a
//! fixed delay; or nobody answers and the dialler gives up at the timeout. A person
//! whose answer delay would exceed the timeout counts as no answer (with the default
//! answer delay, 1.3% of them). The `n`-th number dialled in a run has the same fate
//! whichever pacer dials it (common random numbers), so pacers are compared on the same
//! list rather than on different luck.
//!
//! The answer probability may change once during the run (`answer_prob_after` from
//! `answer_change_minute`), as when a campaign moves from its freshest numbers to
//! older ones; the pacer is not told.
//!
//! [`Preset`]s name the situations the README's table reports: the default long run
//! measured after a warm-up, the same from minute 0, a falling answer rate, short
//! calls, and the demo's carrier model over its first ten minutes.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Every parameter of the model, in seconds and probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub minutes: f64,
    pub warmup_minutes: f64,
    pub tick_seconds: f64,
    pub answer_prob: f64,
    /// The answer probability from `answer_change_minute` on, if it changes.
    pub answer_prob_after: Option<f64>,
    pub answer_change_minute: f64,
    pub fail_prob: f64,
    pub fail_delay_seconds: f64,
    pub no_answer_timeout: f64,
    pub answer_delay_mean: f64,
    pub answer_delay_sd: f64,
    pub talk_mean: f64,
    pub talk_cv: f64,
    pub release_seconds: f64,
    pub abandon_window_seconds: f64,
    pub abandon_target: f64,
}

impl Default for Scenario {
    /// The default scenario.
    fn default() -> Self {
        Scenario {
            minutes: 35.0,
            warmup_minutes: 5.0,
            tick_seconds: 2.0,
            answer_prob: 0.30,
            answer_prob_after: None,
            answer_change_minute: 15.0,
            fail_prob: 0.15,
            fail_delay_seconds: 3.0,
            no_answer_timeout: 25.0,
            answer_delay_mean: 9.0,
            answer_delay_sd: 5.0,
            talk_mean: 120.0,
            talk_cv: 1.0,
            release_seconds: 2.0,
            abandon_window_seconds: 2.0,
            abandon_target: 0.03,
        }
    }
}

impl Scenario {
    /// Refuses parameters the model cannot run, naming the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        let positive = [
            ("--minutes", self.minutes),
            ("--tick-seconds", self.tick_seconds),
            ("--no-answer-timeout", self.no_answer_timeout),
            ("--answer-delay-mean", self.answer_delay_mean),
            ("--talk-mean", self.talk_mean),
            ("--abandon-target", self.abandon_target),
        ];
        for (flag, v) in positive {
            anyhow::ensure!(v.is_finite() && v > 0.0, "{flag} must be above 0, not {v}");
        }
        let non_negative = [
            ("--warmup-minutes", self.warmup_minutes),
            ("--fail-delay-seconds", self.fail_delay_seconds),
            ("--answer-delay-sd", self.answer_delay_sd),
            ("--talk-cv", self.talk_cv),
            ("--release-seconds", self.release_seconds),
            ("--abandon-window-seconds", self.abandon_window_seconds),
        ];
        for (flag, v) in non_negative {
            anyhow::ensure!(v.is_finite() && v >= 0.0, "{flag} must be 0 or more, not {v}");
        }
        for (flag, v) in [
            ("--answer-prob", self.answer_prob),
            ("--answer-prob-after", self.answer_prob_after.unwrap_or(0.0)),
            ("--fail-prob", self.fail_prob),
        ] {
            anyhow::ensure!((0.0..=1.0).contains(&v), "{flag} must be within 0-1, not {v}");
        }
        for (flag, answer) in
            [("--answer-prob", self.answer_prob), ("--answer-prob-after", self.answer_prob_after.unwrap_or(0.0))]
        {
            anyhow::ensure!(
                answer + self.fail_prob <= 1.0,
                "{flag} plus --fail-prob is {}, above 1 (the rest is no answer)",
                answer + self.fail_prob
            );
        }
        anyhow::ensure!(
            self.answer_change_minute.is_finite() && self.answer_change_minute >= 0.0,
            "--answer-change-minute must be 0 or more, not {}",
            self.answer_change_minute
        );
        anyhow::ensure!(self.warmup_minutes < self.minutes, "--warmup-minutes must be below --minutes");
        anyhow::ensure!(self.abandon_target < 1.0, "--abandon-target is a fraction: 0.03 means 3%");
        Ok(())
    }

    pub fn end_seconds(&self) -> f64 {
        self.minutes * 60.0
    }

    /// The measured window `[from, to)` in seconds.
    pub fn window(&self) -> (f64, f64) {
        (self.warmup_minutes * 60.0, self.end_seconds())
    }
}

/// A named situation: overrides applied to the scenario the flags describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// The flags as given (by default: 35 minutes, measured from minute 5).
    Default,
    /// The same, measured from minute 0: the pacer starts knowing nothing.
    Cold,
    /// From minute 0, the answer probability falling from 0.30 to 0.15 at minute 15.
    Drift,
    /// Short calls: talk lognormal 20 s, CV 0.6, measured from minute 5.
    Short,
    /// The demo's carrier model (`voxctl up --demo`: answers 0.35 after 5 ± 3 s, busy,
    /// failed or machine 0.20, talk 20 s CV 0.6, no answer at 20 s) for 10 minutes from
    /// minute 0, the first-minutes case.
    Demo,
    /// Every preset above.
    All,
}

impl Preset {
    /// Every preset `All` stands for, in table order.
    pub const EACH: [Preset; 5] = [Preset::Default, Preset::Cold, Preset::Drift, Preset::Short, Preset::Demo];

    pub fn name(&self) -> &'static str {
        match self {
            Preset::Default => "default",
            Preset::Cold => "cold",
            Preset::Drift => "drift",
            Preset::Short => "short",
            Preset::Demo => "demo",
            Preset::All => "all",
        }
    }

    /// The scenario `base` (the flags) becomes under this preset.
    pub fn apply(&self, base: &Scenario) -> Scenario {
        let cold = Scenario { warmup_minutes: 0.0, ..base.clone() };
        match self {
            Preset::Default | Preset::All => base.clone(),
            Preset::Cold => cold,
            Preset::Drift => Scenario {
                answer_prob: 0.30,
                answer_prob_after: Some(0.15),
                answer_change_minute: 15.0,
                minutes: base.minutes.max(30.0),
                ..cold
            },
            Preset::Short => Scenario { talk_mean: 20.0, talk_cv: 0.6, ..base.clone() },
            Preset::Demo => Scenario {
                minutes: 10.0,
                answer_prob: 0.35,
                fail_prob: 0.20,
                answer_delay_mean: 5.0,
                answer_delay_sd: 3.0,
                talk_mean: 20.0,
                talk_cv: 0.6,
                no_answer_timeout: 20.0,
                ..cold
            },
        }
    }
}

/// What happens to one dialled number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fate {
    Human { answer_after: f64, talk: f64 },
    Failed { after: f64 },
    NoAnswer { after: f64 },
}

/// A lognormal distribution given by its mean and standard deviation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogNormal {
    mu: f64,
    sigma: f64,
}

impl LogNormal {
    pub fn from_mean_sd(mean: f64, sd: f64) -> Self {
        let sigma2 = (1.0 + (sd / mean).powi(2)).ln();
        LogNormal { mu: mean.ln() - sigma2 / 2.0, sigma: sigma2.sqrt() }
    }

    /// The value at standard normal deviate `z`.
    pub fn at(&self, z: f64) -> f64 {
        (self.mu + self.sigma * z).exp()
    }
}

/// The endless list of numbers of one run, their fates drawn in dialling order.
#[derive(Debug)]
pub struct NumberList {
    rng: StdRng,
    answer_prob: f64,
    answer_prob_after: Option<f64>,
    change_at: f64,
    fail_prob: f64,
    fail_delay: f64,
    timeout: f64,
    answer_delay: LogNormal,
    talk: LogNormal,
}

impl NumberList {
    pub fn new(sc: &Scenario, seed: u64) -> Self {
        NumberList {
            rng: StdRng::seed_from_u64(seed),
            answer_prob: sc.answer_prob,
            answer_prob_after: sc.answer_prob_after,
            change_at: sc.answer_change_minute * 60.0,
            fail_prob: sc.fail_prob,
            fail_delay: sc.fail_delay_seconds,
            timeout: sc.no_answer_timeout,
            answer_delay: LogNormal::from_mean_sd(sc.answer_delay_mean, sc.answer_delay_sd),
            talk: LogNormal::from_mean_sd(sc.talk_mean, sc.talk_mean * sc.talk_cv),
        }
    }

    /// A standard normal deviate (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.rng.random::<f64>();
        let u2: f64 = self.rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// The fate of the next number, dialled at `at` seconds into the run. Always draws
    /// the same amount of randomness, so the n-th fate does not depend on the ones
    /// before.
    pub fn next_fate(&mut self, at: f64) -> Fate {
        let u: f64 = self.rng.random();
        let (z_delay, z_talk) = (self.normal(), self.normal());
        let answer_prob = match self.answer_prob_after {
            Some(p) if at >= self.change_at => p,
            _ => self.answer_prob,
        };
        if u < answer_prob {
            let answer_after = self.answer_delay.at(z_delay);
            if answer_after < self.timeout {
                return Fate::Human { answer_after, talk: self.talk.at(z_talk) };
            }
            Fate::NoAnswer { after: self.timeout }
        } else if u < answer_prob + self.fail_prob {
            Fate::Failed { after: self.fail_delay.min(self.timeout) }
        } else {
            Fate::NoAnswer { after: self.timeout }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lognormal_has_the_asked_mean_and_spread() {
        let sc = Scenario::default();
        let mut list = NumberList::new(&sc, 7);
        let (mut n, mut sum, mut sum2, mut humans) = (0.0, 0.0, 0.0, 0);
        for _ in 0..200_000 {
            if let Fate::Human { talk, .. } = list.next_fate(0.0) {
                humans += 1;
                n += 1.0;
                sum += talk;
                sum2 += talk * talk;
            }
        }
        let mean = sum / n;
        let sd = (sum2 / n - mean * mean).sqrt();
        assert!((mean - 120.0).abs() < 3.0, "mean {mean}");
        assert!((sd / mean - 1.0).abs() < 0.06, "cv {}", sd / mean);
        // 30% answer, minus the 1.3% whose answer would come after the timeout.
        let share = f64::from(humans) / 200_000.0;
        assert!((share - 0.296).abs() < 0.005, "human share {share}");
    }

    #[test]
    fn the_answer_probability_changes_at_the_given_minute() {
        let sc = Scenario { answer_prob_after: Some(0.15), answer_change_minute: 15.0, ..Scenario::default() };
        let mut list = NumberList::new(&sc, 3);
        let humans = |list: &mut NumberList, at: f64| {
            (0..20_000).filter(|_| matches!(list.next_fate(at), Fate::Human { .. })).count() as f64 / 20_000.0
        };
        let before = humans(&mut list, 899.0);
        let after = humans(&mut list, 900.0);
        assert!((before - 0.296).abs() < 0.01, "before {before}");
        assert!((after - 0.148).abs() < 0.01, "after {after}");
        assert!(Preset::Drift.apply(&Scenario::default()).validate().is_ok());
        assert_eq!(Preset::Cold.apply(&Scenario::default()).warmup_minutes, 0.0);
    }

    #[test]
    fn zero_spread_is_a_constant() {
        assert!((LogNormal::from_mean_sd(60.0, 0.0).at(1.7) - 60.0).abs() < 1e-9);
    }
}
