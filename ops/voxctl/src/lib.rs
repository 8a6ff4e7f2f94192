//! voxctl, the Vox operator CLI. Each subcommand is one operator task: `voxctl health`
//! runs the runbook's checks against a cluster ([`health`]), `voxctl bench` measures
//! ([`flood`], [`bench_media`], the dialler's pacing), and `voxctl up` runs a whole cluster on one
//! machine with embedded storage and zero setup: voxbridge (the control plane), a voxcore host with N worker slots and
//! voxgate (the edge), wired together, health-checked, and stopped in order on Ctrl-C;
//! with `--fleet-hosts` and `--gateways`, several of each, each on its own loopback
//! address as if on its own machine ([`topology`]).
//!
//! Secrets: node API secrets are rotated on every `up` and reach the processes only
//! through their environment, never argv or disk. The one exception to "no secrets on
//! disk" is `<data>/credentials.toml` (mode 0600), a development convenience holding the
//! first admin's password and the Twilio auth token, so they survive restarts.
//!
//! Machine-readable stdout lines for scripts and tests: `VOX_CHILD <name> <pid>` as each
//! process starts, and `VOX_READY bridge=<url> gateway=<url>` once everything is healthy
//! (`gateway` is gateway 1; with several gateways the line adds `gateways=<url>,<url>…`).

pub mod bench_control;
pub mod bench_media;
pub mod bench_queue;
pub mod bootstrap;
pub mod children;
pub mod config;
pub mod credentials;
pub mod demo;
pub mod flood;
pub mod health;
pub mod preflight;
pub mod ready;
pub mod signals;
pub mod topology;
pub mod up;

use config::{BenchCommand, Cli, Command};

/// Runs the parsed command line to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Health(args) => health::run(&args, &mut std::io::stdout()).await,
        Command::Bench(BenchCommand::Pacing(args)) => voxdialler::bench::run(&args, &mut std::io::stdout().lock()),
        Command::Bench(BenchCommand::Flood(args)) => flood::run(&args, &mut std::io::stdout()).await,
        Command::Bench(BenchCommand::Media(args)) => bench_media::run(&args, &mut std::io::stdout()).await,
        Command::Bench(BenchCommand::Queue(args)) => bench_queue::run(&args, &mut std::io::stdout()).await,
        Command::Bench(BenchCommand::Control(args)) => bench_control::run(&args, &mut std::io::stdout()).await,
    }
}
