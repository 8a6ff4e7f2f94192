//! What voxsim's tests share: voxsim in-process on 127.0.0.1:0, and a small axum server
//! standing in for voxgate (voice webhook, status callbacks, Twilio media WebSocket)
//! that checks every X-Twilio-Signature with its own implementation and records what
//! arrived.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;

pub const TOKEN: &str = "test-auth-token";
pub const ACCOUNT: &str = "ACvoxsim00000000000000000000000000";

/// Twilio's signature, written again here so the tests do not check voxsim against itself.
pub fn expected_signature(url: &str, params: &[(String, String)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in &sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// voxsim running in this process until dropped.
pub struct Sim {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Sim {
    pub async fn start(configure: impl FnOnce(&mut voxsim::config::Args)) -> Sim {
        let mut args = voxsim::config::Args::for_tests(TOKEN);
        configure(&mut args);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(voxsim::run(args, listener, async {
            let _ = rx.await;
        }));
        Sim { url, stop: Some(tx), task: Some(task) }
    }

    /// Stops it as SIGTERM would, and waits for run() to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.take().unwrap().await.unwrap()
    }

    pub fn calls_url(&self) -> String {
        format!("{}/2010-04-01/Accounts/{ACCOUNT}/Calls.json", self.url)
    }

    pub fn call_url(&self, sid: &str) -> String {
        format!("{}/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json", self.url)
    }

    /// POST Calls.json with Basic auth.
    pub async fn create(&self, form: &[(&str, String)]) -> (StatusCode, Value) {
        let resp = reqwest::Client::new()
            .post(self.calls_url())
            .basic_auth(ACCOUNT, Some(TOKEN))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (StatusCode::from_u16(status.as_u16()).unwrap(), resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let resp = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .basic_auth(ACCOUNT, Some(TOKEN))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    pub async fn calls(&self) -> Vec<Value> {
        self.get_json("/sim/calls").await.as_array().unwrap().clone()
    }

    /// Waits until no call is live (up to `within`).
    pub async fn wait_all_ended(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let stats = self.get_json("/sim/stats").await;
            if stats["live"] == 0 {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "calls still live: {stats}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// One status callback as it arrived.
#[derive(Debug, Clone)]
pub struct Callback {
    pub params: HashMap<String, String>,
    pub query_call_id: Option<String>,
}

impl Callback {
    pub fn get(&self, k: &str) -> &str {
        self.params.get(k).map_or("", String::as_str)
    }
}

/// One media stream as the application saw it.
#[derive(Debug, Clone, Default)]
pub struct StreamLog {
    /// Event names in order, a run of `media` counted once.
    pub order: Vec<String>,
    pub start: Option<Value>,
    pub stop: Option<Value>,
    pub media: u64,
    /// sequenceNumber, chunk and timestamp kept increasing, payloads were 160 bytes.
    pub media_well_formed: bool,
    pub call_sid: String,
    pub ended: bool,
}

#[derive(Debug, Default)]
pub struct Recorded {
    pub callbacks: Vec<Callback>,
    /// Callbacks refused once with a 500 (`fail_first=1` in the status URL).
    pub refused: std::collections::HashSet<(String, String)>,
    pub webhooks: Vec<HashMap<String, String>>,
    pub streams: Vec<StreamLog>,
    pub bad_signatures: Vec<String>,
}

/// The stand-in for voxgate.
#[derive(Clone)]
pub struct App {
    pub url: String,
    pub rec: Arc<Mutex<Recorded>>,
}

impl App {
    pub async fn start() -> App {
        let rec = Arc::new(Mutex::new(Recorded::default()));
        let router = axum::Router::new()
            .route("/voice", post(voice))
            .route("/status", post(status))
            .route("/media", get(media))
            .with_state(Arc::clone(&rec));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        App { url, rec }
    }

    /// The voice webhook URL: `mode` is connect, hangup, say_hangup, reject, error.
    pub fn voice(&self, mode: &str, call_id: &str) -> String {
        format!("{}/voice?mode={mode}&call_id={call_id}", self.url)
    }

    pub fn status(&self, call_id: &str) -> String {
        format!("{}/status?call_id={call_id}", self.url)
    }

    pub fn callbacks_for(&self, sid: &str) -> Vec<Callback> {
        self.rec.lock().unwrap().callbacks.iter().filter(|c| c.get("CallSid") == sid).cloned().collect()
    }

    pub fn streams_for(&self, sid: &str) -> Vec<StreamLog> {
        self.rec.lock().unwrap().streams.iter().filter(|s| s.call_sid == sid).cloned().collect()
    }

    /// Waits until `n` final callbacks arrived (up to `within`).
    pub async fn wait_final_callbacks(&self, n: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let finals = self
                .rec
                .lock()
                .unwrap()
                .callbacks
                .iter()
                .filter(|c| !["initiated", "ringing", "in-progress"].contains(&c.get("CallStatus")))
                .count();
            if finals >= n {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{finals} of {n} final callbacks arrived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn bad_signatures(&self) -> Vec<String> {
        self.rec.lock().unwrap().bad_signatures.clone()
    }
}

fn check_form(rec: &Mutex<Recorded>, headers: &HeaderMap, uri: &axum::http::Uri, body: &[u8]) -> Vec<(String, String)> {
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap();
    let host = headers.get(header::HOST).unwrap().to_str().unwrap();
    let url = format!("http://{host}{uri}");
    let given = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if given != expected_signature(&url, &params) {
        rec.lock().unwrap().bad_signatures.push(url);
    }
    params
}

async fn voice(
    State(rec): State<Arc<Mutex<Recorded>>>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let params = check_form(&rec, &headers, &uri, &body);
    rec.lock().unwrap().webhooks.push(params.into_iter().collect());
    let host = headers.get(header::HOST).unwrap().to_str().unwrap();
    let call_id = q.get("call_id").cloned().unwrap_or_default();
    let close_after = q.get("close_after_ms").cloned().unwrap_or_default();
    let twiml = match q.get("mode").map(String::as_str).unwrap_or("connect") {
        "connect" => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Connect><Stream url=\"ws://{host}/media\"><Parameter name=\"call_id\" value=\"{call_id}\"/><Parameter name=\"close_after_ms\" value=\"{close_after}\"/></Stream></Connect></Response>"
        ),
        "hangup" => "<Response><Hangup/></Response>".to_string(),
        "say_hangup" => "<Response><Say>Sorry, nobody is free.</Say><Hangup/></Response>".to_string(),
        "reject" => "<Response><Reject/></Response>".to_string(),
        _ => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
    };
    ([(header::CONTENT_TYPE, "text/xml")], twiml).into_response()
}

async fn status(
    State(rec): State<Arc<Mutex<Recorded>>>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let params: HashMap<String, String> = check_form(&rec, &headers, &uri, &body).into_iter().collect();
    let mut r = rec.lock().unwrap();
    let key = (params["CallSid"].clone(), params["SequenceNumber"].clone());
    if q.contains_key("fail_first") && r.refused.insert(key) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.callbacks.push(Callback { params, query_call_id: q.get("call_id").cloned() });
    StatusCode::NO_CONTENT
}

async fn media(
    State(rec): State<Arc<Mutex<Recorded>>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let host = headers.get(header::HOST).unwrap().to_str().unwrap();
    let url = format!("ws://{host}{uri}");
    let given = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if given != expected_signature(&url, &[]) {
        rec.lock().unwrap().bad_signatures.push(url);
        return StatusCode::FORBIDDEN.into_response();
    }
    ws.on_upgrade(move |socket| stream(rec, socket))
}

async fn stream(rec: Arc<Mutex<Recorded>>, mut socket: WebSocket) {
    let index = {
        let mut r = rec.lock().unwrap();
        r.streams.push(StreamLog { media_well_formed: true, ..StreamLog::default() });
        r.streams.len() - 1
    };
    let mut last = (0u64, 0u64, 0i64);
    let mut close_at: Option<tokio::time::Instant> = None;
    loop {
        let sleep = async {
            match close_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let msg = tokio::select! {
            m = socket.recv() => m,
            () = sleep => {
                let _ = socket.send(Message::Close(None)).await;
                // Read until voxsim answers the close.
                while let Some(Ok(_)) = socket.recv().await {}
                break;
            }
        };
        let Some(Ok(msg)) = msg else { break };
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        let event = v["event"].as_str().unwrap_or("?").to_string();
        let reply = {
            let mut r = rec.lock().unwrap();
            let log = &mut r.streams[index];
            if event != "media" || log.order.last().map(String::as_str) != Some("media") {
                log.order.push(event.clone());
            }
            match event.as_str() {
                "start" => {
                    log.call_sid = v["start"]["callSid"].as_str().unwrap_or("").to_string();
                    log.start = Some(v.clone());
                    let close = v["start"]["customParameters"]["close_after_ms"].as_str().and_then(|s| s.parse().ok());
                    if let Some(ms) = close {
                        close_at = Some(tokio::time::Instant::now() + Duration::from_millis(ms));
                    }
                    // Talk back a little, as an agent would; voxsim ignores it.
                    let sid = v["streamSid"].clone();
                    let payload = base64::engine::general_purpose::STANDARD.encode([0xFFu8; 160]);
                    vec![
                        json!({"event": "media", "streamSid": sid, "media": {"payload": payload}}),
                        json!({"event": "mark", "streamSid": sid, "mark": {"name": "greeting"}}),
                    ]
                }
                "media" => {
                    log.media += 1;
                    let seq: u64 = v["sequenceNumber"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
                    let chunk: u64 = v["media"]["chunk"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
                    let ts: i64 = v["media"]["timestamp"].as_str().and_then(|s| s.parse().ok()).unwrap_or(-1);
                    let payload = base64::engine::general_purpose::STANDARD
                        .decode(v["media"]["payload"].as_str().unwrap_or(""))
                        .unwrap_or_default();
                    let ok = seq > last.0 && chunk == last.1 + 1 && (chunk == 1 || ts > last.2) && payload.len() == 160;
                    if !ok {
                        log.media_well_formed = false;
                    }
                    last = (seq, chunk, ts);
                    vec![]
                }
                "stop" => {
                    log.stop = Some(v.clone());
                    vec![]
                }
                _ => vec![],
            }
        };
        for o in reply {
            let _ = socket.send(Message::text(o.to_string())).await;
        }
    }
    rec.lock().unwrap().streams[index].ended = true;
}
