use anyhow::Context;
use clap::Parser;
use voxcore::config::{Cli, Command};

/// A worker of one call slot runs on one thread (see `voxcore::worker::run` for why); a
/// worker of several slots and the host use every core.
fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let one_thread = matches!(&cli.command, Command::Worker(args) if args.common.max_concurrent_calls <= 1);
    let runtime = if one_thread {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
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
