//! One call is one trace: an OTLP receiver in the test (the OpenTelemetry collector's
//! own protocol, both transports: voxbridge exports over HTTP/protobuf, the standard's
//! default, voxgate and the fleet over gRPC) gets the spans of a Twilio call placed
//! through real voxbridge, voxgate and voxcore processes, and they share one trace id
//! and carry the call's id.
#![allow(clippy::unwrap_used, reason = "test: a failed step stops it with its error")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::Value;
use vox_proto::backend::v1 as bpb;
use vox_testkit::cluster::{OneHost, until};
use vox_testkit::control;

/// One exported span, flattened: its service, trace id, name and string attributes.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    trace_id: String,
    parent: String,
    name: String,
    attributes: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>);

fn text(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some((kv.key.clone(), s.clone())),
            AnyValue::IntValue(i) => Some((kv.key.clone(), i.to_string())),
            _ => None,
        })
        .collect()
}

impl Receiver {
    fn take(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.0.lock().unwrap();
        for resource_spans in request.resource_spans {
            let resource = text(&resource_spans.resource.map(|r| r.attributes).unwrap_or_default());
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Span {
                        service: service.clone(),
                        trace_id: hex(&span.trace_id),
                        parent: hex(&span.parent_span_id),
                        name: span.name,
                        attributes: text(&span.attributes),
                    });
                }
            }
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.0.lock().unwrap().clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.take(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// A collector on a free port: gRPC `TraceService/Export` and HTTP `POST /v1/traces`.
async fn collector() -> (Receiver, String) {
    let receiver = Receiver::default();
    let http = {
        let receiver = receiver.clone();
        axum::routing::post(move |body: axum::body::Bytes| async move {
            match ExportTraceServiceRequest::decode(body) {
                Ok(request) => {
                    receiver.take(request);
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                        ExportTraceServiceResponse { partial_success: None }.encode_to_vec(),
                    )
                        .into_response()
                }
                Err(_) => axum::http::StatusCode::BAD_REQUEST.into_response(),
            }
        })
    };
    let app = tonic::service::Routes::new(TraceServiceServer::new(receiver.clone()))
        .into_axum_router()
        .route("/v1/traces", http);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, url)
}

/// The standard OpenTelemetry environment pointing at `collector`, over `protocol`,
/// exporting every 100 ms.
fn otel_env(collector: &str, protocol: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.to_string()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
    ]
}

#[tokio::test]
async fn a_twilio_call_is_one_trace_across_voxgate_voxbridge_and_the_worker() {
    let (receiver, collector) = collector().await;
    let c = OneHost::start(|name| match name {
        // voxbridge exports over HTTP/protobuf (the standard's default), the others over gRPC.
        "voxbridge" => otel_env(&collector, "http/protobuf"),
        _ => otel_env(&collector, "grpc"),
    })
    .await;
    let (channel, admin, gateway, fleet) = (c.channel.clone(), c.admin.clone(), &c.gateway, &c.fleet);

    // The carrier's voice webhook, signed as Twilio signs it, then its media stream as
    // the TwiML says: start with the parameters, a second of audio echoed, then stop.
    let call = c.twilio_call("CA-traced", 50).await;
    let call_id = call.call_id.clone();
    let traceparent =
        call.custom.get("traceparent").and_then(Value::as_str).unwrap_or_else(|| panic!("{:?}", call.custom));
    let webhook_trace = traceparent.split('-').nth(1).unwrap().to_string();
    assert!(call.echoed > 0, "the worker echoes the caller");
    let mut calls = bpb::call_service_client::CallServiceClient::new(channel.clone());
    until("the call completed", async || {
        let call = calls.get_call(control::authed(&admin, bpb::GetCallRequest { id: call_id.clone() })).await.ok()?;
        (call.into_inner().state() == bpb::CallState::Completed).then_some(())
    })
    .await;

    // Every process's spans for the call arrive, in the webhook's trace. (The test's own
    // reads of the call above start traces of their own: they are left out.)
    let wanted: BTreeSet<&str> = ["voxgate", "voxbridge", "voxcore"].into();
    let spans = until("spans of the call from voxgate, voxbridge and the worker", async || {
        let of_call: Vec<Span> = receiver
            .spans()
            .into_iter()
            .filter(|s| s.attributes.get("call_id") == Some(&call_id))
            .filter(|s| !(s.name.ends_with("/GetCall") && s.parent.is_empty()))
            .collect();
        let services: BTreeSet<&str> = of_call.iter().map(|s| s.service.as_str()).collect();
        wanted.is_subset(&services).then_some(of_call)
    })
    .await;
    let traces: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(traces, BTreeSet::from([webhook_trace.as_str()]), "one trace for the call: {spans:#?}");
    let names: BTreeSet<(&str, &str)> = spans.iter().map(|s| (s.service.as_str(), s.name.as_str())).collect();
    for expected in [
        ("voxgate", "POST /twilio/voice"),
        ("voxgate", "media stream"),
        ("voxbridge", "vox.backend.v1.CallService/CreateInboundCall"),
        ("voxbridge", "vox.backend.v1.CallService/TransitionCall"),
        ("voxcore", "vox.fleet.v1.WorkerService/Media"),
        ("voxcore", "call session"),
    ] {
        assert!(names.contains(&expected), "no {expected:?} span among {names:#?}");
    }
    // Only the webhook's span starts the trace; every other span has a parent.
    let roots: Vec<&Span> = spans.iter().filter(|s| s.parent.is_empty() || s.parent == "0000000000000000").collect();
    assert_eq!(roots.len(), 1, "{roots:#?}");
    assert_eq!(roots[0].name, "POST /twilio/voice");
    // The nodes that moved the call are named on voxbridge's spans.
    let movers: BTreeSet<&str> = spans
        .iter()
        .filter(|s| s.service == "voxbridge")
        .filter_map(|s| s.attributes.get("node_id").map(String::as_str))
        .collect();
    assert!(movers.contains(gateway.node.as_ref().unwrap().id.as_str()), "{movers:?}");
    assert!(movers.contains(fleet.node.as_ref().unwrap().id.as_str()), "{movers:?}");

    // The logs written while serving carry the trace id.
    let logs = std::fs::read_to_string(c.dir.path().join("voxgate.err")).unwrap();
    assert!(logs.contains(&format!("trace_id={webhook_trace}")), "voxgate's log lines name the trace");
}
