//! What every Vox server does with each request it answers, in one tower layer
//! ([`ServerLayer`], installed by `vox_node::server::serve` and the worker's Unix-socket
//! server): a server span in the caller's trace ([`crate::trace`]) and the RED figures
//! (rate, errors, duration) every `/metrics` exports ([`crate::metrics::render`]):
//!
//! - `vox_rpc_requests_total{method, code}` and `vox_rpc_duration_seconds{method}` for
//!   gRPC (`method` is the path, `/vox.backend.v1.CallService/TransitionCall`; `code` the
//!   gRPC status name, `Ok` … `Unauthenticated`);
//! - `vox_http_requests_total{route, method, status}` and
//!   `vox_http_request_duration_seconds{route, method}` for plain HTTP (`route` is the
//!   route's pattern, `/api/v1/calls/{id}`, never the path itself).
//!
//! Durations run to the response's headers: for a stream (a media WebSocket, a gRPC
//! stream) that is how long it took to be accepted, not how long it lasted. A gRPC status
//! sent in the trailers after a successful start counts as `Ok`.
//!
//! Labels stay few whatever clients send: a path that matched no route is `unmatched`, an
//! RPC this process does not serve ([`serve_methods`]) is `unknown`, and an unusual HTTP
//! method is `other`; so a stranger inventing paths cannot add series (each one would
//! cost memory for the life of the process).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{LazyLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// This process's request figures (one set per process, whatever servers it runs).
#[derive(Debug)]
struct Requests {
    rpc_total: Family<Labels, Counter>,
    rpc_seconds: Family<Labels, Histogram>,
    http_total: Family<Labels, Counter>,
    http_seconds: Family<Labels, Histogram>,
}

fn latency() -> Histogram {
    Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
}

static REQUESTS: LazyLock<Requests> = LazyLock::new(|| Requests {
    rpc_total: Family::default(),
    rpc_seconds: Family::new_with_constructor(latency),
    http_total: Family::default(),
    http_seconds: Family::new_with_constructor(latency),
});

/// The gRPC methods this process serves, as request paths (`/package.Service/Method`).
static SERVED: LazyLock<RwLock<HashSet<String>>> = LazyLock::new(RwLock::default);

/// Declares that this process serves `services` (full names, `vox.fleet.v1.WorkerService`)
/// as described in `descriptor_sets` (encoded `FileDescriptorSet`s): their methods are
/// named in the metrics; any other path is `unknown`. A set that does not decode is
/// skipped and logged.
pub fn serve_methods(descriptor_sets: &[&[u8]], services: &[&str]) {
    use prost::Message as _;
    let mut served = SERVED.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    for set in descriptor_sets {
        let files = match prost_types::FileDescriptorSet::decode(*set) {
            Ok(s) => s.file,
            Err(e) => {
                tracing::error!(error = %e, "metrics: a built-in descriptor set does not decode");
                continue;
            }
        };
        for file in files {
            for service in &file.service {
                let name = format!("{}.{}", file.package(), service.name());
                if services.contains(&name.as_str()) {
                    served.extend(service.method.iter().map(|m| format!("/{name}/{}", m.name())));
                }
            }
        }
    }
}

/// `path` when this process serves it, otherwise `unknown`.
fn rpc_label(path: &str) -> String {
    let served = SERVED.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    if served.contains(path) { path.to_string() } else { "unknown".to_string() }
}

/// Adds the request figures to `registry` (which [`crate::metrics::render`] encodes).
pub(crate) fn register(registry: &mut Registry) {
    let r = &*REQUESTS;
    registry.register("vox_rpc_requests", "gRPC calls answered, by method and status code", r.rpc_total.clone());
    registry.register(
        "vox_rpc_duration_seconds",
        "Time from a gRPC call's arrival to its response headers, by method",
        r.rpc_seconds.clone(),
    );
    registry.register("vox_http_requests", "HTTP requests answered, by route, method and status", r.http_total.clone());
    registry.register(
        "vox_http_request_duration_seconds",
        "Time from an HTTP request's arrival to its response headers, by route and method",
        r.http_seconds.clone(),
    );
}

/// Whether gRPC status `code` is this server's failure rather than the caller's: Unknown,
/// DeadlineExceeded, Internal, Unavailable, DataLoss (the codes the error-rate alert counts).
pub fn is_server_failure(code: i32) -> bool {
    matches!(code, 2 | 4 | 13 | 14 | 15)
}

/// The gRPC status name the metrics use for `code` (`Ok`, `DeadlineExceeded`, …; a code
/// gRPC does not define is `Unknown`).
fn code_name(code: i32) -> String {
    format!("{:?}", tonic::Code::from_i32(code))
}

fn method_label(method: &http::Method) -> String {
    let known = [
        http::Method::GET,
        http::Method::POST,
        http::Method::PUT,
        http::Method::PATCH,
        http::Method::DELETE,
        http::Method::HEAD,
        http::Method::OPTIONS,
    ];
    if known.contains(method) { method.to_string() } else { "other".to_string() }
}

/// What the layer knows of a request before it is answered.
#[derive(Debug)]
struct Seen {
    start: Instant,
    grpc: bool,
    path: String,
    route: Option<String>,
    method: http::Method,
}

impl Seen {
    fn of<B>(req: &http::Request<B>) -> Self {
        let grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        Seen {
            start: Instant::now(),
            grpc,
            path: req.uri().path().to_string(),
            route: req.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_string()),
            method: req.method().clone(),
        }
    }

    /// The span's name: the RPC, or the method and route.
    fn name(&self) -> String {
        if self.grpc {
            self.path.trim_start_matches('/').to_string()
        } else {
            format!("{} {}", self.method, self.route.as_deref().unwrap_or(&self.path))
        }
    }

    fn record(&self, status: http::StatusCode, grpc_status: Option<i32>) {
        let seconds = self.start.elapsed().as_secs_f64();
        let r = &*REQUESTS;
        if self.grpc {
            // The status is in the headers when the call failed at once; otherwise the
            // call started well, and its trailers are not waited for.
            let code = grpc_status.unwrap_or(if status.is_success() { 0 } else { 2 });
            let method = rpc_label(&self.path);
            r.rpc_total.get_or_create(&vec![("method", method.clone()), ("code", code_name(code))]).inc();
            r.rpc_seconds.get_or_create(&vec![("method", method)]).observe(seconds);
        } else {
            let route = self.route.clone().unwrap_or_else(|| "unmatched".to_string());
            let method = method_label(&self.method);
            r.http_total
                .get_or_create(&vec![
                    ("route", route.clone()),
                    ("method", method.clone()),
                    ("status", status.as_u16().to_string()),
                ])
                .inc();
            r.http_seconds.get_or_create(&vec![("route", route), ("method", method)]).observe(seconds);
        }
    }
}

/// The tower layer every Vox server runs (see the module docs). Add it with
/// `Router::layer`, so it sees the matched route.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerLayer;

impl<S> tower::Layer<S> for ServerLayer {
    type Service = Served<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Served { inner }
    }
}

/// See [`ServerLayer`].
#[derive(Debug, Clone)]
pub struct Served<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for Served<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Answering<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let seen = Seen::of(&req);
        let span = crate::trace::server_span(seen.grpc, &seen.method, &seen.name(), req.headers());
        let future = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        Answering { future, span, seen }
    }
}

pin_project_lite::pin_project! {
    /// A response on its way, inside its request's span.
    pub struct Answering<F> {
        #[pin]
        future: F,
        span: tracing::Span,
        seen: Seen,
    }
}

impl<F, R, E> Future for Answering<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let output = std::task::ready!(this.future.poll(cx));
        let (status, grpc_status) = match &output {
            Ok(response) => (
                response.status(),
                response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()),
            ),
            // The connection is dropped without an answer: the server's failure.
            Err(_) => (http::StatusCode::INTERNAL_SERVER_ERROR, this.seen.grpc.then_some(13)),
        };
        this.seen.record(status, grpc_status);
        crate::trace::answered(this.span, status, grpc_status);
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests stop on failure")]
    use super::*;
    use tower::ServiceExt;

    fn text() -> String {
        let mut registry = Registry::default();
        register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    fn count(text: &str, series: &str) -> u64 {
        text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0)
    }

    /// A descriptor set of one service, `vox.test.v1.Thing`, with the method `Known`.
    fn thing() -> Vec<u8> {
        use prost::Message as _;
        use prost_types::{FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto, ServiceDescriptorProto};
        let method = MethodDescriptorProto { name: Some("Known".into()), ..Default::default() };
        let service = ServiceDescriptorProto { name: Some("Thing".into()), method: vec![method], ..Default::default() };
        let file =
            FileDescriptorProto { package: Some("vox.test.v1".into()), service: vec![service], ..Default::default() };
        FileDescriptorSet { file: vec![file] }.encode_to_vec()
    }

    #[test]
    fn only_served_methods_are_named() {
        serve_methods(&[&thing(), b"\xff not a descriptor set"], &["vox.test.v1.Thing"]);
        assert_eq!(rpc_label("/vox.test.v1.Thing/Known"), "/vox.test.v1.Thing/Known");
        for path in ["/vox.test.v1.Thing/Nope", "/vox.test.v1.Other/Known", "/x", "", "/vox.test.v1.Thing/Known/"] {
            assert_eq!(rpc_label(path), "unknown", "{path}");
        }
    }

    #[tokio::test]
    async fn routes_and_rpcs_are_counted_with_few_labels() {
        serve_methods(&[&thing()], &["vox.test.v1.Thing"]);
        let app = axum::Router::new()
            .route("/api/v1/calls/{id}", axum::routing::get(|| async { "call" }))
            .route("/boom", axum::routing::get(|| async { http::StatusCode::INTERNAL_SERVER_ERROR }))
            .route(
                "/vox.test.v1.Thing/{*rpc}",
                axum::routing::post(|uri: http::Uri| async move {
                    let code = if uri.path().ends_with("/Known") { "13" } else { "12" };
                    ([("content-type", "application/grpc"), ("grpc-status", code)], "")
                }),
            )
            .layer(ServerLayer);
        let before = text();
        let get = |path: &str| http::Request::get(path).body(axum::body::Body::empty()).unwrap();
        let rpc = |path: &str| {
            http::Request::post(path)
                .header("content-type", "application/grpc")
                .body(axum::body::Body::empty())
                .unwrap()
        };
        for req in [
            get("/api/v1/calls/ca_1"),
            get("/api/v1/calls/ca_2"),
            get("/boom"),
            get("/no/such/page"),
            rpc("/vox.test.v1.Thing/Known"),
        ] {
            app.clone().oneshot(req).await.unwrap();
        }
        for n in 0..3 {
            app.clone().oneshot(rpc(&format!("/vox.test.v1.Thing/Made{n}"))).await.unwrap();
        }
        let after = text();
        let grew = |series: &str| count(&after, series) - count(&before, series);
        assert_eq!(grew(r#"vox_http_requests_total{route="/api/v1/calls/{id}",method="GET",status="200"}"#), 2);
        assert_eq!(grew(r#"vox_http_requests_total{route="/boom",method="GET",status="500"}"#), 1);
        assert_eq!(grew(r#"vox_http_requests_total{route="unmatched",method="GET",status="404"}"#), 1);
        assert_eq!(grew(r#"vox_rpc_requests_total{method="/vox.test.v1.Thing/Known",code="Internal"}"#), 1);
        // Made-up methods share one series, whatever they are answered.
        assert_eq!(grew(r#"vox_rpc_requests_total{method="unknown",code="Unimplemented"}"#), 3);
        assert!(!after.contains("ca_1") && !after.contains("Made0"), "{after}");
        assert!(after.contains(r#"vox_http_request_duration_seconds_count{route="/api/v1/calls/{id}",method="GET"}"#));
    }
}
