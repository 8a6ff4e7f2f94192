use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = voxctl::config::Cli::parse();
    vox_telemetry::init(&cli.log_format);
    match voxctl::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voxctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
