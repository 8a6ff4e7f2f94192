//! What every Vox binary shares: what was built ([`build`]), its `/metrics` text
//! ([`metrics::render`]) and its logging set-up: structured `tracing` output to stderr,
//! human-readable ("pretty") or one JSON object per line ("json"), filtered by `RUST_LOG`
//! (default `info`). Messages are lower case; identifiers travel as fields (`call_id`,
//! `node_id`, `worker`), never inside the text. With an OTLP endpoint in the environment,
//! spans are exported as traces too ([`trace`]), and log lines written inside a request
//! carry its `trace_id`.

pub mod build;
pub mod metrics;
pub mod requests;
pub mod trace;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber once (later calls do nothing) for `service` (the
/// binary's name: the default `service.name` of its traces). Keep the returned guard
/// until the process ends: dropping it sends the spans not yet exported.
pub fn init(format: &str, service: &str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (provider, trace_error) = match trace::provider(service) {
        Ok(p) => (p, None),
        Err(e) => (None, Some(e)),
    };
    let otel = provider.as_ref().map(trace::layer);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if format == "json" { registry.with(fmt.json()).try_init() } else { registry.with(fmt).try_init() };
    if let Some(error) = trace_error {
        tracing::error!(error, "traces are off: the OTLP exporter could not be set up from OTEL_* variables");
    } else if provider.is_some() {
        tracing::info!("traces are exported over OTLP (OTEL_EXPORTER_OTLP_*)");
    }
    Telemetry { provider }
}

/// What [`init`] set up; dropping it flushes the spans still waiting for export.
#[derive(Debug)]
#[must_use = "dropping it at once would shut trace export down"]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "traces: the last spans could not be exported");
        }
    }
}
