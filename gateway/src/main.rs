use anyhow::Context;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = voxgate::config::Args::parse();
    let _telemetry = vox_telemetry::init(&args.log_format, "voxgate");
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("bind {}", args.listen))?;
    voxgate::run(args, listener, vox_node::shutdown_signal()).await
}
