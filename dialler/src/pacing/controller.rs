//! The abandon feedback loop of predictive pacing: a leaky integral controller that
//! turns every human answer into a small step of the pacer's risk threshold.
//!
//! The model-based part of predictive pacing (see [`super::predictive`]) says, for each
//! extra dial, how likely its answer is to find no free slot, and dials while that risk
//! is at most a threshold `θ`. Measured in the benchmark, the share of answers
//! abandoned comes out close to `θ`, so `θ` starts at the setpoint. This loop corrects
//! what the model misses, keeping an *abandon budget*:
//!
//! ```text
//! on every human answer:  budget ← budget · (1 − 1/memory) + setpoint − [abandoned]
//! θ = initial · exp(gain · budget), clamped
//! ```
//!
//! Each clean answer earns `setpoint` (a small fraction of one abandon), each abandon
//! spends one. While abandons run under the setpoint the budget grows and the pacer
//! pushes harder; as soon as they run over it the pacer backs off, at once after a
//! burst. Without the leak this is pure integral action, so the count of abandons
//! stays within a constant of `setpoint × answers` (Åström & Murray, *Feedback
//! Systems*, 2008, ch. 10); the leak forgets answers older than about `memory`, so a
//! long calm stretch cannot bank a licence for a later burst (anti-windup), and the
//! clamp bounds `θ` in any case.

/// Tuning of the abandon feedback loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerSettings {
    /// The abandon rate the loop aims at, as a share of the campaign's target; below 1
    /// so the random spread of abandons stays under the target itself.
    pub setpoint_share: f64,
    /// `θ` with an empty budget, as a multiple of the setpoint (the model's calibration).
    pub initial_share: f64,
    /// Change of `ln θ` per abandon of budget.
    pub gain: f64,
    /// Answers after which an old answer's weight in the budget has fallen to 1/e.
    pub memory_answers: f64,
    /// Bounds of `θ`, as multiples of the initial `θ`.
    pub min_factor: f64,
    pub max_factor: f64,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            setpoint_share: 0.6,
            initial_share: 1.0,
            gain: 0.6,
            memory_answers: 300.0,
            min_factor: 0.05,
            max_factor: 4.0,
        }
    }
}

/// The state of the abandon feedback loop.
#[derive(Debug, Clone)]
pub struct AbandonController {
    setpoint: f64,
    settings: ControllerSettings,
    budget: f64,
}

impl AbandonController {
    pub fn new(abandon_target: f64, settings: ControllerSettings) -> Self {
        AbandonController { setpoint: abandon_target * settings.setpoint_share, settings, budget: 0.0 }
    }

    /// Feeds one human answer's fate into the loop.
    pub fn record_answer(&mut self, abandoned: bool) {
        let spent = if abandoned { 1.0 } else { 0.0 };
        self.budget = self.budget * (1.0 - 1.0 / self.settings.memory_answers.max(1.0)) + self.setpoint - spent;
    }

    /// The abandon budget: positive while abandons ran under the setpoint.
    pub fn budget(&self) -> f64 {
        self.budget
    }

    /// The largest abandon probability the pacer may accept for one more dial.
    pub fn threshold(&self) -> f64 {
        let s = &self.settings;
        let factor = (s.gain * self.budget).exp().clamp(s.min_factor, s.max_factor);
        (self.setpoint * s.initial_share * factor).min(0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abandons_lower_the_threshold_and_clean_answers_raise_it() {
        let mut c = AbandonController::new(0.03, ControllerSettings::default());
        let start = c.threshold();
        c.record_answer(true);
        assert!(c.threshold() < start * 0.75, "{} then {}", start, c.threshold());
        for _ in 0..200 {
            c.record_answer(false);
        }
        assert!(c.threshold() > start);
    }

    #[test]
    fn holds_still_at_the_setpoint_and_stays_within_bounds() {
        let s = ControllerSettings { setpoint_share: 0.6, ..ControllerSettings::default() };
        let mut c = AbandonController::new(0.05, s);
        // At the setpoint (60% of 5% = 3% of answers) the budget stays near zero.
        for i in 0..10_000 {
            c.record_answer(i % 33 == 0);
        }
        assert!(c.budget().abs() < 1.5, "{}", c.budget());
        for _ in 0..100 {
            c.record_answer(true);
        }
        assert!((c.threshold() - 0.03 * s.min_factor).abs() < 1e-12);
        for _ in 0..100_000 {
            c.record_answer(false);
        }
        assert!((c.threshold() - 0.03 * s.max_factor).abs() < 1e-9);
    }
}
