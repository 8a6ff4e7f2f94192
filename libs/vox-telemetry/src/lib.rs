//! What every Vox binary shares: what was built ([`build`]), its `/metrics` text
//! ([`metrics::render`]) and its logging set-up: structured `tracing` output to stderr,
//! human-readable ("pretty") or one JSON object per line ("json"), filtered by `RUST_LOG`
//! (default `info`). Messages are lower case; identifiers travel as fields (`call_id`,
//! `node_id`, `worker`), never inside the text.

pub mod build;
pub mod metrics;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing.
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}
