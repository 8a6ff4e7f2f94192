use anyhow::Context;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = voxdialler::config::Args::parse();
    let _telemetry = vox_telemetry::init(&args.log_format, "voxdialler");
    let listener = tokio::net::TcpListener::bind(args.health_listen)
        .await
        .with_context(|| format!("bind the health server to {}", args.health_listen))?;
    voxdialler::run(args, listener, vox_node::shutdown_signal()).await
}
