//! `voxctl bench media`: Vox's media path against the Python stack it replaces, side by
//! side, in one run on this machine.
//!
//! Each system in turn is started fresh, takes `--streams` concurrent Twilio Media Streams
//! of `--seconds` of real-time 20 ms μ-law frames from an independent client
//! ([`client`]), and is stopped: Vox (voxgate → voxcore workers, echo agent, recording
//! on) in both worker shapes (a worker process per call, and one worker process holding
//! every call), the reference Python echo worker (FastAPI on uvicorn) alone, and behind
//! nginx when `/usr/sbin/nginx` (or `--nginx`) is installed ([`systems`]). For each it prints
//! the echo latency (p50, p99, max: from sending frame k to reading its echo), frames
//! lost (sent, never echoed), CPU-ms per call-second (utime + stime of every server
//! process of the system, from before the streams connect until a second after the
//! last one closed, over streams × seconds), resident memory per slot, the client's own
//! CPU, and Vox's ratios to the others. `--json` prints one object.
//!
//! What counts as Vox's cost: voxgate, the workers, the voxcore host and voxbridge (the
//! call's state reports land there), not `voxctl up` itself, which only supervises.
//! Placing the calls (the voice webhooks) happens before the measurement: it is the
//! control plane's work, not the media path's.
//!
//! Build the release binaries first (`cargo build --release -p voxctl -p voxbridge -p
//! voxcore -p voxgate`) and run `target/release/voxctl bench media`.

mod client;
mod procstat;
mod systems;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use procstat::{CpuSnapshot, RssSampler};
use systems::Running;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Concurrent calls (streams); Vox runs one worker slot per stream (one process per
    /// stream for `vox`, one process for all of them for `vox-shared`).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub streams: u32,
    /// Seconds of audio per call (50 frames a second).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    /// Which systems to run, in this order: vox, vox-shared, python, nginx (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "vox,vox-shared,python,nginx")]
    pub systems: Vec<System>,
    /// Folder holding voxbridge, voxcore and voxgate. [default: the folder of this voxctl]
    #[arg(long, env = "VOX_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// The Python that creates the reference worker's venv.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// The reference worker's venv (created, with FastAPI and uvicorn, when missing).
    /// [default: ~/.cache/vox-bench/venv]
    #[arg(long)]
    pub venv: Option<PathBuf>,
    /// nginx, for the "nginx → Python" system; skipped (and said so) when missing.
    #[arg(long, default_value = "/usr/sbin/nginx")]
    pub nginx: PathBuf,
    /// Runtime threads of each Vox process (voxgate, voxbridge, the voxcore host; set as
    /// TOKIO_WORKER_THREADS, which every Vox binary honours). 0, the default, is what Vox
    /// ships: Tokio's thread per core. 1 runs each on one thread, as the Python worker
    /// runs. voxcore workers run on one thread either way (their --worker-threads).
    #[arg(long, default_value_t = 0)]
    pub vox_threads: u32,
    /// Calls per worker process of `vox-shared`. [default: every stream in one worker,
    /// up to 200 a worker]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub shared_calls_per_worker: Option<u32>,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// Vox with a worker process per call (voxcore's default shape).
    Vox,
    /// Vox with one worker process holding every call (`voxctl up --calls-per-worker`).
    VoxShared,
    Python,
    Nginx,
}

impl System {
    fn title(self, args: &Args) -> String {
        match self {
            System::Vox => "Vox (voxgate -> voxcore, a worker per call)".into(),
            System::VoxShared => {
                let calls = systems::shared_calls_per_worker(args.streams, args.shared_calls_per_worker);
                if calls >= args.streams {
                    "Vox (voxgate -> voxcore, one worker for all calls)".into()
                } else {
                    format!("Vox (voxgate -> voxcore, {calls} calls per worker)")
                }
            }
            System::Python => "Python echo worker".into(),
            System::Nginx => "nginx -> Python".into(),
        }
    }

    fn is_vox(self) -> bool {
        matches!(self, System::Vox | System::VoxShared)
    }
}

/// One system's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SystemReport {
    pub system: System,
    pub title: String,
    pub streams: u32,
    pub seconds: u64,
    pub frames_sent: u64,
    pub frames_echoed: u64,
    pub frames_lost: u64,
    /// Echoes naming another stream or a frame never sent (0 unless something is broken).
    pub frames_misrouted: u64,
    pub echo_p50_ms: f64,
    pub echo_p99_ms: f64,
    pub echo_max_ms: f64,
    pub cpu_ms: f64,
    pub cpu_ms_per_call_second: f64,
    /// Calls one core carries at that cost (1000 / CPU-ms per call-second).
    pub calls_per_core: f64,
    pub cpu_ms_by_process: BTreeMap<String, f64>,
    /// Peak resident memory of all the system's processes, and per slot (stream).
    pub rss_mb: f64,
    pub rss_mb_per_slot: f64,
    pub rss_mb_by_process: BTreeMap<String, f64>,
    /// The client's own CPU over the same window, and as a share of one core.
    pub client_cpu_ms: f64,
    pub client_core_share: f64,
    /// Streams that failed, with why (first ten).
    pub errors: Vec<String>,
}

/// A Vox system's figures over another system's: below 1 is better for Vox.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub vox: System,
    pub against: System,
    pub echo_p99: f64,
    pub cpu_per_call_second: f64,
    pub rss_per_slot: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub streams: u32,
    pub seconds: u64,
    pub cores: usize,
    /// `--vox-threads`: runtime threads of each Vox process (0: one per core).
    pub vox_threads: u32,
    pub systems: Vec<SystemReport>,
    pub vox_ratios: Vec<Ratio>,
    /// Systems asked for but not run, with why.
    pub skipped: BTreeMap<String, String>,
}

pub async fn run(args: &Args, out: &mut (impl std::io::Write + Send)) -> anyhow::Result<()> {
    let report = measure(args).await?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        print_report(&report, out)?;
    }
    let failed: Vec<String> = report
        .systems
        .iter()
        .filter(|s| !s.errors.is_empty())
        .map(|s| format!("{}: {:?}", s.title, s.errors))
        .collect();
    if !failed.is_empty() {
        bail!("streams failed: {}", failed.join("; "));
    }
    Ok(())
}

pub async fn measure(args: &Args) -> anyhow::Result<Report> {
    let dir = tempfile::Builder::new().prefix("vox-bench-media-").tempdir().context("create a temporary folder")?;
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe().context("find voxctl")?.parent().context("voxctl has no folder")?.to_path_buf(),
    };
    let mut skipped = BTreeMap::new();
    let mut python = None;
    let mut reports = Vec::new();
    for system in &args.systems {
        let sub = dir.path().join(format!("{system:?}").to_lowercase());
        std::fs::create_dir_all(&sub).with_context(|| format!("create {}", sub.display()))?;
        if matches!(system, System::Python | System::Nginx) && python.is_none() {
            let venv = match &args.venv {
                Some(v) => v.clone(),
                None => home_cache()?.join("vox-bench").join("venv"),
            };
            python = Some(systems::python_venv(&args.python, &venv).await?);
        }
        let running = match (system, &python) {
            (System::Vox, _) => systems::start_vox(&sub, &bin_dir, args.streams, 1, args.vox_threads).await?,
            (System::VoxShared, _) => {
                let calls = systems::shared_calls_per_worker(args.streams, args.shared_calls_per_worker);
                systems::start_vox(&sub, &bin_dir, args.streams, calls, args.vox_threads).await?
            }
            (System::Python, Some(py)) => systems::start_python(&sub, py, args.streams).await?,
            (System::Nginx, Some(py)) => {
                if !args.nginx.is_file() {
                    skipped.insert("nginx".into(), format!("{} is not installed", args.nginx.display()));
                    continue;
                }
                systems::start_nginx(&sub, py, &args.nginx, args.streams).await?
            }
            (_, None) => unreachable!("the venv is made above for the Python systems"),
        };
        tracing::info!(system = ?system, streams = args.streams, seconds = args.seconds, "measuring");
        let report = measure_one(*system, running, args).await;
        reports.push(report);
    }
    let vox_ratios = ratios(&reports);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(Report {
        streams: args.streams,
        seconds: args.seconds,
        cores,
        vox_threads: args.vox_threads,
        systems: reports,
        vox_ratios,
        skipped,
    })
}

fn home_cache() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set; give --venv")?;
    Ok(PathBuf::from(home).join(".cache"))
}

/// Runs the streams against one started system, measures it, and stops it.
async fn measure_one(system: System, mut running: Running, args: &Args) -> SystemReport {
    let ticks = procstat::ticks_per_second();
    let targets = std::mem::take(&mut running.targets);
    let rss = RssSampler::start(running.roles.clone(), Duration::from_millis(500));
    let cpu = CpuSnapshot::take(running.roles.pids());
    let client_before = CpuSnapshot::own();
    let started = std::time::Instant::now();
    let outcomes = client::run_streams(targets, args.seconds).await;
    // The calls' ends (recordings closed, states reported) belong to them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let by_process = cpu.ms_since(&running.roles, ticks);
    let client_ms = (CpuSnapshot::own().saturating_sub(client_before)) as f64 * 1000.0 / ticks as f64;
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (rss_kib, rss_by) = rss.stop();
    running.stop().await;

    let mut latencies: Vec<u32> = outcomes.iter().flat_map(|o| o.latencies_us.iter().copied()).collect();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        f64::from(latencies[rank - 1]) / 1000.0
    };
    let sent: u64 = outcomes.iter().map(|o| o.sent).sum();
    let echoed: u64 = outcomes.iter().map(|o| o.echoed).sum();
    let cpu_ms: f64 = by_process.values().sum();
    let call_seconds = f64::from(args.streams) * args.seconds as f64;
    let per_call_second = cpu_ms / call_seconds;
    let mb = |kib: u64| kib as f64 / 1024.0;
    SystemReport {
        system,
        title: system.title(args),
        streams: args.streams,
        seconds: args.seconds,
        frames_sent: sent,
        frames_echoed: echoed,
        frames_lost: sent.saturating_sub(echoed),
        frames_misrouted: outcomes.iter().map(|o| o.misrouted).sum(),
        echo_p50_ms: pct(0.50),
        echo_p99_ms: pct(0.99),
        echo_max_ms: pct(1.0),
        cpu_ms,
        cpu_ms_per_call_second: per_call_second,
        calls_per_core: if per_call_second > 0.0 { 1000.0 / per_call_second } else { f64::INFINITY },
        cpu_ms_by_process: by_process,
        rss_mb: mb(rss_kib),
        rss_mb_per_slot: mb(rss_kib) / f64::from(args.streams),
        rss_mb_by_process: rss_by.into_iter().map(|(k, v)| (k, mb(v))).collect(),
        client_cpu_ms: client_ms,
        client_core_share: if wall_ms > 0.0 { client_ms / wall_ms } else { 0.0 },
        errors: outcomes.iter().filter_map(|o| o.error.clone()).take(10).collect(),
    }
}

fn ratios(reports: &[SystemReport]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for vox in reports.iter().filter(|r| r.system.is_vox()) {
        out.extend(reports.iter().filter(|r| !r.system.is_vox()).map(|r| Ratio {
            vox: vox.system,
            against: r.system,
            echo_p99: vox.echo_p99_ms / r.echo_p99_ms,
            cpu_per_call_second: vox.cpu_ms_per_call_second / r.cpu_ms_per_call_second,
            rss_per_slot: vox.rss_mb_per_slot / r.rss_mb_per_slot,
        }));
    }
    out
}

fn print_report(r: &Report, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let threads = match r.vox_threads {
        0 => "a runtime thread per core".to_string(),
        1 => "one runtime thread".to_string(),
        n => format!("{n} runtime threads"),
    };
    writeln!(
        out,
        "media: {} concurrent Twilio streams x {} s of 20 ms mu-law frames in real time; echo; {} cores; \
         each Vox process on {threads}",
        r.streams, r.seconds, r.cores
    )?;
    writeln!(
        out,
        "| system | streams | echo p50 ms | echo p99 ms | echo max ms | frames lost | CPU-ms per call-second | calls per core | RSS MB per slot |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|")?;
    for s in &r.systems {
        writeln!(
            out,
            "| {} | {} | {:.2} | {:.2} | {:.1} | {} of {} | {:.2} | {:.0} | {:.1} |",
            s.title,
            s.streams,
            s.echo_p50_ms,
            s.echo_p99_ms,
            s.echo_max_ms,
            s.frames_lost,
            s.frames_sent,
            s.cpu_ms_per_call_second,
            s.calls_per_core,
            s.rss_mb_per_slot
        )?;
    }
    for ratio in &r.vox_ratios {
        let title = |system: System| r.systems.iter().find(|s| s.system == system).map_or("?", |s| s.title.as_str());
        writeln!(
            out,
            "{} / {}: echo p99 {:.2}x, CPU per call-second {:.2}x, RSS per slot {:.2}x",
            title(ratio.vox),
            title(ratio.against),
            ratio.echo_p99,
            ratio.cpu_per_call_second,
            ratio.rss_per_slot
        )?;
    }
    for s in &r.systems {
        let cpu: Vec<String> = s.cpu_ms_by_process.iter().map(|(k, v)| format!("{k} {v:.0}")).collect();
        let rss: Vec<String> = s.rss_mb_by_process.iter().map(|(k, v)| format!("{k} {v:.1}")).collect();
        writeln!(
            out,
            "{}: CPU ms {} | RSS MB {} | client CPU {:.0} ms ({:.0}% of a core){}",
            s.title,
            cpu.join(", "),
            rss.join(", "),
            s.client_cpu_ms,
            s.client_core_share * 100.0,
            if s.frames_misrouted > 0 { format!(" | {} echoes MISROUTED", s.frames_misrouted) } else { String::new() }
        )?;
        for e in &s.errors {
            writeln!(out, "  stream error: {e}")?;
        }
    }
    for (system, why) in &r.skipped {
        writeln!(out, "{system}: skipped, {why}")?;
    }
    Ok(())
}
