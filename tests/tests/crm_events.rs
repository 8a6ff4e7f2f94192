//! A CRM on the WSS event stream, with an API key, against real voxbridge, voxgate and
//! voxcore processes: it sees a Twilio call's events in order within a second of each
//! move, resumes after a disconnect with every event exactly once, commands over the same
//! socket within its key's role and campaign, and loses its socket when the key is revoked.
#![allow(clippy::unwrap_used, reason = "test: a failed step stops it with its error")]

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vox_proto::backend::v1 as bpb;
use vox_testkit::cluster::{OneHost, until};
use vox_testkit::control;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The one-host cluster, with what a CRM test does on it.
struct Cluster(OneHost);

async fn cluster() -> Cluster {
    Cluster(OneHost::start(|_| Vec::new()).await)
}

impl std::ops::Deref for Cluster {
    type Target = OneHost;
    fn deref(&self) -> &OneHost {
        &self.0
    }
}

impl Cluster {
    async fn key(&self, name: &str, role: bpb::Role, campaign_id: &str) -> (String, String) {
        let mut keys = bpb::api_key_service_client::ApiKeyServiceClient::new(self.channel.clone());
        let req = bpb::CreateApiKeyRequest { name: name.into(), role: role as i32, campaign_id: campaign_id.into() };
        let r = keys.create_api_key(control::authed(&self.admin, req)).await.unwrap().into_inner();
        (r.key.unwrap().id, r.secret)
    }

    async fn campaign(&self, name: &str) -> String {
        let spec = bpb::CampaignSpec {
            name: name.into(),
            region_id: self.region.clone(),
            caller_id: "+14155550100".into(),
            window: Some(bpb::CallingWindow {
                time_zone: "UTC".into(),
                start: "00:00".into(),
                end: "24:00".into(),
                days: vec![],
            }),
            ..Default::default()
        };
        let mut campaigns = bpb::campaign_service_client::CampaignServiceClient::new(self.channel.clone());
        let req = bpb::CreateCampaignRequest { spec: Some(spec) };
        campaigns.create_campaign(control::authed(&self.admin, req)).await.unwrap().into_inner().id
    }

    fn stream_url(&self, query: &str) -> String {
        format!("{}/api/v1/events/stream?{query}", self.gate.url().replacen("http://", "ws://", 1))
    }

    async fn connect(&self, secret: &str, query: &str) -> Result<Socket, u16> {
        let mut request = self.stream_url(query).into_client_request().unwrap();
        request.headers_mut().insert("authorization", format!("Bearer {secret}").parse().unwrap());
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("connect: {e}"),
        }
    }

    /// Every event after `after` through the REST pages, as the truth to compare with.
    async fn all_events(&self, secret: &str, query: &str) -> Vec<Value> {
        let http = reqwest::Client::new();
        let mut after = 0u64;
        let mut out = Vec::new();
        loop {
            let url = format!("{}/api/v1/events?after={after}&page_size=2&{query}", self.gate.url());
            let page: Value = http.get(url).bearer_auth(secret).send().await.unwrap().json().await.unwrap();
            let events = page["events"].as_array().unwrap().clone();
            let next = page["next_after"].as_u64().unwrap();
            if next == after {
                return out;
            }
            after = next;
            out.extend(events);
        }
    }
}

/// The next JSON text message, with when it arrived; `None` once the socket is closed.
async fn next(ws: &mut Socket) -> Option<(Value, Instant)> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("a message within 30 s")? {
            Ok(Message::Text(t)) => return Some((serde_json::from_str(&t).unwrap(), Instant::now())),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Events from `ws` until those received satisfy `done`.
async fn events_until(ws: &mut Socket, done: impl Fn(&[(Value, Instant)]) -> bool) -> Vec<(Value, Instant)> {
    let mut out = Vec::new();
    while let Some((v, at)) = next(ws).await {
        out.push((v, at));
        if done(&out) {
            return out;
        }
    }
    panic!("the socket closed before the expected event; got {out:#?}");
}

fn has(got: &[(Value, Instant)], kind: &str) -> bool {
    got.iter().any(|(e, _)| e["type"] == kind)
}

async fn command(ws: &mut Socket, cmd: Value) -> Value {
    ws.send(Message::text(cmd.to_string())).await.unwrap();
    let id = cmd["id"].clone();
    loop {
        let (v, _) = next(ws).await.expect("an answer");
        if v["id"] == id && matches!(v["type"].as_str(), Some("result" | "error")) {
            return v;
        }
    }
}

#[tokio::test]
async fn a_crm_follows_calls_and_commands_over_the_event_stream() {
    let c = cluster().await;
    let (_, operator) = c.key("crm sync", bpb::Role::Operator, "").await;

    // A Twilio call's events reach the socket in order, each within a second of its move.
    // (Read as they come, beside the call, so each arrival time is the socket's.)
    let mut ws = c.connect(&operator, "types=call.*").await.unwrap();
    let reader = tokio::spawn(async move {
        // The call's end and its recording are reported by different processes, in either order.
        let got = events_until(&mut ws, |got| has(got, "call.ended") && has(got, "call.recording_ready")).await;
        (ws, got)
    });
    let call_id = c.twilio_call("CA-crm-1", 50).await.call_id;
    let (ws, got) = reader.await.unwrap();
    let of_call: Vec<&(Value, Instant)> = got.iter().filter(|(e, _)| e["call"]["id"] == call_id).collect();
    let kinds: Vec<&str> = of_call.iter().map(|(e, _)| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 4, "{got:#?}");
    assert_eq!(kinds[..2], ["call.created", "call.in_progress"], "{got:#?}");
    assert!(kinds[2..].contains(&"call.ended") && kinds[2..].contains(&"call.recording_ready"), "{got:#?}");
    let ids: Vec<u64> = of_call.iter().map(|(e, _)| e["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let of_type = |t: &str| &of_call.iter().find(|(e, _)| e["type"] == t).unwrap().0;
    let ended = of_type("call.ended");
    assert_eq!(ended["disposition"], "completed");
    assert!(ended["duration_seconds"].as_f64().unwrap() > 0.5, "{ended}");
    assert_eq!(of_type("call.recording_ready")["recording_url"], format!("/api/v1/calls/{call_id}/recording"));
    for (e, received) in &of_call {
        let at = chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap();
        let lag = chrono::Utc::now() - at.to_utc() - chrono::Duration::from_std(received.elapsed()).unwrap();
        assert!(lag < chrono::Duration::seconds(1), "{} arrived {lag} after the move", e["type"]);
    }
    drop(ws);

    // Recording post-processing (the `recordings` work queue): voxbridge reads the stored
    // recording back, finds it whole and reports each side's talk time.
    let analyzed = until("the recording read back and analyzed", async || {
        let events = c.all_events(&operator, "types=call.recording_analyzed").await;
        events.into_iter().find(|e| e["recording_analysis"]["call_id"] == call_id)
    })
    .await;
    let a = &analyzed["recording_analysis"];
    let (duration, caller) = (a["duration_seconds"].as_f64().unwrap(), a["caller_speech_seconds"].as_f64().unwrap());
    assert!(duration > 0.5 && caller > 0.5 && caller <= duration, "50 loud frames from the caller: {analyzed}");
    assert_eq!(analyzed["recording_url"], format!("/api/v1/calls/{call_id}/recording"));
    let last_seen = analyzed["id"].as_u64().unwrap();
    assert!(last_seen > ids[ids.len() - 1]);

    // Disconnected in the middle of a campaign: moves and a second call go on meanwhile;
    // reconnecting with the last id gives every later event once, in order.
    let campaign = c.campaign("renewals").await;
    let mut ops = c.connect(&operator, "").await.unwrap();
    let started = command(&mut ops, json!({"id": "s1", "command": "resume_campaign", "campaign_id": campaign})).await;
    assert_eq!(started["result"]["status"], "running", "{started}");
    let added = command(
        &mut ops,
        json!({"id": 7, "command": "add_numbers", "campaign_id": campaign, "numbers": ["+14155550123", "nope"]}),
    )
    .await;
    assert_eq!(added["type"], "result", "{added}");
    assert_eq!(added["result"]["accepted"], 1);
    assert_eq!(added["result"]["rejected"][0]["row"], 2, "{added}");
    let paused = command(&mut ops, json!({"id": "p1", "command": "pause_campaign", "campaign_id": campaign})).await;
    assert_eq!(paused["result"]["status"], "paused", "{paused}");
    drop(ops);
    let second = c.twilio_call("CA-crm-2", 50).await.call_id;
    // The truth: every event after the last one seen, once the second call's end and
    // recording are both in.
    let of_second = |e: &Value, t: &str| e["type"] == t && e["call"]["id"] == second;
    let truth: Vec<Value> = until("the second call's end and recording", async || {
        let all = c.all_events(&operator, "").await;
        let done =
            all.iter().any(|e| of_second(e, "call.ended")) && all.iter().any(|e| of_second(e, "call.recording_ready"));
        done.then(|| all.into_iter().filter(|e| e["id"].as_u64().unwrap() > last_seen).collect())
    })
    .await;
    let ids = |v: &[Value]| v.iter().map(|e| e["id"].as_u64().unwrap()).collect::<Vec<_>>();
    let last_truth = *ids(&truth).last().unwrap();
    let mut again = c.connect(&operator, &format!("after={last_seen}")).await.unwrap();
    let resumed =
        events_until(&mut again, |got| got.last().is_some_and(|(e, _)| e["id"].as_u64() >= Some(last_truth))).await;
    let resumed: Vec<Value> = resumed.into_iter().map(|(e, _)| e).collect();
    assert_eq!(ids(&resumed), ids(&truth), "every event after the last one seen, once, in order");
    let kinds: Vec<&str> = resumed.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(&kinds[..2], ["campaign.state_changed", "campaign.state_changed"], "{kinds:?}");
    assert!(kinds.contains(&"call.created") && kinds.contains(&"call.recording_ready"), "{kinds:?}");

    // A key scoped to the campaign sees only its events and commands only it; a viewer
    // cannot cancel calls.
    let other = c.campaign("other").await;
    let (_, scoped) = c.key("one campaign", bpb::Role::Operator, &campaign).await;
    assert_eq!(c.connect(&scoped, &format!("campaign_id={other}")).await.unwrap_err(), 404);
    let mut mine = c.connect(&scoped, "").await.unwrap();
    let refused = command(&mut mine, json!({"id": "x", "command": "resume_campaign", "campaign_id": other})).await;
    assert_eq!((refused["type"].as_str(), refused["error"]["code"].as_str()), (Some("error"), Some("not_found")));
    let cancel = command(&mut mine, json!({"id": "c", "command": "cancel_call", "call_id": second})).await;
    assert_eq!(cancel["error"]["code"], "not_found", "a call outside the campaign: {cancel}");
    let resumed = command(&mut mine, json!({"id": "r", "command": "resume_campaign", "campaign_id": campaign})).await;
    assert_eq!(resumed["result"]["status"], "running", "{resumed}");
    let seen = c.all_events(&scoped, "").await;
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|e| e["campaign_id"] == campaign), "a scoped key sees its campaign only: {seen:#?}");
    let (_, viewer) = c.key("dashboard", bpb::Role::Viewer, "").await;
    let mut view = c.connect(&viewer, "").await.unwrap();
    let cancel = command(&mut view, json!({"id": "v", "command": "cancel_call", "call_id": second})).await;
    assert_eq!(cancel["error"]["code"], "permission_denied", "{cancel}");
    let junk = command(&mut view, json!({"id": "j", "command": "dial_everyone"})).await;
    assert!(junk["error"]["message"].as_str().unwrap().contains("unknown variant"), "{junk}");

    // A revoked key loses its open socket within a second or two, and cannot reconnect.
    let (revoked_id, revoked) = c.key("leaving", bpb::Role::Viewer, "").await;
    let mut open = c.connect(&revoked, "").await.unwrap();
    let mut keys = bpb::api_key_service_client::ApiKeyServiceClient::new(c.channel.clone());
    keys.revoke_api_key(control::authed(&c.admin, bpb::RevokeApiKeyRequest { id: revoked_id })).await.unwrap();
    let revoked_at = Instant::now();
    let mut last_error = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), open.next()).await.expect("closed within 5 s") {
            Some(Ok(Message::Text(t))) => last_error = Some(serde_json::from_str::<Value>(&t).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                assert_eq!(u16::from(frame.unwrap().code), 1008);
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("{e}"),
            None => panic!("closed without a close frame"),
        }
    }
    assert!(revoked_at.elapsed() < Duration::from_secs(3), "took {:?}", revoked_at.elapsed());
    assert_eq!(last_error.unwrap()["error"]["code"], "unauthenticated");
    assert_eq!(c.connect(&revoked, "").await.unwrap_err(), 401);
}
