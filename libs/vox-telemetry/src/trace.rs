//! Distributed traces: OpenTelemetry spans exported over OTLP, and W3C trace context
//! carried between every Vox process, so one call is one trace from the carrier's webhook
//! through voxgate, voxbridge and the worker.
//!
//! **Configuration is the OpenTelemetry standard's own environment**, read once at start:
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`): where spans go.
//!   Unset, tracing is off and costs nothing beyond an ordinary log span per request.
//! - `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` (the standard's default, port 4318) or
//!   `grpc` (port 4317); `OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT` likewise.
//! - `OTEL_SERVICE_NAME`: defaults to the binary (`voxgate`, `voxbridge`, `voxcore`, …).
//! - `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`: default `parentbased_always_on`, so a
//!   call sampled where it starts is sampled everywhere.
//! - `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off.
//!
//! **Propagation** is `traceparent`/`tracestate` (W3C Trace Context) in HTTP headers and
//! gRPC metadata: [`crate::requests::ServerLayer`] (the tower layer every Vox server runs) continues the
//! caller's trace, and [`context_headers`] gives the headers a client sends (Vox's gRPC
//! interceptors add them to every request). A carrier does not send them, so voxgate
//! hands the trace of a call's webhook to its media stream as a stream parameter.
//!
//! Spans go out in batches from OpenTelemetry's own thread; the exporter's HTTP or gRPC
//! client runs on a one-thread Tokio runtime of its own, so a slow collector never blocks
//! a request and no export depends on the service's runtime.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Whether spans are exported (set once, by [`crate::init`]).
static ENABLED: OnceLock<bool> = OnceLock::new();

/// Whether this process exports traces.
pub fn enabled() -> bool {
    ENABLED.get().copied().unwrap_or(false)
}

/// What the standard variables (read through `env`) ask for: `Some(reason)` when tracing
/// is off.
fn off_reason(env: impl Fn(&str) -> Option<String>) -> Option<&'static str> {
    let set = |name: &str| env(name).is_some_and(|v| !v.trim().is_empty());
    let is = |name: &str, value: &str| env(name).is_some_and(|v| v.trim().eq_ignore_ascii_case(value));
    if is("OTEL_SDK_DISABLED", "true") {
        return Some("OTEL_SDK_DISABLED is true");
    }
    if is("OTEL_TRACES_EXPORTER", "none") {
        return Some("OTEL_TRACES_EXPORTER is none");
    }
    if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Some("no OTEL_EXPORTER_OTLP_ENDPOINT");
    }
    None
}

/// The tracer provider for `service` when the environment asks for traces; `Err` says why
/// the exporter could not be built (a malformed endpoint, for one).
pub(crate) fn provider(service: &str) -> Result<Option<SdkTracerProvider>, String> {
    if off_reason(|name| std::env::var(name).ok()).is_some() {
        let _ = ENABLED.set(false);
        return Ok(None);
    }
    let runtime = export_runtime()?;
    // The gRPC client is built on the runtime that will drive it.
    let exporter = {
        let _entered = runtime.enter();
        opentelemetry_otlp::SpanExporter::builder().build().map_err(|e| format!("the OTLP exporter: {e}"))?
    };
    let name = std::env::var("OTEL_SERVICE_NAME").ok().filter(|n| !n.trim().is_empty()).unwrap_or(service.to_string());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(name)
        .with_attribute(opentelemetry::KeyValue::new("service.version", crate::build::FULL_VERSION))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(OnRuntime { inner: Arc::new(exporter), runtime: runtime.handle().clone() })
        .with_resource(resource)
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let _ = ENABLED.set(true);
    Ok(Some(provider))
}

/// The tracing layer that turns spans into OpenTelemetry spans.
pub(crate) fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("vox")).with_location(false).with_threads(false)
}

/// The exporter's own runtime: one worker thread, started once, never dropped (a runtime
/// cannot be dropped from async code, and the process ends with it anyway).
fn export_runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("vox-otlp-export")
        .enable_all()
        .build()
        .map_err(|e| format!("start the OTLP export thread: {e}"))?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// An exporter whose every export runs on `runtime` (the OTLP clients need Tokio's reactor,
/// which OpenTelemetry's batch thread does not have).
#[derive(Debug)]
struct OnRuntime<E> {
    inner: Arc<E>,
    runtime: tokio::runtime::Handle,
}

impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        let inner = Arc::clone(&self.inner);
        let task = self.runtime.spawn(async move { inner.export(batch).await });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(format!("the export task ended: {e}")))
            })
        }
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        // Called while the provider is built, before the exporter is shared.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

/// The trace-context headers (`traceparent`, and `tracestate` when there is one) that
/// continue the current span's trace in another process; empty when tracing is off or
/// there is no span.
pub fn context_headers() -> Vec<(String, String)> {
    if !enabled() {
        return Vec::new();
    }
    let context = tracing::Span::current().context();
    let mut headers = Headers::default();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut headers));
    headers.0.into_iter().collect()
}

/// Adds [`context_headers`] to a gRPC request's metadata: what every Vox client calls as
/// it sends a request (its interceptor, or the request builder), so the server's span
/// continues the caller's trace.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    for (key, value) in context_headers() {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            metadata.insert(key, value);
        }
    }
}

/// The current span's `traceparent`, to hand to a process that has no headers to carry
/// it (a carrier's media stream gets it as a stream parameter).
pub fn traceparent() -> Option<String> {
    context_headers().into_iter().find(|(k, _)| k == "traceparent").map(|(_, v)| v)
}

/// Makes the current span a child of the trace `traceparent` names (W3C format); a
/// malformed or missing value leaves the span as it was.
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(value) = traceparent.filter(|_| enabled()) else { return };
    let mut carrier = Headers::default();
    carrier.0.insert("traceparent".to_string(), value.to_string());
    adopt(span, &carrier);
}

/// Sets `key` on the current span (for example `call_id`), so a trace can be found by it.
pub fn attribute(key: &'static str, value: impl Into<String>) {
    if enabled() {
        tracing::Span::current().set_attribute(key, value.into());
    }
}

/// Parents `span` on the context `carrier` holds, when it holds a valid one, and records
/// the trace id on it for the logs.
fn adopt(span: &tracing::Span, carrier: &dyn Extractor) {
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(carrier));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    let trace_id = span.context().span().span_context().trace_id();
    span.record("trace_id", tracing::field::display(trace_id));
}

/// A text-map carrier over a plain map.
#[derive(Debug, Default)]
struct Headers(HashMap<String, String>);

impl Injector for Headers {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
}

impl Extractor for Headers {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// A text-map carrier over HTTP headers (gRPC metadata is HTTP/2 headers).
struct HeaderCarrier<'a>(&'a http::HeaderMap);

impl Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The server span of one request, named after its RPC
/// (`vox.backend.v1.CallService/TransitionCall`) or route (`POST /twilio/voice`): it
/// continues the caller's trace and carries `trace_id` into the logs written under it.
pub(crate) fn server_span(grpc: bool, method: &http::Method, name: &str, headers: &http::HeaderMap) -> tracing::Span {
    if !enabled() {
        // Log lines only: name the request, nothing for a trace backend.
        return tracing::info_span!("request", endpoint = %name);
    }
    let span = tracing::info_span!(
        "request",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    span.set_attribute("rpc.system", if grpc { "grpc" } else { "http" });
    span.set_attribute("http.request.method", method.to_string());
    adopt(&span, &HeaderCarrier(headers));
    span
}

/// Records the answer on a [`server_span`]: its HTTP status, its gRPC status when the
/// headers carry one (an error answered at once), and whether it failed on this side.
pub(crate) fn answered(span: &tracing::Span, status: http::StatusCode, grpc_status: Option<i32>) {
    if !enabled() {
        return;
    }
    span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
    if let Some(code) = grpc_status {
        span.set_attribute("rpc.grpc.status_code", i64::from(code));
    }
    if status.is_server_error() || grpc_status.is_some_and(crate::requests::is_server_failure) {
        span.record("otel.status_code", "ERROR");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn the_standard_variables_turn_tracing_on_and_off() {
        assert_eq!(off_reason(env(&[])), Some("no OTEL_EXPORTER_OTLP_ENDPOINT"));
        assert_eq!(off_reason(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])), Some("no OTEL_EXPORTER_OTLP_ENDPOINT"));
        assert_eq!(off_reason(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")])), None);
        assert_eq!(off_reason(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")])), None);
        let on = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317");
        assert_eq!(off_reason(env(&[on, ("OTEL_SDK_DISABLED", "TRUE")])), Some("OTEL_SDK_DISABLED is true"));
        assert_eq!(off_reason(env(&[on, ("OTEL_TRACES_EXPORTER", "none")])), Some("OTEL_TRACES_EXPORTER is none"));
        assert_eq!(off_reason(env(&[on, ("OTEL_TRACES_EXPORTER", "otlp")])), None);
    }

    #[test]
    fn a_process_without_tracing_sends_no_context() {
        assert!(context_headers().is_empty());
        assert_eq!(traceparent(), None);
    }
}
