//! Temporary tuning harness (to be deleted).
#![allow(clippy::unwrap_used)]
use voxdialler::bench::{Preset, Scenario, pacer_settings, simulate};
use voxdialler::pacing::{Pacer, Strategy};

fn env(name: &str, d: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let presets: Vec<Preset> = args[0]
        .split(',')
        .map(|p| match p {
            "default" => Preset::Default,
            "cold" => Preset::Cold,
            "drift" => Preset::Drift,
            "short" => Preset::Short,
            _ => Preset::Demo,
        })
        .collect();
    let slots: Vec<u32> = args[1].split(',').map(|s| s.parse().unwrap()).collect();
    for p in presets {
        let sc = p.apply(&Scenario::default());
        for &n in &slots {
            let mut s = pacer_settings(&sc);
            s.memory_seconds = env("MEM", s.memory_seconds);
            s.memory_floor_calls = env("FLOOR", s.memory_floor_calls);
            s.controller.max_factor = env("MAXF", s.controller.max_factor);
            s.controller.setpoint_share = env("SETP", s.controller.setpoint_share);
            s.controller.credit_use = env("CREDIT", s.controller.credit_use);
            s.controller.gain = env("GAIN", s.controller.gain);
            s.controller.initial_share = env("INIT", s.controller.initial_share);
            s.controller.horizon_seconds = env("HORIZON", s.controller.horizon_seconds);
            let runs: Vec<_> = std::thread::scope(|scope| {
                let hs: Vec<_> = (1..=10u64)
                    .map(|seed| {
                        let s = s;
                        let sc = &sc;
                        scope.spawn(move || {
                            let mut pacer = Pacer::new(Strategy::Predictive, s);
                            simulate(sc, n, seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(n), &mut pacer)
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let occ = runs.iter().map(|r| r.occupancy).sum::<f64>() / 10.0;
            let worst = runs.iter().map(|r| r.abandon_rate()).fold(0.0, f64::max);
            let mean = runs.iter().map(|r| r.abandon_rate()).sum::<f64>() / 10.0;
            println!(
                "{:8} {:4} occ {:5.1}% worst {:5.2}% mean {:5.2}%",
                p.name(),
                n,
                occ * 100.0,
                worst * 100.0,
                mean * 100.0
            );
        }
    }
}
