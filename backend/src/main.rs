use anyhow::Context;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = voxbridge::config::Args::parse();
    let dump = args.dump_config;
    let settings = args.resolve()?;
    if dump {
        print!("{}", settings.dump());
        return Ok(());
    }
    let _telemetry = vox_telemetry::init(&settings.log_format, "voxbridge");
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("bind {} (is another voxbridge running? set --listen)", settings.listen))?;
    voxbridge::run(settings, listener, vox_node::shutdown_signal()).await
}
