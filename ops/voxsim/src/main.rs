use anyhow::Context;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = voxsim::config::Args::parse();
    let _telemetry = vox_telemetry::init(&args.log_format, "voxsim");
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("bind {}", args.listen))?;
    voxsim::run(args, listener, voxsim::shutdown_signal()).await
}
