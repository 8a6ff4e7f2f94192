//! Behaviour of each strategy on hand-made snapshots, and of the live statistics on
//! hand-made outcomes.

#![allow(clippy::unwrap_used)]

use super::*;

fn snapshot<'a>(now: f64, slots: u32, free: u32, ringing: &'a [f64], connected: &'a [f64]) -> Snapshot<'a> {
    Snapshot { now, slots, free_slots: free, held_answers: 0, ringing, connected }
}

/// Teaches a pacer the benchmark's default campaign: 30% answered after about 9 s,
/// 15% failed after 3 s, the rest given up at 25 s; calls hold their slot 60-180 s.
fn trained(strategy: Strategy) -> Pacer {
    let mut p = Pacer::new(strategy, PacerSettings::default());
    for i in 0..2000 {
        let at = f64::from(i);
        let (after, result) = match i % 20 {
            0..=5 => (5.0 + f64::from(i % 9), DialResult::Human),
            6..=8 => (3.0, DialResult::BusyOrFailed),
            _ => (25.0, DialResult::NoAnswer),
        };
        p.observe(Observation::DialEnded { at, after, result });
    }
    for i in 0..600 {
        p.observe(Observation::SlotReleased { at: 2000.0 + f64::from(i), held_for: 60.0 + f64::from(i % 121) });
    }
    p
}

#[test]
fn progressive_never_rings_more_than_free_slots() {
    let mut p = Pacer::new(Strategy::Progressive, PacerSettings::default());
    for free in 0..6u32 {
        for ringing in 0..8usize {
            let ages = vec![4.0; ringing];
            let n = p.calls_to_start(&snapshot(f64::from(free), 10, free, &ages, &[]));
            assert!(ringing as u32 + n <= free.max(ringing as u32), "free {free} ringing {ringing} dialled {n}");
            assert_eq!(n, free.saturating_sub(ringing as u32));
        }
    }
}

#[test]
fn fixed_ratio_keeps_that_many_ringing_per_free_slot() {
    let mut p = Pacer::new(Strategy::FixedRatio(2.5), PacerSettings::default());
    assert_eq!(p.calls_to_start(&snapshot(0.0, 10, 4, &[1.0, 2.0, 3.0], &[])), 7);
    assert_eq!(p.calls_to_start(&snapshot(2.0, 10, 0, &[1.0], &[])), 0);
}

#[test]
fn erlang_dials_for_expected_answers_and_ignores_endings() {
    let mut p = trained(Strategy::Erlang);
    let rate = p.stats().answer_rate();
    assert!((rate - 0.3).abs() < 0.03, "answer rate {rate}");
    // 3 free slots, nothing ringing: about 3 / 0.3 = 10 dials.
    let n = p.calls_to_start(&snapshot(3000.0, 10, 3, &[], &[]));
    assert!((9..=11).contains(&n), "{n}");
    // No free slot: nothing, however long the calls have been running.
    assert_eq!(p.calls_to_start(&snapshot(3002.0, 10, 0, &[], &[170.0; 10])), 0);
}

#[test]
fn predictive_dials_ahead_for_calls_about_to_end() {
    let mut young = trained(Strategy::Predictive);
    let mut old = young.clone();
    // No slot free now; 20 calls that just started versus 20 near the longest.
    let n_young = young.calls_to_start(&snapshot(3000.0, 20, 0, &[], &[1.0; 20]));
    let n_old = old.calls_to_start(&snapshot(3000.0, 20, 0, &[], &[175.0; 20]));
    assert_eq!(n_young, 0);
    assert!(n_old >= 5, "dialled {n_old} for 20 calls about to end");
    // With every slot free it dials past one per slot, but not wildly.
    let mut fresh = young.clone();
    let n_free = fresh.calls_to_start(&snapshot(3000.0, 20, 20, &[], &[]));
    assert!((20..=80).contains(&n_free), "{n_free}");
}

#[test]
fn predictive_counts_what_is_already_ringing() {
    let mut a = trained(Strategy::Predictive);
    let mut b = a.clone();
    let quiet = a.calls_to_start(&snapshot(3000.0, 10, 5, &[], &[]));
    let busy = b.calls_to_start(&snapshot(3000.0, 10, 5, &[2.0; 12], &[]));
    assert!(busy < quiet, "{busy} with 12 ringing, {quiet} without");
    // Dials that have rung 24 s will hardly be answered; they barely count.
    let mut c = a.clone();
    let stale = c.calls_to_start(&snapshot(3002.0, 10, 5, &[24.0; 12], &[]));
    assert!(stale > busy, "{stale} with 12 stale dials, {busy} with 12 fresh ones");
}

#[test]
fn predictive_backs_off_after_abandons() {
    let mut calm = trained(Strategy::Predictive);
    let mut burnt = calm.clone();
    for i in 0..3 {
        burnt.observe(Observation::DialEnded { at: 2900.0 + f64::from(i), after: 9.0, result: DialResult::Human });
        burnt.observe(Observation::Abandoned { at: 2902.0 + f64::from(i) });
    }
    assert!(burnt.risk_threshold() < calm.risk_threshold() / 2.0);
    let connected = [60.0; 40];
    let s = snapshot(3000.0, 50, 10, &[], &connected);
    let (n_calm, n_burnt) = (calm.calls_to_start(&s), burnt.calls_to_start(&s));
    assert!(n_burnt < n_calm, "after abandons {n_burnt}, before {n_calm}");
    // Clean answers rebuild the budget.
    for i in 0..300 {
        burnt.observe(Observation::Connected { at: 3001.0 + f64::from(i) });
    }
    assert!(burnt.risk_threshold() > calm.risk_threshold());
}

#[test]
fn stats_learn_answer_delay_and_hold_time() {
    let p = trained(Strategy::Predictive);
    let s = p.stats();
    // Answers at 5..=13 s: mean 9 s.
    assert!((s.mean_time_to_answer() - 9.0).abs() < 1.0, "{}", s.mean_time_to_answer());
    // Hold times uniform on 60..=180 s: mean 120 s.
    assert!((s.mean_hold_seconds() - 120.0).abs() < 10.0, "{}", s.mean_hold_seconds());
    assert!(s.p_release_within(10.0, 20.0) < 0.05);
    assert!(s.p_release_within(170.0, 20.0) > 0.8);
    assert_eq!(s.totals().human_answers, 600);
}

#[test]
fn campaign_settings_choose_the_strategy() {
    let pacing = vox_domain::campaign::Pacing {
        mode: PacingMode::FixedRatio,
        fixed_ratio: 2.0,
        abandon_target: 0.05,
        max_calls_per_second: 0,
    };
    assert_eq!(Pacer::for_campaign(&pacing).strategy(), Strategy::FixedRatio(2.0));
    let predictive = Pacing { mode: PacingMode::Predictive, ..pacing };
    let p = Pacer::for_campaign(&predictive);
    assert_eq!(p.strategy().name(), "predictive");
    // The setpoint follows the campaign's target (60% of 5%).
    assert!((p.risk_threshold() - 0.03).abs() < 1e-9);
}
