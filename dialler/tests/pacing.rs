//! Pacing on a live cluster (every part a real process, voxsim with the demo's carrier
//! model at 2x time): the hold time the dialler reports matches the calls' records, the
//! slot occupancy the records show is the pacing benchmark's for the same model and slot
//! count, and a dialler restarted mid-campaign resumes with its learned figures, read
//! back from the records, instead of the cautious prior.
#![allow(clippy::unwrap_used, reason = "tests stop on failure")]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Platform, Settings, platform, secs, until};
use vox_proto::backend::v1 as bpb;
use voxdialler::bench::{Preset, Scenario, run_once};
use voxdialler::pacing::Strategy;

/// voxsim's time scale in [`demo_model`] (`--time-scale 2`): one wall second is two of
/// the model's.
const TIME_SCALE: f64 = 2.0;

/// `voxctl up --demo`'s carrier model (20 s talk, answers after 5 s), twice as fast: slow
/// enough for the hold times to span several of the estimator's 5 s age bins, as in life.
fn demo_model() -> Vec<String> {
    [
        "--time-scale",
        "2",
        "--answer-prob",
        "0.35",
        "--machine-prob",
        "0.05",
        "--fail-prob",
        "0.15",
        "--answer-delay-mean",
        "5",
        "--answer-delay-sd",
        "3",
        "--talk-mean",
        "20",
        "--talk-cv",
        "0.6",
        "--no-answer-timeout",
        "20",
    ]
    .map(String::from)
    .to_vec()
}

/// Share of `slots` × the time since `started` (wall seconds) that answered calls spent
/// talking with a worker, from the call records; calls still talking count up to `now`.
fn talk_occupancy(calls: &[bpb::Call], slots: u32, started: f64, now: f64) -> f64 {
    let talk: f64 = calls
        .iter()
        .filter(|c| c.answered_at.is_some() && !c.node_id.is_empty())
        .filter(|c| !matches!(c.state(), bpb::CallState::Machine | bpb::CallState::Abandoned))
        .map(|c| {
            let end = if c.ended_at.is_some() { secs(&c.ended_at).min(now) } else { now };
            (end - secs(&c.answered_at).max(started)).max(0.0)
        })
        .sum();
    talk / (f64::from(slots) * (now - started))
}

/// The pacing benchmark's talk occupancy for the demo's model (`voxctl bench pacing
/// --scenario demo`) at `slots`, run from minute 0 for `minutes` of the model's time,
/// averaged over seeds 1–10: what the live campaign should show over the same span.
fn bench_talk_occupancy(slots: u32, minutes: f64) -> f64 {
    let sc = Scenario { minutes, ..Preset::Demo.apply(&Scenario::default()) };
    let total: f64 = (1..=10u64).map(|seed| run_once(&sc, slots, seed, Strategy::Predictive).talk_occupancy).sum();
    total / 10.0
}

/// A pacing figure of the campaign in dialler `i`'s `/metrics`.
fn figure(m: &HashMap<String, f64>, name: &str, campaign_id: &str) -> Option<f64> {
    m.get(&format!("voxdialler_{name}{{campaign_id=\"{campaign_id}\"}}")).copied()
}

/// The mean seconds connected calls held their slot, from the records, and how many.
async fn real_holds(p: &Platform, id: &str) -> (f64, usize) {
    let holds: Vec<f64> = p
        .all_calls(id)
        .await
        .iter()
        .filter(|c| c.state() == bpb::CallState::Completed && c.answered_at.is_some() && !c.node_id.is_empty())
        .map(|c| secs(&c.ended_at) - secs(&c.answered_at))
        .collect();
    (holds.iter().sum::<f64>() / holds.len().max(1) as f64, holds.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_dialler_resumes_with_its_learned_figures() {
    let mut p = platform(Settings { sim_model: Some(demo_model()), ..Settings::default() }).await;
    // Eight workers are the campaign's slots. Its cap counts ringing dials too, so it is
    // four calls per slot, as `voxctl up --demo` sets it: a cap of one per slot would
    // forbid dialling ahead (progressive pacing, whatever the pacer says).
    const SLOTS: u32 = 8;
    let id = p.campaign(100, 4 * SLOTS, 0).await;
    let started = common::now();

    // After 30 completed calls the reported hold time is the calls' own, within 20%.
    let (real, n) = until("30 completed calls", Duration::from_secs(240), async || {
        let (real, n) = real_holds(&p, &id).await;
        (n >= 30).then_some((real, n))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let m = p.dialler_metrics(0).await;
    let aht = figure(&m, "aht_seconds", &id).unwrap();
    assert_eq!(figure(&m, "abandon_target", &id), Some(0.03), "the campaign's own target, for the abandon alert");
    let (real_now, n_now) = real_holds(&p, &id).await;
    println!("after {n}..{n_now} completed calls: reported hold {aht:.2} s, real mean {real:.2}..{real_now:.2} s");
    let near = |x: f64, real: f64| (x / real - 1.0).abs() < 0.2;
    assert!(near(aht, real) || near(aht, real_now), "reported {aht} s, real mean {real}..{real_now} s");

    // Slot occupancy from the records so far (talk time of answered calls over slots ×
    // elapsed) is the benchmark's for the same model, slots and span, within 10 points.
    let now = common::now();
    let live = talk_occupancy(&p.all_calls(&id).await, SLOTS, started, now);
    let minutes = (now - started) * TIME_SCALE / 60.0;
    let bench = bench_talk_occupancy(SLOTS, minutes);
    println!("slot occupancy over the first {minutes:.1} model minutes: live {live:.3}, benchmark {bench:.3}");
    assert!((live - bench).abs() <= 0.10, "live occupancy {live:.3}, the benchmark's {bench:.3}");

    p.until_done(&id, Duration::from_secs(420)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = p.dialler_metrics(0).await;
    let learned = |m: &HashMap<String, f64>| {
        ["aht_seconds", "answer_rate", "ring_seconds", "learned_releases", "abandon_credit"]
            .map(|name| figure(m, name, &id).unwrap_or(f64::NAN))
    };
    let [aht, answer_rate, ring, releases, credit] = learned(&before);
    let (real, completed) = real_holds(&p, &id).await;
    println!(
        "before the restart: hold {aht:.2} s (real {real:.2} s over {completed} calls), answer rate {answer_rate:.3}, \
         ring {ring:.2} s, {releases:.1} releases learned, credit {credit:.2}"
    );
    assert!(releases >= 30.0, "{releases}");

    // kill -9 and start again: nothing is pending, so whatever it reports comes from the
    // call records it read back, not from new calls.
    p.diallers[0].process.kill();
    p.restart_dialler(0).await;
    let after = until("the restarted dialler's figures for the campaign", Duration::from_secs(60), async || {
        let m = p.dialler_metrics(0).await;
        figure(&m, "learned_releases", &id).map(|_| learned(&m))
    })
    .await;
    let [aht2, answer_rate2, ring2, releases2, credit2] = after;
    println!(
        "after the restart: hold {aht2:.2} s, answer rate {answer_rate2:.3}, ring {ring2:.2} s, \
         {releases2:.1} releases learned, credit {credit2:.2}"
    );
    // The cautious prior says 180 s and a 50% answer rate.
    assert!((aht2 / aht - 1.0).abs() < 0.1 && near(aht2, real), "hold {aht2} s after, {aht} s before, real {real} s");
    assert!((answer_rate2 - answer_rate).abs() < 0.05, "answer rate {answer_rate2} after, {answer_rate} before");
    assert!((ring2 - ring).abs() < 0.5, "ring {ring2} s after, {ring} s before");
    assert!(releases2 >= 30.0, "{releases2}");
    assert!((credit2 - credit).abs() < 1.0, "credit {credit2} after, {credit} before");
}
