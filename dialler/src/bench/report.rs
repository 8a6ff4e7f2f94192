//! The benchmark's results: one row per pacer and slot count, averaged over seeds,
//! printed as a table per slot count or as JSON lines.

use std::io::Write;

use serde::Serialize;

use super::carrier::RunResult;
use super::scenario::Scenario;

/// One pacer's figures at one slot count, averaged over the seeds. Rates are
/// fractions (0.03 = 3%).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The scenario's name (`default`, `cold`, ...).
    pub scenario: String,
    pub slots: u32,
    /// `progressive`, `fixed`, `erlang` or `predictive`.
    pub pacer: String,
    /// The ratio of the `fixed` row: the best one the sweep found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_ratio: Option<f64>,
    /// Share of slot time busy (talk + release) in the measured window.
    pub occupancy: f64,
    /// Share of slot time in talk alone in the measured window.
    pub talk_occupancy: f64,
    /// Abandons over human answers in the whole run, averaged over seeds.
    pub abandon_rate: f64,
    /// The worst seed's abandon rate.
    pub abandon_rate_max_seed: f64,
    /// Connects per slot per hour in the measured window.
    pub connects_per_slot_hour: f64,
    /// Dials per slot per hour over the whole run.
    pub dials_per_slot_hour: f64,
    pub seeds: usize,
}

impl Row {
    pub fn from_runs(
        scenario: &str,
        slots: u32,
        pacer: &str,
        fixed_ratio: Option<f64>,
        runs: &[RunResult],
        sc: &Scenario,
    ) -> Row {
        let n = runs.len().max(1) as f64;
        let mean = |f: &dyn Fn(&RunResult) -> f64| runs.iter().map(f).sum::<f64>() / n;
        Row {
            scenario: scenario.to_string(),
            slots,
            pacer: pacer.to_string(),
            fixed_ratio,
            occupancy: mean(&|r| r.occupancy),
            talk_occupancy: mean(&|r| r.talk_occupancy),
            abandon_rate: mean(&|r| r.abandon_rate()),
            abandon_rate_max_seed: runs.iter().map(RunResult::abandon_rate).fold(0.0, f64::max),
            connects_per_slot_hour: mean(&|r| r.connects_per_slot_hour()),
            dials_per_slot_hour: mean(&|r| r.dials as f64 / (f64::from(slots) * sc.minutes / 60.0)),
            seeds: runs.len(),
        }
    }
}

/// Everything measured at one slot count.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotsReport {
    pub slots: u32,
    /// One row per pacer, in the order progressive, fixed, erlang, predictive.
    pub rows: Vec<Row>,
    /// Every ratio the fixed-ratio sweep tried.
    pub sweep: Vec<Row>,
}

impl SlotsReport {
    pub fn row(&self, pacer: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.pacer == pacer)
    }

    /// Whether predictive pacing kept its worst seed within `target` and beat the
    /// occupancy of every baseline that kept its own worst seed within it.
    pub fn predictive_wins(&self, target: f64) -> bool {
        let Some(p) = self.row("predictive") else { return false };
        p.abandon_rate_max_seed <= target
            && self
                .rows
                .iter()
                .filter(|r| r.pacer != "predictive" && r.abandon_rate_max_seed <= target)
                .all(|r| p.occupancy > r.occupancy)
    }
}

/// Everything measured in one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioReport {
    pub name: String,
    pub scenario: Scenario,
    pub slots: Vec<SlotsReport>,
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn print_row(out: &mut dyn Write, r: &Row) -> std::io::Result<()> {
    let ratio = r.fixed_ratio.map_or("-".to_string(), |x| format!("{x:.1}"));
    writeln!(
        out,
        "{:<12} {:>5} {:>10} {:>10} {:>8} {:>11} {:>16.1} {:>13.1}",
        r.pacer,
        ratio,
        format!("{:.1}%", 100.0 * r.occupancy),
        format!("{:.1}%", 100.0 * r.talk_occupancy),
        pct(r.abandon_rate),
        pct(r.abandon_rate_max_seed),
        r.connects_per_slot_hour,
        r.dials_per_slot_hour,
    )
}

/// Prints one scenario's tables, one per slot count.
pub fn print_tables(
    out: &mut dyn Write,
    report: &ScenarioReport,
    seeds: &str,
    show_sweep: bool,
) -> std::io::Result<()> {
    let sc = &report.scenario;
    let reports = &report.slots;
    writeln!(
        out,
        "pacing benchmark, scenario {}: seeds {seeds}; {} min per run, measured from minute {}; tick {} s",
        report.name, sc.minutes, sc.warmup_minutes, sc.tick_seconds
    )?;
    let answer = match sc.answer_prob_after {
        Some(after) => format!("{} until minute {}, then {after}", sc.answer_prob, sc.answer_change_minute),
        None => sc.answer_prob.to_string(),
    };
    writeln!(
        out,
        "per dial: human answer {}, busy/failed {} (after {} s), else no answer (given up at {} s); \
         answer delay lognormal mean {} s sd {} s",
        answer, sc.fail_prob, sc.fail_delay_seconds, sc.no_answer_timeout, sc.answer_delay_mean, sc.answer_delay_sd
    )?;
    writeln!(
        out,
        "talk lognormal mean {} s cv {} + {} s release (busy); abandoned after {} s without a slot; target {}",
        sc.talk_mean,
        sc.talk_cv,
        sc.release_seconds,
        sc.abandon_window_seconds,
        pct(sc.abandon_target)
    )?;
    for rep in reports {
        writeln!(out)?;
        writeln!(out, "{} slots", rep.slots)?;
        writeln!(
            out,
            "{:<12} {:>5} {:>10} {:>10} {:>8} {:>11} {:>16} {:>13}",
            "pacer", "ratio", "occupancy", "talk only", "abandon", "worst seed", "connects/slot-h", "dials/slot-h"
        )?;
        for r in &rep.rows {
            print_row(out, r)?;
        }
        if let Some(p) = rep.row("predictive") {
            let vs: Vec<String> = ["progressive", "fixed", "erlang"]
                .iter()
                .filter_map(|&name| {
                    rep.row(name).map(|b| format!("{name} {:+.1}", 100.0 * (p.occupancy - b.occupancy)))
                })
                .collect();
            if !vs.is_empty() {
                writeln!(out, "predictive occupancy, points above: {}", vs.join(", "))?;
            }
        }
        if let Some(f) = rep.row("fixed") {
            if f.abandon_rate_max_seed > sc.abandon_target {
                writeln!(out, "no ratio in the sweep kept every seed within the target; showing the safest")?;
            } else if rep.sweep.last().is_some_and(|last| last.fixed_ratio == f.fixed_ratio) {
                writeln!(out, "the best fixed ratio is the sweep's highest; raise --ratio-max")?;
            }
        }
        if show_sweep && !rep.sweep.is_empty() {
            writeln!(out, "fixed-ratio sweep:")?;
            for r in &rep.sweep {
                print_row(out, r)?;
            }
        }
    }
    Ok(())
}

/// Prints one line per scenario and slot count: every pacer's occupancy and worst
/// seed, and whether predictive beat every baseline within the target.
pub fn print_summary(out: &mut dyn Write, reports: &[ScenarioReport]) -> std::io::Result<()> {
    writeln!(out, "summary: occupancy / worst seed's abandon rate")?;
    writeln!(
        out,
        "{:<9} {:>5}  {:>17}  {:>23}  {:>17}  {:>17}  predictive wins",
        "scenario", "slots", "progressive", "best fixed", "erlang", "predictive"
    )?;
    for rep in reports {
        for s in &rep.slots {
            let cell = |name: &str| {
                s.row(name).map_or("-".to_string(), |r| {
                    let ratio = r.fixed_ratio.map_or(String::new(), |x| format!("({x:.1}) "));
                    format!("{ratio}{:.1}% / {}", 100.0 * r.occupancy, pct(r.abandon_rate_max_seed))
                })
            };
            writeln!(
                out,
                "{:<9} {:>5}  {:>17}  {:>23}  {:>17}  {:>17}  {}",
                rep.name,
                s.slots,
                cell("progressive"),
                cell("fixed"),
                cell("erlang"),
                cell("predictive"),
                if s.predictive_wins(rep.scenario.abandon_target) { "yes" } else { "no" }
            )?;
        }
    }
    Ok(())
}

/// Prints every row as one JSON object per line (JSON Lines).
pub fn print_json(out: &mut dyn Write, reports: &[ScenarioReport]) -> anyhow::Result<()> {
    for rep in reports {
        for s in &rep.slots {
            for r in &s.rows {
                writeln!(out, "{}", serde_json::to_string(r)?)?;
            }
        }
    }
    Ok(())
}
