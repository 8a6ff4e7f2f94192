//! The simulator's bookkeeping against hand-computed runs, the command line, the JSON
//! rows, and a short benchmark that a pacing regression would fail.

#![allow(clippy::unwrap_used)]

use clap::Parser;

use super::*;

/// Every dial answered after exactly 5 s, every call 60 s plus 2 s release.
fn clockwork() -> Scenario {
    Scenario {
        minutes: 10.0,
        warmup_minutes: 1.0,
        answer_prob: 1.0,
        fail_prob: 0.0,
        answer_delay_mean: 5.0,
        answer_delay_sd: 0.0,
        talk_mean: 60.0,
        talk_cv: 0.0,
        release_seconds: 2.0,
        ..Scenario::default()
    }
}

fn run_one(sc: &Scenario, slots: u32, strategy: Strategy) -> RunResult {
    let mut pacer = Pacer::new(strategy, pacer_settings(sc));
    simulate(sc, slots, 1, &mut pacer)
}

#[test]
fn occupancy_and_connects_match_a_hand_computed_run() {
    // One slot, progressive: dial at 0, answer at 5, slot busy 5-67; free at 67, dial
    // at the 68 s tick, answer at 73, ... a 68 s cycle with 62 s busy.
    // Window 60-600 s: 7 s of the first cycle, cycles 1-7 whole (7 x 62 s), and the
    // cycle answered at 549 s cut at 600 s (51 s): 492 s busy of 540.
    let r = run_one(&clockwork(), 1, Strategy::Progressive);
    assert!((r.occupancy - 492.0 / 540.0).abs() < 1e-9, "{}", r.occupancy);
    // Talk alone: 5 s + 7 x 60 s + 51 s.
    assert!((r.talk_occupancy - 476.0 / 540.0).abs() < 1e-9, "{}", r.talk_occupancy);
    // Answers at 5, 73, ..., 549: nine in the run, eight inside the window.
    assert_eq!((r.human_answers, r.abandons, r.dials), (9, 0, 9));
    assert!((r.connects_per_slot_hour() - 8.0 / 0.15).abs() < 1e-9);
    // Ten slots behave as ten copies of one.
    let r10 = run_one(&clockwork(), 10, Strategy::Progressive);
    assert!((r10.occupancy - r.occupancy).abs() < 1e-9);
    assert_eq!(r10.human_answers, 90);
}

#[test]
fn a_second_answer_for_one_slot_is_abandoned_after_the_window() {
    // Ratio 2 on one slot: both dials answer at 5 s, one connects, the other waits
    // 2 s for a slot that frees at 67 s and is abandoned. Every cycle, half.
    let r = run_one(&clockwork(), 1, Strategy::FixedRatio(2.0));
    assert_eq!(r.human_answers, 18);
    assert_eq!(r.abandons, 9);
    assert!((r.abandon_rate() - 0.5).abs() < 1e-12);
    // With a 100 s window the second answer waits for the slot instead.
    let patient = Scenario { abandon_window_seconds: 100.0, ..clockwork() };
    let r = run_one(&patient, 1, Strategy::FixedRatio(2.0));
    // Cycles of 130 s: answers at 5 s, the second connects at 67 s, the slot frees at
    // 129 s and the next dials go out at the 130 s tick. Busy in the window:
    // 69 + 3 x 124 + 75 s of 540.
    assert_eq!(r.abandons, 0);
    assert!((r.occupancy - 516.0 / 540.0).abs() < 1e-9, "{}", r.occupancy);
}

#[test]
fn failed_and_unanswered_dials_take_their_time() {
    // Nobody answers: progressive re-dials one slot every 26 s (25 s, next tick).
    let sc = Scenario { answer_prob: 0.0, fail_prob: 0.0, ..clockwork() };
    let r = run_one(&sc, 1, Strategy::Progressive);
    assert_eq!((r.human_answers, r.occupancy), (0, 0.0));
    assert_eq!(r.dials, 600 / 26 + 1);
    // All busy: a dial every 4 s (3 s, next tick).
    let sc = Scenario { answer_prob: 0.0, fail_prob: 1.0, ..clockwork() };
    assert_eq!(run_one(&sc, 1, Strategy::Progressive).dials, 150);
}

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: Args,
}

fn parse(argv: &[&str]) -> Args {
    Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied())).unwrap().args
}

#[test]
fn flags_default_to_the_issue_scenario() {
    let a = parse(&[]);
    assert_eq!(a.slots, vec![4, 10, 50, 200]);
    assert_eq!(a.scenarios().len(), 1);
    let names: Vec<&str> = parse(&["--scenario", "all,cold"]).scenarios().iter().map(|s| s.0).collect();
    assert_eq!(names, ["default", "cold", "drift", "short", "demo"]);
    assert_eq!(a.seeds.list, (1..=10).collect::<Vec<u64>>());
    assert_eq!(a.scenario(), Scenario::default());
    assert_eq!(a.pacers.len(), 4);
    let a = parse(&["--seeds", "1-3,7", "--slots", "5", "--talk-cv", "0.5", "--json"]);
    assert_eq!(a.seeds.list, vec![1, 2, 3, 7]);
    assert_eq!((a.slots, a.talk_cv, a.json), (vec![5], 0.5, true));
    assert!("3-1".parse::<Seeds>().is_err());
    assert!("x".parse::<Seeds>().is_err());
}

#[test]
fn impossible_scenarios_are_refused_by_flag() {
    let err = measure(&parse(&["--answer-prob", "0.9", "--fail-prob", "0.2"])).unwrap_err();
    assert!(err.to_string().contains("--answer-prob"), "{err}");
    let err = measure(&parse(&["--warmup-minutes", "40"])).unwrap_err();
    assert!(err.to_string().contains("--warmup-minutes"), "{err}");
}

#[test]
fn json_rows_carry_the_documented_fields() {
    let args = parse(&[
        "--slots",
        "5",
        "--seeds",
        "1-2",
        "--minutes",
        "4",
        "--warmup-minutes",
        "1",
        "--ratio-max",
        "1.5",
        "--json",
    ]);
    let mut out = Vec::new();
    run(&args, &mut out).unwrap();
    let rows: Vec<serde_json::Value> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let pacers: Vec<&str> = rows.iter().map(|r| r["pacer"].as_str().unwrap()).collect();
    assert_eq!(pacers, ["progressive", "fixed", "erlang", "predictive"]);
    for r in &rows {
        assert_eq!(r["slots"], 5);
        for field in ["occupancy", "abandon_rate", "abandon_rate_max_seed", "connects_per_slot_hour"] {
            let v = r[field].as_f64().unwrap_or_else(|| panic!("{field} missing in {r}"));
            assert!(v >= 0.0 && (field == "connects_per_slot_hour" || v <= 1.0), "{field} = {v}");
        }
        assert_eq!(r.get("fixed_ratio").is_some(), r["pacer"] == "fixed", "{r}");
    }
    let ratio = rows[1]["fixed_ratio"].as_f64().unwrap();
    assert!((1.0..=1.5).contains(&ratio));
}

#[test]
fn tables_name_every_pacer() {
    let args =
        parse(&["--slots", "5", "--seeds", "1", "--minutes", "3", "--warmup-minutes", "1", "--ratio-max", "1.2"]);
    let mut out = Vec::new();
    run(&args, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("5 slots"), "{text}");
    for pacer in ["progressive", "fixed", "erlang", "predictive"] {
        assert!(text.lines().any(|l| l.starts_with(pacer)), "{pacer} missing:\n{text}");
    }
}

#[test]
fn short_benchmark_predictive_fills_slots_within_the_abandon_target() {
    // 50 slots, 3 seeds of the default scenario. Full-length runs: over 15 minutes
    // (about 350 answers) one seed in thirty ends a little over 3%.
    let args = parse(&["--slots", "50", "--seeds", "1-3", "--pacers", "progressive,predictive"]);
    let reports = measure(&args).unwrap();
    let progressive = reports[0].slots[0].row("progressive").unwrap();
    let predictive = reports[0].slots[0].row("predictive").unwrap();
    assert!(progressive.occupancy < 0.72, "progressive {}", progressive.occupancy);
    assert!(predictive.occupancy > 0.88, "predictive {}", predictive.occupancy);
    assert!(predictive.occupancy > progressive.occupancy + 0.18);
    assert!(predictive.abandon_rate_max_seed <= 0.03, "worst seed {}", predictive.abandon_rate_max_seed);
    assert!(predictive.connects_per_slot_hour > progressive.connects_per_slot_hour * 1.25);
}

#[test]
fn runs_are_reproducible() {
    let sc = Scenario { minutes: 6.0, ..Scenario::default() };
    assert_eq!(run_once(&sc, 20, 4, Strategy::Predictive), run_once(&sc, 20, 4, Strategy::Predictive));
    assert_ne!(run_once(&sc, 20, 4, Strategy::Predictive), run_once(&sc, 20, 5, Strategy::Predictive));
}

#[test]
fn predictive_leads_on_the_demo_model_at_four_slots_from_minute_zero() {
    // The issue's first-minutes case: 4 slots, the demo's carrier model, 10 minutes from
    // a cold start. Every baseline whose worst seed stays within 3% (progressive, the
    // best fixed ratio picked afterwards on these very seeds) must be behind predictive,
    // whose own worst seed stays within 3%. With too cautious a small-fleet margin it
    // only tied the best fixed ratio (50.9% each).
    let args = parse(&["--scenario", "demo", "--slots", "4", "--ratio-max", "2.5"]);
    let reports = measure(&args).unwrap();
    let rows = &reports[0].slots[0].rows;
    let predictive = rows.iter().find(|r| r.pacer == "predictive").unwrap();
    assert!(predictive.abandon_rate_max_seed <= 0.03, "worst seed {}", predictive.abandon_rate_max_seed);
    for r in rows.iter().filter(|r| r.pacer != "predictive" && r.abandon_rate_max_seed <= 0.03) {
        assert!(
            predictive.occupancy > r.occupancy,
            "predictive {:.4} does not lead {} {:?} {:.4}",
            predictive.occupancy,
            r.pacer,
            r.fixed_ratio,
            r.occupancy
        );
    }
}
