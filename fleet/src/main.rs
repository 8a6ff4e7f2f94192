use clap::Parser;
use voxcore::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Worker(args) => {
            vox_telemetry::init(&args.common.log_format);
            voxcore::worker::run(args, vox_node::shutdown_signal()).await
        }
        Command::Host(args) => {
            vox_telemetry::init(&args.common.log_format);
            voxcore::host::run(args, vox_node::shutdown_signal()).await
        }
    }
}
