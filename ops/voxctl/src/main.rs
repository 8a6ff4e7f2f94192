use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = voxctl::config::Cli::parse();
    let _telemetry = vox_telemetry::init(&cli.log_format, "voxctl");
    match voxctl::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voxctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
