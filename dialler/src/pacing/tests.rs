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
        p.observe(Observation::Connected { at: 2000.0 + f64::from(i) });
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
    for i in 0..6 {
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
    assert!(burnt.risk_threshold() >= calm.risk_threshold() * 0.99);
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
    assert_eq!(Pacer::for_campaign(&pacing, 25.0).strategy(), Strategy::FixedRatio(2.0));
    let predictive = Pacing { mode: PacingMode::Predictive, ..pacing };
    let mut p = Pacer::for_campaign(&predictive, 25.0);
    assert_eq!(p.strategy().name(), "predictive");
    let mut q = Pacer::for_campaign(&Pacing { abandon_target: 0.03, ..predictive }, 25.0);
    // Nothing to spend before any answer; then the threshold follows the target.
    assert_eq!(p.risk_threshold(), 0.0);
    for i in 0..200 {
        p.observe(Observation::Connected { at: f64::from(i) });
        q.observe(Observation::Connected { at: f64::from(i) });
    }
    assert!((p.risk_threshold() / q.risk_threshold() - 5.0 / 3.0).abs() < 1e-9);
}

/// Feeds a pacer's statistics a campaign of `slots` slots whose calls hold them for
/// lognormal times (mean `mean` s, CV 0.6), one snapshot every 2 s, until `releases`
/// calls have ended; returns the statistics and the true mean of the calls that ended.
fn hold_times_seen_live(slots: usize, mean: f64, releases: usize) -> (LiveStats, f64) {
    use rand::SeedableRng;
    let talk = crate::bench::scenario::LogNormal::from_mean_sd(mean, 0.6 * mean);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut normal = move || {
        use rand::Rng;
        let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let mut stats = LiveStats::new(&PacerSettings::default());
    // Each slot: (connected at, ends at).
    let mut calls: Vec<(f64, f64)> = (0..slots).map(|_| (0.0, talk.at(normal()))).collect();
    let (mut ended, mut sum, mut now) = (0usize, 0.0, 0.0);
    while ended < releases {
        now += 2.0;
        for c in calls.iter_mut() {
            if c.1 <= now && ended < releases {
                let held_for = c.1 - c.0;
                stats.observe(&Observation::SlotReleased { at: c.1, held_for });
                (ended, sum) = (ended + 1, sum + held_for);
                *c = (c.1, c.1 + talk.at(normal()));
            }
        }
        let ages: Vec<f64> = calls.iter().filter(|c| c.0 <= now).map(|c| now - c.0).collect();
        stats.accrue(&snapshot(now, slots as u32, 0, &[], &ages));
    }
    (stats, sum / ended as f64)
}

#[test]
fn hold_time_follows_short_calls_within_thirty_calls() {
    // The demo: 4 slots, 20 s calls, a 180 s prior. After 30 calls the estimate
    // is the data's, not the prior's (it said 105-131 s here before).
    let (stats, real) = hold_times_seen_live(4, 20.0, 30);
    let aht = stats.mean_hold_seconds();
    assert!((aht / real - 1.0).abs() < 0.2, "estimated {aht:.1} s, real mean {real:.1} s");
    let (stats, real) = hold_times_seen_live(8, 9.0, 31);
    let aht = stats.mean_hold_seconds();
    assert!((aht / real - 1.0).abs() < 0.2, "estimated {aht:.1} s, real mean {real:.1} s");
    // Long calls are learned as well, the calls still running counted (censored).
    let (stats, real) = hold_times_seen_live(10, 300.0, 60);
    let aht = stats.mean_hold_seconds();
    assert!((aht / real - 1.0).abs() < 0.25, "estimated {aht:.1} s, real mean {real:.1} s");
}

/// Dials of a campaign answered by a person with probability `answer` (after 5-13 s),
/// busy after 3 s with probability 0.15, else given up at 25 s; `per_tick` placed every
/// 2 s from `from` for `seconds`. Returns the time after the last tick.
fn dial(stats: &mut LiveStats, from: f64, seconds: f64, per_tick: usize, answer: f64, n: &mut u64) -> f64 {
    let mut ringing: Vec<(f64, f64, DialResult)> = Vec::new();
    let mut now = from;
    while now < from + seconds {
        ringing.sort_by(|a, b| a.1.total_cmp(&b.1));
        for &(placed, ends, result) in ringing.iter().filter(|r| r.1 <= now) {
            stats.observe(&Observation::DialEnded { at: ends, after: ends - placed, result });
        }
        ringing.retain(|r| r.1 > now);
        for _ in 0..per_tick {
            *n += 1;
            // A low-discrepancy sequence instead of random draws: the share is exact.
            let u = (*n as f64 * 0.618_033_988_75).fract();
            let (after, result) = if u < answer {
                (5.0 + (*n % 9) as f64, DialResult::Human)
            } else if u < answer + 0.15 {
                (3.0, DialResult::BusyOrFailed)
            } else {
                (25.0, DialResult::NoAnswer)
            };
            ringing.push((now, now + after, result));
        }
        let ages: Vec<f64> = ringing.iter().map(|r| now - r.0).collect();
        stats.accrue(&snapshot(now, 100, 0, &ages, &[]));
        now += 2.0;
    }
    now
}

#[test]
fn answer_rate_is_learned_within_a_few_hundred_dials_and_follows_a_change() {
    let mut stats = LiveStats::new(&PacerSettings::default());
    let mut n = 0;
    // 2 dials every 2 s: 240 dials in 4 minutes.
    let now = dial(&mut stats, 0.0, 240.0, 2, 0.30, &mut n);
    let early = stats.answer_rate();
    assert!((early - 0.30).abs() < 0.04, "after {n} dials: {early}");
    // A large campaign: 10 dials every 2 s. 15 minutes at 0.30, then 0.15.
    let mut stats = LiveStats::new(&PacerSettings::default());
    let now2 = dial(&mut stats, now, 900.0, 10, 0.30, &mut n);
    assert!((stats.answer_rate() - 0.30).abs() < 0.02, "{}", stats.answer_rate());
    dial(&mut stats, now2, 1200.0, 10, 0.15, &mut n);
    // Twenty minutes after the change the old answers weigh little: without forgetting
    // the estimate would be about 0.21.
    let later = stats.answer_rate();
    assert!(later < 0.18, "20 minutes after the fall to 0.15: {later}");
    assert!(later > 0.14, "{later}");
}

#[test]
fn a_pacer_warmed_from_past_calls_starts_where_a_live_one_left_off() {
    // What a dialler saw live over ten minutes, and what its successor reads back.
    let (live, real) = hold_times_seen_live(4, 20.0, 200);
    let mut past = Vec::new();
    for i in 0..200 {
        let at = 400.0 + f64::from(i) * 3.0;
        let held_for = 8.0 + f64::from(i % 25) * (2.0 * real - 16.0) / 24.0;
        past.push(Observation::Connected { at: at - held_for });
        past.push(Observation::SlotReleased { at, held_for });
        for k in 0..3 {
            let (after, result) = match k {
                0 => (6.5, DialResult::Human),
                1 => (3.5, DialResult::BusyOrFailed),
                _ => (25.0, DialResult::NoAnswer),
            };
            past.push(Observation::DialEnded { at: at - 30.0 + f64::from(k), after, result });
        }
    }
    let mut warmed = Pacer::new(Strategy::Predictive, PacerSettings::default());
    warmed.learn_past(&past, 1100.0);
    let cold = Pacer::new(Strategy::Predictive, PacerSettings::default());
    let (aht, live_aht) = (warmed.stats().mean_hold_seconds(), live.mean_hold_seconds());
    assert!((aht / live_aht - 1.0).abs() < 0.1, "warmed {aht:.1} s, live {live_aht:.1} s");
    assert!(cold.stats().mean_hold_seconds() > 150.0);
    assert!((warmed.stats().answer_rate() - 1.0 / 3.0).abs() < 0.03, "{}", warmed.stats().answer_rate());
    assert!((warmed.stats().mean_time_to_answer() - 6.5).abs() < 1.0, "{}", warmed.stats().mean_time_to_answer());
    // The answers count in the abandon budget: the warmed pacer may dial ahead at once.
    assert!((warmed.abandon_credit() - 6.0).abs() < 1e-9, "{}", warmed.abandon_credit());
    assert!(warmed.risk_threshold() > 0.0 && cold.risk_threshold() == 0.0);
    // Learning the past twice, or after going live, changes nothing.
    let mut again = warmed.clone();
    again.calls_to_start(&snapshot(1100.0, 4, 4, &[], &[]));
    again.learn_past(&past, 1102.0);
    assert!((again.stats().learned_calls().1 - warmed.stats().learned_calls().1).abs() < 1.0);
}

#[test]
fn a_carrier_giving_up_sooner_than_the_dialler_does_not_inflate_the_answer_rate() {
    // The carrier ends unanswered dials at 20 s; the dialler would wait 25 s. The ages
    // 20-25 s never see a dial, and the prior (50% answers) must not fill them.
    let mut stats = LiveStats::new(&PacerSettings::default());
    for i in 0..300 {
        let at = f64::from(i);
        let (after, result) = match i % 20 {
            0..=6 => (5.0 + f64::from(i % 9), DialResult::Human),
            7..=9 => (3.0, DialResult::BusyOrFailed),
            _ => (20.0, DialResult::NoAnswer),
        };
        stats.observe(&Observation::DialEnded { at, after, result });
    }
    assert!((stats.answer_rate() - 0.35).abs() < 0.02, "{}", stats.answer_rate());
    assert_eq!(stats.ring_timeout(), 20.0);
}

#[test]
fn a_regulated_period_at_its_limit_stops_every_over_dial() {
    let mut fixed = Pacer::new(Strategy::FixedRatio(2.5), PacerSettings::default());
    fixed.set_ledger(1000, 30, 0.03);
    assert_eq!(fixed.calls_to_start(&snapshot(0.0, 10, 4, &[1.0], &[])), 3, "one per free slot, like progressive");
    let mut predictive = trained(Strategy::Predictive);
    let before = predictive.calls_to_start(&snapshot(3000.0, 10, 3, &[], &[]));
    assert!(before > 3, "a trained predictive pacer dials ahead: {before}");
    predictive.set_ledger(1000, 31, 0.03);
    let held = predictive.calls_to_start(&snapshot(3000.0, 10, 3, &[], &[]));
    assert!(held <= 3, "over the limit: no dial beyond the free slots, {held}");
    // Within the limit again, the pacer dials ahead.
    predictive.set_ledger(1000, 0, 0.03);
    assert!(predictive.calls_to_start(&snapshot(3000.0, 10, 3, &[], &[])) > 3);
}
