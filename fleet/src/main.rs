use anyhow::Context;
use clap::Parser;
use voxcore::config::{Cli, Command};

/// A worker runs on `--worker-threads` threads, one by default (see `voxcore::worker::run`
/// for why); the host uses every core.
fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Worker(args) => args.common.worker_threads,
        Command::Host(_) => 0,
    };
    let runtime = match threads {
        1 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        0 => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n as usize).enable_all().build(),
    }
    .context("start the runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Worker(args) => {
                let _telemetry = vox_telemetry::init(&args.common.log_format, "voxcore");
                voxcore::worker::run(args, vox_node::shutdown_signal()).await
            }
            Command::Host(args) => {
                let _telemetry = vox_telemetry::init(&args.common.log_format, "voxcore");
                voxcore::host::run(args, vox_node::shutdown_signal()).await
            }
        }
    })
}
