//! Calls through voxgate as a carrier makes them.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use vox_proto::backend::v1 as bpb;

#[tokio::test]
async fn a_twilio_stream_reaches_an_echo_worker_and_is_recorded() {
    let c = cluster(2).await;
    let call_id = c.inbound_call().await;
    let mut ws = c.connect(TOKEN).await.unwrap();
    start(&mut ws, &call_id).await;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    for i in 0..50 {
        media(&mut ws, i).await;
        let v = recv(&mut ws).await.unwrap();
        assert_eq!(v["event"], "media", "{v}");
        assert_eq!(v["streamSid"], "MZ1");
        assert_eq!(b64.decode(v["media"]["payload"].as_str().unwrap()).unwrap(), frame(i), "frame {i} back in order");
    }
    send(&mut ws, json!({"event": "dtmf", "streamSid": "MZ1", "sequenceNumber": "60", "dtmf": {"track": "inbound_track", "digit": "3"}})).await;
    let mark = recv(&mut ws).await.unwrap();
    assert_eq!((mark["event"].as_str(), mark["mark"]["name"].as_str()), (Some("mark"), Some("dtmf-3")));
    send(&mut ws, json!({"event": "mark", "streamSid": "MZ1", "sequenceNumber": "61", "mark": {"name": "dtmf-3"}}))
        .await;
    assert_eq!(c.call(&call_id).await.state(), bpb::CallState::InProgress);
    let busy = c.fleet_health().await;
    assert_eq!(busy["fleet_available"], 1, "{busy}");

    send(&mut ws, json!({"event": "stop", "streamSid": "MZ1", "sequenceNumber": "62", "stop": {"accountSid": "AC1", "callSid": "CA1"}})).await;
    let (code, _) = recv(&mut ws).await.unwrap_err();
    assert_eq!(code, 1000);
    let done = until("the call completed with its recording", async || {
        let call = c.call(&call_id).await;
        (call.state() == bpb::CallState::Completed && call.recording.is_some()).then_some(call)
    })
    .await;
    let rec = done.recording.unwrap();
    assert_eq!(rec.duration_ms, 1000, "50 frames of 20 ms");
    assert!(c.dir.path().join("recordings").join(&rec.key).is_file());
    until("the slot free again", async || (c.fleet_health().await["fleet_available"] == 2).then_some(())).await;
    let metrics = reqwest::get(format!("{}/metrics", c.gate.url())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"voxgate_media_frames_total{direction="carrier_to_worker"} 50"#), "{metrics}");
    assert!(metrics.contains("voxgate_reservations_total 1"), "{metrics}");
    drop(c.bridge);
}

#[tokio::test]
async fn four_workers_six_calls_four_connect_two_get_503() {
    let c = cluster(4).await;
    let mut calls = Vec::new();
    for _ in 0..6 {
        calls.push(c.inbound_call().await);
    }
    let attempts = futures::future::join_all((0..6).map(|_| c.connect(TOKEN))).await;
    let mut open = Vec::new();
    let mut refused = 0;
    for a in attempts {
        match a {
            Ok(ws) => open.push(ws),
            Err((status, retry_after)) => {
                assert_eq!(status, 503);
                assert_eq!(retry_after.as_deref(), Some("1"));
                refused += 1;
            }
        }
    }
    assert_eq!((open.len(), refused), (4, 2));
    for (ws, call_id) in open.iter_mut().zip(&calls) {
        start(ws, call_id).await;
        media(ws, 1).await;
        assert_eq!(recv(ws).await.unwrap()["event"], "media");
    }
    let health = c.fleet_health().await;
    assert_eq!(health["fleet_available"], 0);
    let workers = health["workers"].as_array().unwrap();
    assert!(workers.iter().all(|w| w["worker_calls"].as_u64().unwrap() <= 1), "no worker holds two calls: {health}");
    let mut attached: Vec<(String, u32)> = Vec::new();
    for id in &calls[..4] {
        let call = c.call(id).await;
        assert_eq!(call.state(), bpb::CallState::InProgress);
        attached.push((call.node_id, call.worker_index));
    }
    attached.sort();
    attached.dedup();
    assert_eq!(attached.len(), 4, "four calls on four different workers");

    // A freed slot is reused.
    let mut first = open.remove(0);
    send(&mut first, json!({"event": "stop", "streamSid": "MZ1", "stop": {}})).await;
    let _ = recv(&mut first).await;
    until("a slot free again", async || (c.fleet_health().await["fleet_available"] == 1).then_some(())).await;
    let mut again = c.connect(TOKEN).await.expect("the freed slot takes a new call");
    start(&mut again, &calls[4]).await;
    media(&mut again, 2).await;
    assert_eq!(recv(&mut again).await.unwrap()["event"], "media");
}

#[tokio::test]
async fn bad_input_gets_a_clear_answer_and_breaks_nothing() {
    let c = cluster(1).await;
    // Wrong signature: refused before the upgrade.
    assert_eq!(c.connect("not the token").await.unwrap_err().0, 403);
    // A plain GET or POST is no WebSocket and gets a plain answer.
    let plain = reqwest::get(c.stream_url().replace("ws://", "http://")).await.unwrap();
    assert_eq!(plain.status(), 426);
    let post = reqwest::Client::new().post(format!("{}/health/fleet", c.gate.url())).send().await.unwrap();
    assert_eq!(post.status(), 405);

    let mut ws = c.connect(TOKEN).await.unwrap();
    ws.send(Message::text("{not json")).await.unwrap();
    let (code, reason) = recv(&mut ws).await.unwrap_err();
    assert_eq!(code, 1008);
    assert!(reason.contains("malformed JSON"), "{reason}");

    let mut ws = c.connect(TOKEN).await.unwrap();
    start(&mut ws, "ca_doesnotexist0000").await;
    let (code, reason) = recv(&mut ws).await.unwrap_err();
    assert_eq!(code, 1008);
    assert!(reason.contains("unknown call id"), "{reason}");

    let mut ws = c.connect(TOKEN).await.unwrap();
    send(&mut ws, json!({"event": "dance"})).await;
    let (_, reason) = recv(&mut ws).await.unwrap_err();
    assert!(reason.contains("expected start") || reason.contains("unknown event"), "{reason}");

    let call_id = c.inbound_call().await;
    let mut ws = c.connect(TOKEN).await.unwrap();
    start(&mut ws, &call_id).await;
    media(&mut ws, 0).await;
    assert_eq!(recv(&mut ws).await.unwrap()["event"], "media");
    ws.send(Message::text(
        json!({"event": "media", "streamSid": "MZ1", "media": {"payload": "A".repeat(100_000)}}).to_string(),
    ))
    .await
    .unwrap();
    let (code, _) = recv(&mut ws).await.unwrap_err();
    assert_ne!(code, 1000, "an oversize frame closes the stream with an error code");

    // None of that took the gateway down or leaked the slot.
    until("the slot free again", async || (c.fleet_health().await["fleet_available"] == 1).then_some(())).await;
    let health: Value = reqwest::get(format!("{}/health", c.gate.url())).await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
}

#[tokio::test]
async fn an_inbound_call_from_the_voice_webhook_reaches_a_worker() {
    let c = cluster(1).await;
    let url = format!("{}/twilio/voice", c.gate.url());
    let params: Vec<(String, String)> = [
        ("AccountSid", "AC1"),
        ("CallSid", "CA-inbound-1"),
        ("From", "+14155550199"),
        ("To", "+14155550100"),
        ("CallStatus", "ringing"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec();
    let http = reqwest::Client::new();
    let signed = |token: &str| voxgate::media::twilio::signature(token, &url, &params);

    let forged =
        http.post(&url).header("x-twilio-signature", signed("wrong token")).form(&params).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    let missing = http.post(&url).form(&params).send().await.unwrap();
    assert_eq!(missing.status(), 403);

    let reply = http.post(&url).header("x-twilio-signature", signed(TOKEN)).form(&params).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    assert!(reply.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
    let twiml = reply.text().await.unwrap();
    let expected_stream = format!("<Stream url=\"ws://{}/media/twilio\">", c.gate.addr);
    assert!(twiml.contains(&expected_stream), "{twiml}");
    let call_id = twiml.split("name=\"call_id\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let call = c.call(&call_id).await;
    assert_eq!(
        (call.state(), call.provider_call_id.as_str(), call.from_number.as_str()),
        (bpb::CallState::Answered, "CA-inbound-1", "+14155550199")
    );

    // The carrier then streams the call as the TwiML says.
    let mut ws = c.connect(TOKEN).await.unwrap();
    start(&mut ws, &call_id).await;
    media(&mut ws, 4).await;
    assert_eq!(recv(&mut ws).await.unwrap()["event"], "media");
    assert_eq!(c.call(&call_id).await.state(), bpb::CallState::InProgress);

    // A webhook without the required fields, properly signed, is refused by name.
    let partial: Vec<(String, String)> = vec![("From".into(), "+14155550199".into())];
    let sig = voxgate::media::twilio::signature(TOKEN, &url, &partial);
    let bad = http.post(&url).header("x-twilio-signature", sig).form(&partial).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("CallSid"), "{body}");
}

#[tokio::test]
async fn a_browser_session_streams_pcm_with_a_single_use_token() {
    let c = cluster(1).await;
    let http = reqwest::Client::new();
    let url = format!("{}/web/sessions", c.gate.url());
    assert_eq!(http.post(&url).send().await.unwrap().status(), 401);
    let opened = c.open_web_session(&c.gate.url()).await;
    let ws_url = opened["ws_url"].as_str().unwrap().to_string();
    let call_id = opened["call_id"].as_str().unwrap().to_string();
    assert!(ws_url.starts_with(&format!("ws://{}/media/web?token=", c.gate.addr)), "{opened}");

    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.as_str()).await.unwrap();
    let (pcm, echoed) = pcm_round_trip(&mut ws, 50).await;
    assert_eq!(echoed, pcm, "20 ms of 16 kHz PCM back unchanged");
    ws.send(Message::text(r#"{"event":"dtmf","digit":"2"}"#)).await.unwrap();
    let mark = recv(&mut ws).await.unwrap();
    assert_eq!((mark["event"].as_str(), mark["name"].as_str()), (Some("mark"), Some("dtmf-2")));
    let call = c.call(&call_id).await;
    assert_eq!((call.state(), call.channel), (bpb::CallState::InProgress, vox_proto::common::v1::Channel::Web as i32));

    // The token opened its session once.
    let reuse = tokio_tungstenite::connect_async(ws_url.as_str()).await.unwrap_err();
    assert!(matches!(reuse, tokio_tungstenite::tungstenite::Error::Http(ref r) if r.status() == 401), "{reuse:?}");
    ws.send(Message::text(r#"{"event":"stop"}"#)).await.unwrap();
    assert_eq!(recv(&mut ws).await.unwrap_err().0, 1000);
    until("the web call completed", async || {
        (c.call(&call_id).await.state() == bpb::CallState::Completed).then_some(())
    })
    .await;
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited_per_address() {
    let c = cluster(1).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/auth/login", c.gate.url());
    let attempt = || http.post(&url).json(&json!({"email": "admin@vox.test", "password": "guess guess guess"})).send();
    for _ in 0..10 {
        assert_eq!(attempt().await.unwrap().status(), 401, "a wrong password is a plain refusal");
    }
    // The budget refills one attempt every 6 s; a slow machine may have earned one back.
    let mut limited = attempt().await.unwrap();
    for _ in 0..2 {
        if limited.status() == 429 {
            break;
        }
        limited = attempt().await.unwrap();
    }
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Other routes are not held up by it.
    assert_eq!(reqwest::get(format!("{}/health", c.gate.url())).await.unwrap().status(), 200);
}

#[tokio::test]
async fn attach_gives_a_dialler_a_stream_for_an_answered_call() {
    use futures::StreamExt;
    let c = cluster(1).await;
    let mut nodes = bpb::node_service_client::NodeServiceClient::new(c.channel.clone());
    let dialler = nodes
        .register_node(authed(
            &c.admin,
            bpb::RegisterNodeRequest {
                kind: bpb::NodeKind::Dialler as i32,
                endpoint: "http://127.0.0.1:8090".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let http = reqwest::Client::new();
    let url = format!("{}/attach", c.gate.url());
    let call_id = c.inbound_call().await;
    assert_eq!(http.post(&url).json(&json!({"call_id": call_id})).send().await.unwrap().status(), 401);
    let bad = http.post(&url).bearer_auth(&dialler.api_secret).json(&json!({"call": call_id})).send().await.unwrap();
    assert_eq!(bad.status(), 400, "an unknown field is named");

    let attached: Value = http
        .post(&url)
        .bearer_auth(&dialler.api_secret)
        .json(&json!({"call_id": call_id, "sample_rate": 8000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(attached["ws_url"].as_str().unwrap()).await.unwrap();
    let pcm: Vec<u8> = (0..160i16).flat_map(|i| (i * 90).to_le_bytes()).collect();
    ws.send(Message::Binary(pcm.clone().into())).await.unwrap();
    let back = loop {
        if let Message::Binary(b) = ws.next().await.unwrap().unwrap() {
            break b.to_vec();
        }
    };
    assert_eq!(back, pcm);
    assert_eq!(c.call(&call_id).await.state(), bpb::CallState::InProgress);

    // The call is no longer answered, and the only slot is busy.
    let again =
        http.post(&url).bearer_auth(&dialler.api_secret).json(&json!({"call_id": call_id})).send().await.unwrap();
    assert!(again.status() == 412 || again.status() == 503, "{}", again.status());
    let other = c.inbound_call().await;
    let full = http.post(&url).bearer_auth(&dialler.api_secret).json(&json!({"call_id": other})).send().await.unwrap();
    assert_eq!(full.status(), 503);
    assert_eq!(full.headers()["retry-after"], "1");
}

/// A webhook as LiveKit signs it: a JWT whose sha256 claim is the body's digest.
fn livekit_auth(key: &str, secret: &str, body: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body.as_bytes()));
    let claims = json!({"iss": key, "sha256": digest, "exp": chrono::Utc::now().timestamp() + 300});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn livekit_dispatch_verifies_the_webhook_and_creates_the_inbound_call() {
    let c = cluster(1).await;
    let url = format!("{}/livekit/dispatch", c.gate.url());
    let http = reqwest::Client::new();
    let body = json!({
        "event": "participant_joined",
        "room": {"name": "sip-room-1"},
        "participant": {"identity": "sip_+14155550199", "kind": "SIP", "attributes": {
            "sip.callID": "SCL_abc123", "sip.phoneNumber": "+14155550199", "sip.trunkPhoneNumber": "+14155550100"}}
    })
    .to_string();
    let post = |auth: String, body: String| {
        http.post(&url)
            .header("content-type", "application/webhook+json")
            .header("authorization", auth)
            .body(body)
            .send()
    };

    let forged = post(livekit_auth(LIVEKIT_KEY, "not the secret", &body), body.clone()).await.unwrap();
    assert_eq!(forged.status(), 401);
    let tampered = post(livekit_auth(LIVEKIT_KEY, LIVEKIT_SECRET, &body), body.replace("+14155550199", "+19999999999"))
        .await
        .unwrap();
    assert_eq!(tampered.status(), 401, "a body that is not the one signed is refused");

    let ok = post(livekit_auth(LIVEKIT_KEY, LIVEKIT_SECRET, &body), body.clone()).await.unwrap();
    assert_eq!(ok.status(), 200);
    let reply: Value = ok.json().await.unwrap();
    assert_eq!(reply["handled"], true);
    let call = c.call(reply["call_id"].as_str().unwrap()).await;
    assert_eq!(
        (call.state(), call.provider_call_id.as_str(), call.from_number.as_str(), call.to_number.as_str()),
        (bpb::CallState::Answered, "SCL_abc123", "+14155550199", "+14155550100")
    );

    let other = json!({"event": "room_finished", "room": {"name": "sip-room-1"}}).to_string();
    let ack: Value =
        post(livekit_auth(LIVEKIT_KEY, LIVEKIT_SECRET, &other), other.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(ack["handled"], false);
}

#[tokio::test]
async fn static_fleet_urls_work_beside_voxbridge_fleet() {
    // A cluster with no fleet host: its only worker is a standalone one named in FLEET_URLS.
    // Without voxbridge nobody issues it tokens, so it serves its Unix socket only.
    let mut c = cluster_with(&[], &[]).await;
    let worker_dir = c.dir.path().join("static");
    std::fs::create_dir_all(&worker_dir).unwrap();
    let args: Vec<String> = vec![
        "worker".into(),
        "--socket-dir".into(),
        worker_dir.join("sock").display().to_string(),
        "--spool-dir".into(),
        worker_dir.join("spool").display().to_string(),
        "--recordings-dir".into(),
        worker_dir.join("recordings").display().to_string(),
    ];
    let worker = vox_testkit::ServerProcess::start_listening(
        "static-worker",
        &vox_testkit::workspace_binary("voxcore", "voxcore"),
        &args,
        &[],
        &worker_dir,
    )
    .await
    .unwrap();
    // Restart voxgate with the worker in FLEET_URLS.
    let gate_args: Vec<String> = vec!["--listen".into(), "127.0.0.1:0".into(), "--bridge-url".into(), c.bridge.url()];
    let mut nodes = vox_proto::backend::v1::node_service_client::NodeServiceClient::new(c.channel.clone());
    let gw = nodes
        .register_node(authed(
            &c.admin,
            bpb::RegisterNodeRequest {
                kind: bpb::NodeKind::Gateway as i32,
                region_id: c.region.clone(),
                endpoint: "http://127.0.0.1:2".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let env = [
        ("VOX_NODE_SECRET", gw.api_secret),
        ("TWILIO_AUTH_TOKEN", TOKEN.to_string()),
        ("FLEET_URLS", worker.endpoint.clone()),
    ];
    c.gate = vox_testkit::ServerProcess::start(
        "voxgate-static",
        std::path::Path::new(env!("CARGO_BIN_EXE_voxgate")),
        &gate_args,
        &env,
        c.dir.path(),
    )
    .await
    .unwrap();
    until("the static worker offered", async || (c.fleet_health().await["fleet_available"] == 1).then_some(())).await;
    let health = c.fleet_health().await;
    assert_eq!(health["workers"][0]["url"], worker.endpoint.as_str(), "{health}");
    assert_eq!(health["hosts"][0]["node_id"], "static", "{health}");

    let call_id = c.inbound_call().await;
    let mut ws = c.connect(TOKEN).await.unwrap();
    start(&mut ws, &call_id).await;
    media(&mut ws, 3).await;
    assert_eq!(recv(&mut ws).await.unwrap()["event"], "media", "the call reached the static worker");
    assert_eq!(c.connect(TOKEN).await.unwrap_err().0, 503, "its one slot is held for the call");
}
