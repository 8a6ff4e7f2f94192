//! One call is one trace: an OTLP receiver in the test (the OpenTelemetry collector's
//! own protocol, both transports: voxbridge exports over HTTP/protobuf, the standard's
//! default, voxgate and the fleet over gRPC) gets the spans of a Twilio call placed
//! through real voxbridge, voxgate and voxcore processes, and they share one trace id
//! and carry the call's id.
#![allow(clippy::unwrap_used, reason = "test: a failed step stops it with its error")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::IntoResponse;
use base64::Engine;
use futures::{SinkExt, StreamExt};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vox_proto::backend::v1 as bpb;
use vox_testkit::{ServerProcess, control};

const TOKEN: &str = "twilio-test-auth-token";

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

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_twilio_call_is_one_trace_across_voxgate_voxbridge_and_the_worker() {
    let (receiver, collector) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let bridge_args: Vec<String> = ["--listen", "127.0.0.1:0", "--heartbeat-interval-ms", "500", "--data-dir"]
        .map(String::from)
        .into_iter()
        .chain([dir.path().join("bridge").display().to_string()])
        .chain(["--recordings-dir".to_string(), dir.path().join("recordings").display().to_string()])
        .collect();
    let bridge_env: Vec<_> = control::admin_env().into_iter().chain(otel_env(&collector, "http/protobuf")).collect();
    let bridge = ServerProcess::start(
        "voxbridge",
        &vox_testkit::workspace_binary("voxbridge", "voxbridge"),
        &bridge_args,
        &bridge_env,
        dir.path(),
    )
    .await
    .unwrap();
    let (channel, admin) = control::admin_session(&bridge.url()).await;
    let region = control::create_region(&channel, &admin, "us-east-1", None).await;
    let fleet = control::register_node(&channel, &admin, &region, bpb::NodeKind::Fleet).await;
    let host_args: Vec<String> = [
        "host",
        "--workers",
        "1",
        "--socket-dir",
        &dir.path().join("sock").display().to_string(),
        "--spool-dir",
        &dir.path().join("spool").display().to_string(),
        "--recordings-dir",
        &dir.path().join("recordings").display().to_string(),
        "--bridge-url",
        &bridge.url(),
    ]
    .map(String::from)
    .to_vec();
    let host_env: Vec<_> =
        [("VOX_NODE_SECRET", fleet.api_secret.clone())].into_iter().chain(otel_env(&collector, "grpc")).collect();
    let _host = ServerProcess::spawn(
        "voxcore-host",
        &vox_testkit::workspace_binary("voxcore", "voxcore"),
        &host_args,
        &host_env,
        dir.path(),
    )
    .unwrap();
    let gateway = control::register_node(&channel, &admin, &region, bpb::NodeKind::Gateway).await;
    let gate_env: Vec<_> = [("VOX_NODE_SECRET", gateway.api_secret.clone()), ("TWILIO_AUTH_TOKEN", TOKEN.to_string())]
        .into_iter()
        .chain(otel_env(&collector, "grpc"))
        .collect();
    let gate = ServerProcess::start(
        "voxgate",
        &vox_testkit::workspace_binary("voxgate", "voxgate"),
        &["--listen", "127.0.0.1:0", "--bridge-url", &bridge.url()].map(String::from),
        &gate_env,
        dir.path(),
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    until("the gateway sees the worker", async || {
        let health: Value = http.get(format!("{}/health/fleet", gate.url())).send().await.ok()?.json().await.ok()?;
        (health["fleet_available"] == 1).then_some(())
    })
    .await;

    // The carrier's voice webhook, signed as Twilio signs it.
    let url = format!("{}/twilio/voice", gate.url());
    let params: Vec<(&str, String)> =
        [("AccountSid", "AC1"), ("CallSid", "CA-traced"), ("From", "+14155550199"), ("To", "+14155550100")]
            .map(|(k, v)| (k, v.to_string()))
            .to_vec();
    let signature = vox_testkit::twilio::signature(TOKEN, &url, &params);
    let reply = http.post(&url).header("x-twilio-signature", signature).form(&params).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    let twiml = reply.text().await.unwrap();
    let (stream_url, custom) = vox_testkit::twilio::twiml_stream(&twiml);
    let call_id = custom["call_id"].as_str().unwrap().to_string();
    let traceparent = custom.get("traceparent").and_then(Value::as_str).unwrap_or_else(|| panic!("{twiml}"));
    let webhook_trace = traceparent.split('-').nth(1).unwrap().to_string();

    // Its media stream, as the TwiML says: start with the parameters, a second of audio,
    // every frame echoed, then stop.
    let mut request = stream_url.as_str().into_client_request().unwrap();
    let signature = vox_testkit::twilio::signature(TOKEN, &stream_url, &[]);
    request.headers_mut().insert("x-twilio-signature", signature.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let send = |v: Value| Message::text(v.to_string());
    ws.send(send(json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}))).await.unwrap();
    ws.send(send(json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "accountSid": "AC1", "callSid": "CA-traced", "tracks": ["inbound"],
        "customParameters": custom,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})))
        .await
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut echoed = 0;
    for i in 0..50u32 {
        let payload = b64.encode([(i % 200) as u8; 160]);
        ws.send(send(json!({"event": "media", "streamSid": "MZ1", "sequenceNumber": (i + 2).to_string(),
            "media": {"track": "inbound", "chunk": (i + 1).to_string(), "timestamp": (i * 20).to_string(), "payload": payload}})))
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        while let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(Duration::from_millis(1), ws.next()).await {
            if serde_json::from_str::<Value>(&t).unwrap()["event"] == "media" {
                echoed += 1;
            }
        }
    }
    assert!(echoed > 0, "the worker echoes the caller");
    ws.send(send(json!({"event": "stop", "streamSid": "MZ1", "sequenceNumber": "60", "stop": {"accountSid": "AC1", "callSid": "CA-traced"}})))
        .await
        .unwrap();
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
    let logs = std::fs::read_to_string(dir.path().join("voxgate.err")).unwrap();
    assert!(logs.contains(&format!("trace_id={webhook_trace}")), "voxgate's log lines name the trace");
}
