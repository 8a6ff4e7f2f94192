//! The outcome model: what happens to one call, drawn from an RNG seeded by
//! (`--seed`, the call's index), so a run with the same seed and the same sequence of
//! create requests plays out the same way.
//!
//! Each call draws, always in the same order: its outcome (human, machine, busy,
//! failed, no-answer), how long the callee lets it ring before answering (lognormal)
//! and how long they talk (lognormal). A would-be answer whose answer delay exceeds the
//! ring timeout ends as no-answer, as on a real line: `--answer-prob` is the share of
//! callees who pick up when the phone rings long enough.
//!
//! Every figure here is in model seconds; [`Params::real`] divides by `--time-scale`.

use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;

/// The model's parameters; each one is a flag with a `VOXSIM_*` environment name.
#[derive(Debug, Clone, clap::Args)]
pub struct Params {
    /// Seed of the outcome RNG; each call's RNG is seeded by (seed, call counter).
    #[arg(long, env = "VOXSIM_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Probability that a person answers.
    #[arg(long, env = "VOXSIM_ANSWER_PROB", default_value_t = 0.30)]
    pub answer_prob: f64,

    /// Probability that an answering machine answers.
    #[arg(long, env = "VOXSIM_MACHINE_PROB", default_value_t = 0.0)]
    pub machine_prob: f64,

    /// Probability that the call is busy or fails (split by --busy-share); what is left
    /// after answer, machine and this rings out as no-answer.
    #[arg(long, env = "VOXSIM_FAIL_PROB", default_value_t = 0.15)]
    pub fail_prob: f64,

    /// Share of --fail-prob that is busy; the rest is failed.
    #[arg(long, env = "VOXSIM_BUSY_SHARE", default_value_t = 0.5)]
    pub busy_share: f64,

    /// How long an unanswered call rings before it ends as no-answer, seconds (the create
    /// request's Timeout wins when smaller).
    #[arg(long, env = "VOXSIM_NO_ANSWER_TIMEOUT", default_value_t = 25.0)]
    pub no_answer_timeout: f64,

    /// Mean time from ringing to answer, seconds (lognormal).
    #[arg(long, env = "VOXSIM_ANSWER_DELAY_MEAN", default_value_t = 9.0)]
    pub answer_delay_mean: f64,

    /// Standard deviation of the answer delay, seconds.
    #[arg(long, env = "VOXSIM_ANSWER_DELAY_SD", default_value_t = 5.0)]
    pub answer_delay_sd: f64,

    /// Mean talk time of an answered call, seconds (lognormal).
    #[arg(long, env = "VOXSIM_TALK_MEAN", default_value_t = 120.0)]
    pub talk_mean: f64,

    /// Coefficient of variation of the talk time (standard deviation / mean).
    #[arg(long, env = "VOXSIM_TALK_CV", default_value_t = 1.0)]
    pub talk_cv: f64,

    /// Time from the create request until the call rings (or is busy or fails), seconds.
    #[arg(long, env = "VOXSIM_RING_DELAY", default_value_t = 1.0)]
    pub ring_delay: f64,

    /// Run this many times faster than real time: every delay is divided by it. Audio
    /// frames still go at the real 20 ms pace; the talk just ends sooner.
    #[arg(long, env = "VOXSIM_TIME_SCALE", default_value_t = 1.0)]
    pub time_scale: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            seed: 1,
            answer_prob: 0.30,
            machine_prob: 0.0,
            fail_prob: 0.15,
            busy_share: 0.5,
            no_answer_timeout: 25.0,
            answer_delay_mean: 9.0,
            answer_delay_sd: 5.0,
            talk_mean: 120.0,
            talk_cv: 1.0,
            ring_delay: 1.0,
            time_scale: 1.0,
        }
    }
}

/// What the callee's side does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Human,
    Machine,
    Busy,
    Failed,
    NoAnswer,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Human => "human",
            Outcome::Machine => "machine",
            Outcome::Busy => "busy",
            Outcome::Failed => "failed",
            Outcome::NoAnswer => "no-answer",
        }
    }

    pub fn answers(self) -> bool {
        matches!(self, Outcome::Human | Outcome::Machine)
    }
}

/// One call's draw, in model seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Draw {
    pub outcome: Outcome,
    /// Until ringing (or busy / failed).
    pub ring_delay_s: f64,
    /// From ringing to answer (drawn for every call, used by answers).
    pub answer_delay_s: f64,
    /// How long the ringing lasts before no-answer: the smaller of the flag and the request's.
    pub ring_timeout_s: f64,
    /// Talk time of an answered call.
    pub talk_s: f64,
}

impl Params {
    /// Checks the parameters; the error names the flag to fix.
    pub fn validate(&self) -> Result<(), String> {
        let probs = [
            ("--answer-prob", self.answer_prob),
            ("--machine-prob", self.machine_prob),
            ("--fail-prob", self.fail_prob),
            ("--busy-share", self.busy_share),
        ];
        for (flag, p) in probs {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{flag} must be between 0 and 1, not {p}"));
            }
        }
        let sum = self.answer_prob + self.machine_prob + self.fail_prob;
        if sum > 1.0 + 1e-9 {
            return Err(format!("--answer-prob + --machine-prob + --fail-prob is {sum}; it must not exceed 1"));
        }
        let positive = [
            ("--answer-delay-mean", self.answer_delay_mean),
            ("--talk-mean", self.talk_mean),
            ("--time-scale", self.time_scale),
            ("--no-answer-timeout", self.no_answer_timeout),
        ];
        for (flag, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{flag} must be a positive number, not {v}"));
            }
        }
        let non_negative = [
            ("--answer-delay-sd", self.answer_delay_sd),
            ("--talk-cv", self.talk_cv),
            ("--ring-delay", self.ring_delay),
        ];
        for (flag, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{flag} must be zero or more, not {v}"));
            }
        }
        Ok(())
    }

    /// Model seconds as real time.
    pub fn real(&self, model_seconds: f64) -> Duration {
        Duration::from_secs_f64((model_seconds / self.time_scale).max(0.0))
    }

    /// The draw for the call with this index. `requested_timeout_s` is the create
    /// request's ring timeout, when it gave one.
    pub fn draw(&self, index: u64, requested_timeout_s: Option<f64>) -> Draw {
        let mut rng = StdRng::seed_from_u64(mix(self.seed, index));
        let u: f64 = rng.random();
        let busy_draw: f64 = rng.random();
        let answer_delay_s = lognormal(&mut rng, self.answer_delay_mean, self.answer_delay_sd);
        let talk_s = lognormal(&mut rng, self.talk_mean, self.talk_cv * self.talk_mean);
        let ring_timeout_s = match requested_timeout_s {
            Some(t) if t > 0.0 => t.min(self.no_answer_timeout),
            _ => self.no_answer_timeout,
        };
        let answer = self.answer_prob;
        let machine = answer + self.machine_prob;
        let fail = machine + self.fail_prob;
        let mut outcome = if u < answer {
            Outcome::Human
        } else if u < machine {
            Outcome::Machine
        } else if u < fail {
            if busy_draw < self.busy_share { Outcome::Busy } else { Outcome::Failed }
        } else {
            Outcome::NoAnswer
        };
        if outcome.answers() && answer_delay_s > ring_timeout_s {
            outcome = Outcome::NoAnswer;
        }
        Draw { outcome, ring_delay_s: self.ring_delay, answer_delay_s, ring_timeout_s, talk_s }
    }
}

/// One 64-bit seed from (seed, index): splitmix64 of both, so neighbouring indices get
/// unrelated streams.
fn mix(seed: u64, index: u64) -> u64 {
    fn splitmix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    splitmix(splitmix(seed) ^ index)
}

/// A lognormal draw with the given mean and standard deviation (of the variable itself):
/// sigma² = ln(1 + sd²/mean²), mu = ln(mean) − sigma²/2. rand 0.9 has no lognormal, so
/// the standard normal comes from the Box–Muller transform by hand.
pub fn lognormal(rng: &mut impl Rng, mean: f64, sd: f64) -> f64 {
    // Two uniforms are always consumed, so every call's later draws stay in step.
    let u1: f64 = rng.random();
    let u2: f64 = rng.random();
    if mean <= 0.0 {
        return 0.0;
    }
    let sigma2 = (1.0 + (sd * sd) / (mean * mean)).ln();
    let mu = mean.ln() - sigma2 / 2.0;
    // 1 - u1 lies in (0, 1], so the logarithm is finite.
    let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (mu + sigma2.sqrt() * z).exp()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mean_sd(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt())
    }

    #[test]
    fn lognormal_has_the_requested_mean_and_spread() {
        let mut rng = StdRng::seed_from_u64(7);
        let xs: Vec<f64> = (0..200_000).map(|_| lognormal(&mut rng, 9.0, 5.0)).collect();
        let (mean, sd) = mean_sd(&xs);
        assert!((mean - 9.0).abs() < 0.1, "mean {mean}");
        assert!((sd - 5.0).abs() < 0.15, "sd {sd}");
        assert!(xs.iter().all(|x| *x > 0.0));
        let zero_spread: Vec<f64> = (0..10).map(|_| lognormal(&mut rng, 4.0, 0.0)).collect();
        assert!(zero_spread.iter().all(|x| (x - 4.0).abs() < 1e-9));
    }

    #[test]
    fn outcome_shares_follow_the_probabilities() {
        let p = Params { answer_prob: 0.3, machine_prob: 0.1, fail_prob: 0.2, busy_share: 0.25, ..Params::default() };
        let n = 50_000;
        let mut counts = std::collections::HashMap::new();
        for i in 0..n {
            // A long ring timeout, so no would-be answer rings out.
            *counts.entry(p.draw(i, Some(1e9)).outcome).or_insert(0u64) += 1;
        }
        let share = |o| *counts.get(&o).unwrap_or(&0) as f64 / n as f64;
        assert!((share(Outcome::Human) - 0.30).abs() < 0.01);
        assert!((share(Outcome::Machine) - 0.10).abs() < 0.01);
        assert!((share(Outcome::Busy) - 0.05).abs() < 0.01);
        assert!((share(Outcome::Failed) - 0.15).abs() < 0.01);
        assert!((share(Outcome::NoAnswer) - 0.40).abs() < 0.01);
    }

    #[test]
    fn a_draw_depends_only_on_seed_and_index() {
        let p = Params::default();
        assert_eq!(p.draw(42, None), p.draw(42, None));
        let other = Params { seed: 2, ..Params::default() };
        let same = (0..100).filter(|i| p.draw(*i, None) == other.draw(*i, None)).count();
        assert_eq!(same, 0);
        let a: Vec<_> = (0..100).map(|i| p.draw(i, None).outcome).collect();
        let b: Vec<_> = (0..100).map(|i| p.draw(i, None).outcome).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn a_short_timeout_turns_slow_answers_into_no_answer() {
        let p = Params { answer_prob: 1.0, fail_prob: 0.0, ..Params::default() };
        let n = 2000;
        let rang_out = (0..n).filter(|i| p.draw(*i, Some(5.0)).outcome == Outcome::NoAnswer).count();
        let slow = (0..n).filter(|i| p.draw(*i, Some(5.0)).answer_delay_s > 5.0).count();
        assert_eq!(rang_out, slow);
        assert!(rang_out > n as usize / 2, "with a 9 s mean answer delay most ring out at 5 s");
        assert_eq!(p.draw(3, Some(1000.0)).ring_timeout_s, 25.0, "the flag caps the request's timeout");
        assert_eq!(p.draw(3, Some(10.0)).ring_timeout_s, 10.0);
    }

    #[test]
    fn bad_parameters_name_their_flag() {
        let bad = Params { answer_prob: 0.8, fail_prob: 0.3, ..Params::default() };
        assert!(bad.validate().unwrap_err().contains("must not exceed 1"));
        let bad = Params { time_scale: 0.0, ..Params::default() };
        assert!(bad.validate().unwrap_err().contains("--time-scale"));
        let bad = Params { busy_share: 1.5, ..Params::default() };
        assert!(bad.validate().unwrap_err().contains("--busy-share"));
        assert!(Params::default().validate().is_ok());
        assert_eq!(Params { time_scale: 30.0, ..Params::default() }.real(60.0), Duration::from_secs(2));
    }
}
