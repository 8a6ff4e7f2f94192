//! The pacing benchmark (`voxctl bench pacing`): the dialler's real [`crate::pacing`]
//! code against a discrete-event model of a carrier on a virtual clock, every model
//! parameter a flag, with the baselines measured in the same run.
//!
//! For each scenario (`--scenario`, see [`Preset`]) and slot count it runs, over every
//! seed: progressive pacing; a sweep of fixed ratios, keeping the one with the best
//! occupancy whose worst seed stays within the abandon target; open-loop Erlang pacing;
//! and predictive pacing. Output is one table per scenario and slot count, then with
//! several scenarios a summary (every pacer's occupancy and worst seed, and whether
//! predictive beat every baseline that kept its worst seed within the target); or with
//! `--json` one JSON object per line per scenario, pacer and slot count (fields
//! `scenario`, `slots`, `pacer`, `fixed_ratio` on the fixed row, `occupancy`,
//! `talk_occupancy`, `abandon_rate`, `abandon_rate_max_seed`, `connects_per_slot_hour`,
//! `dials_per_slot_hour`, `seeds`; rates are fractions averaged over seeds).

pub mod carrier;
pub mod report;
pub mod scenario;

use std::io::Write;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;

use crate::pacing::{Pacer, PacerSettings, Strategy};
pub use carrier::{RunResult, simulate};
pub use report::{Row, ScenarioReport, SlotsReport};
pub use scenario::{Preset, Scenario};

/// Seeds given as ranges and single numbers: `1-10`, `3`, `1-3,7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeds {
    pub list: Vec<u64>,
    pub text: String,
}

impl FromStr for Seeds {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut list = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || format!("{part:?} is not a seed or a range of seeds such as 1-10");
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b): (u64, u64) =
                        (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
                    if b < a || b - a >= 10_000 {
                        return Err(bad());
                    }
                    list.extend(a..=b);
                }
                None => list.push(part.parse().map_err(|_| bad())?),
            }
        }
        if list.is_empty() {
            return Err("give at least one seed".to_string());
        }
        Ok(Seeds { list, text: s.trim().to_string() })
    }
}

/// The pacers the benchmark can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PacerKind {
    Progressive,
    Fixed,
    Erlang,
    Predictive,
}

/// Flags of `voxctl bench pacing`. Times in seconds unless named minutes;
/// probabilities and rates as fractions.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Scenarios to run: the flags as given (default), then presets that override some
    /// of them: cold, drift, short, demo; or all.
    #[arg(long, env = "VOX_BENCH_SCENARIO", value_enum, value_delimiter = ',', default_value = "default")]
    pub scenario: Vec<Preset>,
    /// Worker slot counts, one table each.
    #[arg(long, env = "VOX_BENCH_SLOTS", value_delimiter = ',', default_value = "4,10,50,200",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub slots: Vec<u32>,
    /// Seeds of the runs, averaged: ranges and numbers such as "1-10" or "1-3,7".
    #[arg(long, env = "VOX_BENCH_SEEDS", default_value = "1-10")]
    pub seeds: Seeds,
    /// Length of each run.
    #[arg(long, env = "VOX_BENCH_MINUTES", default_value_t = 35.0)]
    pub minutes: f64,
    /// Minutes at the start of each run left out of occupancy and connects (the abandon
    /// rate counts the whole run).
    #[arg(long, env = "VOX_BENCH_WARMUP_MINUTES", default_value_t = 5.0)]
    pub warmup_minutes: f64,
    /// Seconds between pacing decisions.
    #[arg(long, env = "VOX_BENCH_TICK_SECONDS", default_value_t = 2.0)]
    pub tick_seconds: f64,
    /// Probability that a dial is answered by a person.
    #[arg(long, env = "VOX_BENCH_ANSWER_PROB", default_value_t = 0.30)]
    pub answer_prob: f64,
    /// The answer probability from --answer-change-minute on (unset: no change).
    #[arg(long, env = "VOX_BENCH_ANSWER_PROB_AFTER")]
    pub answer_prob_after: Option<f64>,
    /// Minute of the run at which --answer-prob-after takes over.
    #[arg(long, env = "VOX_BENCH_ANSWER_CHANGE_MINUTE", default_value_t = 15.0)]
    pub answer_change_minute: f64,
    /// Probability that a dial is busy or fails; the rest ring out unanswered.
    #[arg(long, env = "VOX_BENCH_FAIL_PROB", default_value_t = 0.15)]
    pub fail_prob: f64,
    /// Seconds after the dial that busy or failed is known.
    #[arg(long, env = "VOX_BENCH_FAIL_DELAY_SECONDS", default_value_t = 3.0)]
    pub fail_delay_seconds: f64,
    /// Seconds of ringing after which the dialler gives up.
    #[arg(long, env = "VOX_BENCH_NO_ANSWER_TIMEOUT", default_value_t = 25.0)]
    pub no_answer_timeout: f64,
    /// Mean seconds from dial to a person answering (lognormal).
    #[arg(long, env = "VOX_BENCH_ANSWER_DELAY_MEAN", default_value_t = 9.0)]
    pub answer_delay_mean: f64,
    /// Standard deviation of the answer delay, seconds.
    #[arg(long, env = "VOX_BENCH_ANSWER_DELAY_SD", default_value_t = 5.0)]
    pub answer_delay_sd: f64,
    /// Mean talk time, seconds (lognormal).
    #[arg(long, env = "VOX_BENCH_TALK_MEAN", default_value_t = 120.0)]
    pub talk_mean: f64,
    /// Coefficient of variation of the talk time (sd / mean).
    #[arg(long, env = "VOX_BENCH_TALK_CV", default_value_t = 1.0)]
    pub talk_cv: f64,
    /// Seconds a slot stays busy after the hang-up.
    #[arg(long, env = "VOX_BENCH_RELEASE_SECONDS", default_value_t = 2.0)]
    pub release_seconds: f64,
    /// Seconds an answered person waits for a free slot before the call is abandoned.
    #[arg(long, env = "VOX_BENCH_ABANDON_WINDOW_SECONDS", default_value_t = 2.0)]
    pub abandon_window_seconds: f64,
    /// Highest acceptable abandon rate (abandons / human answers).
    #[arg(long, env = "VOX_BENCH_ABANDON_TARGET", default_value_t = 0.03)]
    pub abandon_target: f64,
    /// Lowest ratio of the fixed-ratio sweep.
    #[arg(long, env = "VOX_BENCH_RATIO_MIN", default_value_t = 1.0)]
    pub ratio_min: f64,
    /// Highest ratio of the fixed-ratio sweep (at 200 slots the best ratio within the
    /// default target is above 4).
    #[arg(long, env = "VOX_BENCH_RATIO_MAX", default_value_t = 6.0)]
    pub ratio_max: f64,
    /// Step of the fixed-ratio sweep.
    #[arg(long, env = "VOX_BENCH_RATIO_STEP", default_value_t = 0.1)]
    pub ratio_step: f64,
    /// Pacers to run.
    #[arg(
        long,
        env = "VOX_BENCH_PACERS",
        value_delimiter = ',',
        default_value = "progressive,fixed,erlang,predictive"
    )]
    pub pacers: Vec<PacerKind>,
    /// Print rows as JSON objects, one per line, instead of tables.
    #[arg(long, env = "VOX_BENCH_JSON")]
    pub json: bool,
    /// Also print every ratio of the fixed-ratio sweep.
    #[arg(long, env = "VOX_BENCH_SHOW_SWEEP")]
    pub show_sweep: bool,
    /// Runs in parallel. [default: the number of CPUs]
    #[arg(long, env = "VOX_BENCH_JOBS")]
    pub jobs: Option<usize>,
}

impl Args {
    pub fn scenario(&self) -> Scenario {
        Scenario {
            minutes: self.minutes,
            warmup_minutes: self.warmup_minutes,
            tick_seconds: self.tick_seconds,
            answer_prob: self.answer_prob,
            answer_prob_after: self.answer_prob_after,
            answer_change_minute: self.answer_change_minute,
            fail_prob: self.fail_prob,
            fail_delay_seconds: self.fail_delay_seconds,
            no_answer_timeout: self.no_answer_timeout,
            answer_delay_mean: self.answer_delay_mean,
            answer_delay_sd: self.answer_delay_sd,
            talk_mean: self.talk_mean,
            talk_cv: self.talk_cv,
            release_seconds: self.release_seconds,
            abandon_window_seconds: self.abandon_window_seconds,
            abandon_target: self.abandon_target,
        }
    }

    /// The scenarios to run, `all` expanded, each once, with its name.
    pub fn scenarios(&self) -> Vec<(&'static str, Scenario)> {
        let base = self.scenario();
        let mut presets: Vec<Preset> = Vec::new();
        for p in &self.scenario {
            let each: &[Preset] = if *p == Preset::All { &Preset::EACH } else { std::slice::from_ref(p) };
            for p in each {
                if !presets.contains(p) {
                    presets.push(*p);
                }
            }
        }
        presets.iter().map(|p| (p.name(), p.apply(&base))).collect()
    }

    fn ratios(&self) -> anyhow::Result<Vec<f64>> {
        anyhow::ensure!(self.ratio_min >= 1.0, "--ratio-min must be 1 or more");
        anyhow::ensure!(self.ratio_max >= self.ratio_min, "--ratio-max must be at least --ratio-min");
        anyhow::ensure!(self.ratio_step > 0.0, "--ratio-step must be above 0");
        let n = ((self.ratio_max - self.ratio_min) / self.ratio_step + 1e-9).floor() as usize;
        anyhow::ensure!(n <= 1000, "the sweep would try {} ratios; use a larger --ratio-step", n + 1);
        Ok((0..=n).map(|i| ((self.ratio_min + i as f64 * self.ratio_step) * 1e6).round() / 1e6).collect())
    }
}

/// The pacer settings matching a scenario: the dialler's defaults, told the
/// scenario's timeout, abandon window and target.
pub fn pacer_settings(sc: &Scenario) -> PacerSettings {
    PacerSettings {
        abandon_target: sc.abandon_target,
        abandon_window_seconds: sc.abandon_window_seconds,
        ring_timeout_seconds: sc.no_answer_timeout,
        ..PacerSettings::default()
    }
}

/// The number list of a seed at a slot count; every pacer gets the same one.
fn list_seed(seed: u64, slots: u32) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(slots)
}

/// Runs one pacer once.
pub fn run_once(sc: &Scenario, slots: u32, seed: u64, strategy: Strategy) -> RunResult {
    let mut pacer = Pacer::new(strategy, pacer_settings(sc));
    simulate(sc, slots, list_seed(seed, slots), &mut pacer)
}

/// Runs every `(slots, strategy)` variant over every seed on `jobs` threads; returns
/// the runs of each variant in seed order.
fn run_variants(
    sc: &Scenario,
    variants: &[(u32, Strategy)],
    seeds: &[u64],
    jobs: usize,
) -> anyhow::Result<Vec<Vec<RunResult>>> {
    let mut work: Vec<(usize, usize)> =
        (0..variants.len()).flat_map(|v| (0..seeds.len()).map(move |s| (v, s))).collect();
    // Largest first, so the long runs do not end up last on one thread.
    work.sort_by_key(|&(v, _)| std::cmp::Reverse(variants[v].0));
    let next = AtomicUsize::new(0);
    let mut out = vec![vec![RunResult::default(); seeds.len()]; variants.len()];
    let done: Vec<Vec<(usize, usize, RunResult)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..jobs.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(v, s)) = work.get(i) else { break };
                        let (slots, strategy) = variants[v];
                        mine.push((v, s, run_once(sc, slots, seeds[s], strategy)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("a benchmark run panicked")))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    for (v, s, r) in done.into_iter().flatten() {
        out[v][s] = r;
    }
    Ok(out)
}

/// Runs the benchmark and returns its rows, one report per scenario.
pub fn measure(args: &Args) -> anyhow::Result<Vec<ScenarioReport>> {
    let mut out = Vec::new();
    for (name, sc) in args.scenarios() {
        sc.validate().map_err(|e| anyhow::anyhow!("scenario {name}: {e}"))?;
        let slots = measure_scenario(args, name, &sc).with_context(|| format!("run scenario {name}"))?;
        out.push(ScenarioReport { name: name.to_string(), scenario: sc, slots });
    }
    Ok(out)
}

/// Runs one scenario at every slot count.
fn measure_scenario(args: &Args, name: &str, sc: &Scenario) -> anyhow::Result<Vec<SlotsReport>> {
    let sc = sc.clone();
    let ratios = if args.pacers.contains(&PacerKind::Fixed) { args.ratios()? } else { Vec::new() };
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let mut variants = Vec::new();
    for &slots in &args.slots {
        for kind in [PacerKind::Progressive, PacerKind::Erlang, PacerKind::Predictive] {
            if args.pacers.contains(&kind) {
                let strategy = match kind {
                    PacerKind::Progressive => Strategy::Progressive,
                    PacerKind::Erlang => Strategy::Erlang,
                    _ => Strategy::Predictive,
                };
                variants.push((slots, strategy));
            }
        }
        variants.extend(ratios.iter().map(|&r| (slots, Strategy::FixedRatio(r))));
    }
    let runs = run_variants(&sc, &variants, &args.seeds.list, jobs).context("run the benchmark")?;
    let mut reports = Vec::new();
    for &slots in &args.slots {
        let mut rep = SlotsReport { slots, rows: Vec::new(), sweep: Vec::new() };
        for ((vs, strategy), runs) in variants.iter().zip(&runs) {
            if *vs != slots {
                continue;
            }
            let ratio = match strategy {
                Strategy::FixedRatio(r) => Some(*r),
                _ => None,
            };
            let row = Row::from_runs(name, slots, strategy.name(), ratio, runs, &sc);
            if ratio.is_some() { rep.sweep.push(row) } else { rep.rows.push(row) }
        }
        let within = |r: &&Row| r.abandon_rate_max_seed <= sc.abandon_target;
        let best =
            rep.sweep.iter().filter(within).max_by(|a, b| a.occupancy.total_cmp(&b.occupancy)).or_else(|| {
                rep.sweep.iter().min_by(|a, b| a.abandon_rate_max_seed.total_cmp(&b.abandon_rate_max_seed))
            });
        if let Some(best) = best.cloned() {
            rep.rows.push(best);
        }
        let order = |p: &str| ["progressive", "fixed", "erlang", "predictive"].iter().position(|&n| n == p);
        rep.rows.sort_by_key(|r| order(&r.pacer));
        reports.push(rep);
    }
    Ok(reports)
}

/// `voxctl bench pacing`: runs the benchmark and prints its tables (or JSON lines).
pub fn run(args: &Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let reports = measure(args)?;
    if args.json {
        return report::print_json(out, &reports);
    }
    for rep in &reports {
        report::print_tables(out, rep, &args.seeds.text, args.show_sweep).context("print the tables")?;
        writeln!(out)?;
    }
    if reports.len() > 1 {
        report::print_summary(out, &reports).context("print the summary")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
