//! Predictive pacing: dial now for the slots that will be free when the answers come.
//!
//! # The problem
//!
//! Only about a third of dials reach a person, and they do so 3–25 s after the dial.
//! Dial one call per free slot (progressive pacing) and every slot idles through
//! roughly three unanswered dials between conversations; dial more and sometimes two
//! people answer for one free slot. The second one is an *abandoned* call: a person
//! who picked up and found nobody there within 2 s. Regulators cap those at 3% of
//! live answers (Ofcom, *Revised statement of policy on the persistent misuse of an
//! electronic communications network or service*, 2016: 3% per campaign over 24 h,
//! 2 s to connect; the US FTC Telemarketing Sales Rule, 16 CFR 310.4(b)(4): 3% per
//! campaign over 30 days, 2 s). A predictive dialler dials ahead of free slots,
//! counting on calls that are about to end, and throttles itself by the abandons it
//! causes (Samuelson, "Predictive dialing for outbound telephone call centers",
//! *Interfaces* 29(5), 1999, describes the approach and why it needs both a model of
//! the calls and feedback from the abandon rate).
//!
//! # What it measures ([`LiveStats`])
//!
//! * For dials: the hazard of a human answer and of any other early end (busy,
//!   failed, machine) at each second of ringing. From it follow the answer rate, the
//!   time-to-answer distribution, and for a dial that has rung `b` seconds without an
//!   answer, the chance that it is answered within the next `t` seconds (a dial that
//!   has rung long is less likely to be answered at all).
//! * For connected calls: the hazard of freeing the slot at each age (talk plus
//!   release). For a call already `a` seconds long this gives the chance that it ends
//!   within the next `t` seconds. Talk times are far from exponential (call-centre
//!   service times are close to lognormal: Brown et al., "Statistical analysis of a
//!   telephone call center: a queueing-science perspective", *JASA* 100(469), 2005),
//!   so a call that just started is unlikely to end soon while one near the median
//!   length is more likely to.
//!
//! Both are life-table estimates ([`super::hazard`]): a cautious prior, exposure
//! counted for calls still running (so the short calls that end first do not fool
//! it), and exponential forgetting of old data so memory stays bounded.
//!
//! # The decision, each tick
//!
//! Consider the `j`-th extra dial placed now. If a person answers it, they do so after
//! a delay `t` drawn from the measured time-to-answer distribution, and wait up to
//! `W` (2 s) for a slot. They find one if, by `t + W`, more slots have become free than
//! answers arrived before them:
//!
//! ```text
//! X(t) = free slots now − answers already waiting
//!      + Σ over connected calls     1[call frees its slot within t + W]
//!      − Σ over ringing dials       1[dial answered within t]
//!      − Σ over the j−1 new dials   1[dial answered within t]
//! ```
//!
//! Each term is an independent yes/no event whose probability comes from the live
//! statistics, so `X(t)` is a difference of two Poisson-binomial counts; its exact
//! distribution is built by convolving one event at a time (negligible tails trimmed,
//! so the work grows with the spread, not the number of calls). The dial's abandon
//! risk is `P(X(t) ≤ 0)`, averaged over `t` (one point per second of ringing). The
//! pacer places dials `j = 1, 2, …` while that risk stays at or below a threshold `θ`
//! (a gallop-then-bisect search, since the risk grows with `j`).
//!
//! Compared with the open-loop rule of [`super::Strategy::Erlang`] ("expected answers
//! match free slots"), this credits the calls about to end within the answer delay,
//! and it reasons about the spread of answers and endings, not only their means: with
//! many slots the spread is small next to the load and the pacer runs close to full;
//! with few slots it leaves more headroom. Working with the exact distribution rather
//! than a normal approximation matters most for small campaigns, where counts are
//! small and skewed.
//!
//! # Feedback
//!
//! The risks are a model: calls placed in later ticks compete for the same slots, and
//! a campaign drifts. So `θ` is not fixed: an integral controller
//! ([`super::controller`]) keeps an abandon budget, lowering `θ` sharply after each
//! abandon and raising it slowly with each connected answer, so the measured abandon
//! rate settles at a setpoint below the campaign's target (half of it by default: in
//! a 35-minute run of a 10-slot campaign, about 170 answers, the count of abandons is
//! noisy, and the target must hold in every run, not on average). In the benchmark the
//! model is well calibrated: with `θ` fixed, the abandon rate comes out close to `θ`,
//! so `θ` starts at the setpoint and the loop only trims. On top of the loop, `θ` is
//! capped by the abandons the campaign can still afford (the controller's hard
//! budget), which holds a campaign back while it is small or young.

use super::Snapshot;
use super::stats::LiveStats;

/// One point `t` of the answer-delay distribution, with what the pacer expects by then.
struct Horizon {
    /// P(a human answer comes at about `t`), the points summing to 1.
    weight: f64,
    /// P(a dial placed now is answered within `t`).
    q: f64,
    /// Distribution of `X(t)` before any new dial: `cdf[i] = P(X(t) ≤ i − offset)`.
    offset: i64,
    cdf: Vec<f64>,
}

impl Horizon {
    /// P(X(t) ≤ x).
    fn at_most(&self, x: i64) -> f64 {
        match usize::try_from(x + self.offset) {
            Err(_) => 0.0,
            Ok(i) => self.cdf.get(i).copied().unwrap_or(1.0),
        }
    }

    /// P(the next dial's answer at `t` finds no slot) with `before` new dials ahead of
    /// it: P(X(t) − B < 1) where B ~ Binomial(before, q) counts their answers by `t`.
    fn risk(&self, before: u32) -> f64 {
        let q = self.q.clamp(0.0, 1.0);
        if q <= 0.0 || before == 0 {
            return self.at_most(0);
        }
        let n = i64::from(before);
        let odds = q / (1.0 - q).max(1e-12);
        let mut pmf = (1.0 - q).powi(before as i32);
        let mut sum = 0.0;
        for b in 0..=n {
            sum += pmf * self.at_most(b);
            pmf *= (n - b) as f64 / (b + 1) as f64 * odds;
        }
        sum.min(1.0)
    }
}

/// The exact distribution of `base + Σ Bernoulli(up) − Σ Bernoulli(down)` (a
/// difference of Poisson-binomial counts), by convolving one event at a time;
/// returns `(offset, cdf)` as in [`Horizon`]. Values with negligible probability are
/// trimmed from both ends as they appear, so the work follows the spread, not the
/// count of events.
fn net_distribution(base: i64, up: &[f64], down: &[f64]) -> (i64, Vec<f64>) {
    const NEGLIGIBLE: f64 = 1e-13;
    let offset = down.len();
    let mut pmf = vec![0.0; up.len() + down.len() + 1];
    pmf[offset] = 1.0;
    let (mut lo, mut hi) = (offset, offset);
    let trim = |pmf: &[f64], lo: &mut usize, hi: &mut usize| {
        while *lo < *hi && pmf[*lo] < NEGLIGIBLE {
            *lo += 1;
        }
        while *hi > *lo && pmf[*hi] < NEGLIGIBLE {
            *hi -= 1;
        }
    };
    for &p in up {
        pmf[hi + 1] = 0.0;
        for i in (lo..=hi).rev() {
            let v = pmf[i];
            pmf[i + 1] += v * p;
            pmf[i] = v * (1.0 - p);
        }
        hi += 1;
        trim(&pmf, &mut lo, &mut hi);
    }
    for &p in down {
        pmf[lo - 1] = 0.0;
        for i in lo..=hi {
            let v = pmf[i];
            pmf[i - 1] += v * p;
            pmf[i] = v * (1.0 - p);
        }
        lo -= 1;
        trim(&pmf, &mut lo, &mut hi);
    }
    let mut cdf = Vec::with_capacity(hi - lo + 1);
    let mut acc = 0.0;
    for &v in &pmf[lo..=hi] {
        acc += v;
        cdf.push(acc.min(1.0));
    }
    // cdf[0] is the value lo − offset + base.
    (offset as i64 - lo as i64 - base, cdf)
}

/// How many dials to place now so each one's abandon risk stays at or below
/// `threshold`, dialling at most `max_new`.
pub(super) fn calls_to_start(
    stats: &LiveStats,
    s: &Snapshot<'_>,
    threshold: f64,
    abandon_window: f64,
    max_new: u32,
) -> u32 {
    let base = i64::from(s.free_slots) - i64::from(s.held_answers);
    let mut ends = Vec::with_capacity(s.connected.len());
    let mut answers = Vec::with_capacity(s.ringing.len());
    let horizons: Vec<Horizon> = stats
        .answer_delay_points()
        .into_iter()
        .map(|(t, weight)| {
            ends.clear();
            ends.extend(s.connected.iter().map(|&age| stats.p_release_within(age, t + abandon_window)));
            answers.clear();
            answers.extend(s.ringing.iter().map(|&age| stats.p_answer_within(age, t)));
            let (offset, cdf) = net_distribution(base, &ends, &answers);
            Horizon { weight, q: stats.p_answer_within(0.0, t), offset, cdf }
        })
        .collect();
    let risk = |before: u32| -> f64 { horizons.iter().map(|h| h.weight * h.risk(before)).sum() };

    // The risk grows with every dial placed before, so the batch ends at the first
    // dial over the threshold: gallop to bracket it, then bisect. `ok` dials before
    // one are acceptable; `bad` before one are not (or `bad` is past the cap).
    let acceptable = |before: u32| risk(before) <= threshold;
    if max_new == 0 || !acceptable(0) {
        return 0;
    }
    let (mut ok, mut bad, mut step) = (0u32, max_new, 1u32);
    while ok + step < bad {
        if acceptable(ok + step) {
            ok += step;
            step = step.saturating_mul(2);
        } else {
            bad = ok + step;
            break;
        }
    }
    while bad - ok > 1 {
        let mid = ok + (bad - ok) / 2;
        if acceptable(mid) {
            ok = mid;
        } else {
            bad = mid;
        }
    }
    ok + 1
}
