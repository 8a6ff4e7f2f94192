#![allow(clippy::unwrap_used, reason = "test harness: a failed step stops the test with its error")]

//! A cluster on one host for end-to-end tests: a voxbridge, a voxcore host with one
//! worker, and a voxgate taking Twilio calls, each a real process; and a Twilio call
//! placed through it as the carrier would (signed webhook, Media Streams WebSocket).

use std::time::Duration;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tonic::transport::Channel;
use vox_proto::backend::v1 as pb;

use crate::{ServerProcess, control, twilio, workspace_binary};

/// The Twilio auth token voxgate is started with.
pub const TWILIO_TOKEN: &str = "twilio-test-auth-token";

/// Polls `f` every 100 ms for up to 30 s; panics naming `what` when it never answers.
pub async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

pub struct OneHost {
    pub dir: tempfile::TempDir,
    pub bridge: ServerProcess,
    pub host: ServerProcess,
    pub gate: ServerProcess,
    pub channel: Channel,
    pub admin: String,
    pub region: String,
    pub fleet: pb::RegisterNodeResponse,
    pub gateway: pb::RegisterNodeResponse,
}

impl OneHost {
    /// Starts the three processes and waits until voxgate sees the worker. `env(name)`
    /// adds environment to the process `name` ("voxbridge", "voxcore" or "voxgate").
    pub async fn start(env: impl Fn(&str) -> Vec<(&'static str, String)>) -> OneHost {
        let dir = tempfile::tempdir().unwrap();
        let path = |p: &str| dir.path().join(p).display().to_string();
        let args: Vec<String> = ["--listen", "127.0.0.1:0", "--heartbeat-interval-ms", "500", "--data-dir"]
            .map(String::from)
            .into_iter()
            .chain([path("bridge"), "--recordings-dir".into(), path("recordings")])
            .collect();
        let bridge_env: Vec<_> = control::admin_env().into_iter().chain(env("voxbridge")).collect();
        let bridge = ServerProcess::start(
            "voxbridge",
            &workspace_binary("voxbridge", "voxbridge"),
            &args,
            &bridge_env,
            dir.path(),
        )
        .await
        .unwrap();
        let (channel, admin) = control::admin_session(&bridge.url()).await;
        let region = control::create_region(&channel, &admin, "us-east-1", None).await;
        let fleet = control::register_node(&channel, &admin, &region, pb::NodeKind::Fleet).await;
        let host_args: Vec<String> = [
            "host".into(),
            "--workers".into(),
            "1".into(),
            "--socket-dir".into(),
            path("sock"),
            "--spool-dir".into(),
            path("spool"),
            "--recordings-dir".into(),
            path("recordings"),
            "--bridge-url".into(),
            bridge.url(),
        ]
        .to_vec();
        let host_env: Vec<_> =
            [("VOX_NODE_SECRET", fleet.api_secret.clone())].into_iter().chain(env("voxcore")).collect();
        let host = ServerProcess::spawn(
            "voxcore-host",
            &workspace_binary("voxcore", "voxcore"),
            &host_args,
            &host_env,
            dir.path(),
        )
        .unwrap();
        let gateway = control::register_node(&channel, &admin, &region, pb::NodeKind::Gateway).await;
        let gate_env: Vec<_> =
            [("VOX_NODE_SECRET", gateway.api_secret.clone()), ("TWILIO_AUTH_TOKEN", TWILIO_TOKEN.to_string())]
                .into_iter()
                .chain(env("voxgate"))
                .collect();
        let gate = ServerProcess::start(
            "voxgate",
            &workspace_binary("voxgate", "voxgate"),
            &["--listen", "127.0.0.1:0", "--bridge-url", &bridge.url()].map(String::from),
            &gate_env,
            dir.path(),
        )
        .await
        .unwrap();
        let http = reqwest::Client::new();
        until("the gateway sees the worker", async || {
            let health: Value =
                http.get(format!("{}/health/fleet", gate.url())).send().await.ok()?.json().await.ok()?;
            (health["fleet_available"] == 1).then_some(())
        })
        .await;
        OneHost { dir, bridge, host, gate, channel, admin, region, fleet, gateway }
    }

    /// An inbound Twilio call through voxgate: the signed voice webhook, then its media
    /// stream with `frames` 20 ms frames in real time, `stop`, and the stream read until
    /// voxgate closes it.
    pub async fn twilio_call(&self, sid: &str, frames: u32) -> TwilioCall {
        let http = reqwest::Client::new();
        let url = format!("{}/twilio/voice", self.gate.url());
        let params: Vec<(&str, String)> =
            [("AccountSid", "AC1"), ("CallSid", sid), ("From", "+14155550199"), ("To", "+14155550100")]
                .map(|(k, v)| (k, v.to_string()))
                .to_vec();
        let signature = twilio::signature(TWILIO_TOKEN, &url, &params);
        let reply = http.post(&url).header("x-twilio-signature", signature).form(&params).send().await.unwrap();
        assert_eq!(reply.status(), 200);
        let twiml = reply.text().await.unwrap();
        let (stream_url, custom) = twilio::twiml_stream(&twiml);
        let call_id = custom["call_id"].as_str().unwrap().to_string();
        let mut request = stream_url.as_str().into_client_request().unwrap();
        let signature = twilio::signature(TWILIO_TOKEN, &stream_url, &[]);
        request.headers_mut().insert("x-twilio-signature", signature.parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let send = |v: Value| Message::text(v.to_string());
        ws.send(send(json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}))).await.unwrap();
        ws.send(send(json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
            "streamSid": "MZ1", "accountSid": "AC1", "callSid": sid, "tracks": ["inbound"],
            "customParameters": custom,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})))
            .await
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut echoed = 0;
        for i in 0..frames {
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
        ws.send(send(json!({"event": "stop", "streamSid": "MZ1", "sequenceNumber": (frames + 2).to_string(),
            "stop": {"accountSid": "AC1", "callSid": sid}})))
            .await
            .unwrap();
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            match m {
                Message::Close(_) => break,
                Message::Text(t) if serde_json::from_str::<Value>(&t).unwrap()["event"] == "media" => echoed += 1,
                _ => {}
            }
        }
        TwilioCall { call_id, custom, echoed }
    }
}

/// What a placed call left the test to check.
pub struct TwilioCall {
    pub call_id: String,
    /// The TwiML's stream parameters (`call_id`, `traceparent`, …).
    pub custom: Map<String, Value>,
    /// Media messages voxgate sent back.
    pub echoed: u32,
}
