//! voxsim's LiveKit side: CreateSIPParticipant authorised by a JWT like LiveKit's,
//! answered or refused per the model with the SIP status in the Twirp error.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{ACCOUNT, Sim, TOKEN};
use serde_json::{Value, json};
use voxsim::model::Params;

const KEY: &str = "APIvoxsim";
const SECRET: &str = "livekit-secret-that-is-long-enough";

fn token(key: &str, secret: &str, grants: Value, exp_in: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({"iss": key, "sub": "voxdialler", "nbf": now - 5, "exp": now + exp_in});
    for (k, v) in grants.as_object().unwrap() {
        claims[k] = v.clone();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn sip_token() -> String {
    token(KEY, SECRET, json!({"sip": {"call": true}}), 600)
}

async fn post(sim: &Sim, method: &str, bearer: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("{}/twirp/{method}", sim.url)).json(&body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

fn dial(i: usize, wait: bool) -> Value {
    json!({
        "sip_trunk_id": "ST_trunk",
        "sip_call_to": format!("+1555000{i:04}"),
        "sip_number": "+15559990000",
        "room_name": format!("vox-call-{i}"),
        "participant_identity": format!("sip-ca_{i}"),
        "participant_name": "callee",
        "participant_metadata": json!({"vox_call_id": format!("ca_{i}")}).to_string(),
        "ringing_timeout": "30s",
        "wait_until_answered": wait,
    })
}

async fn livekit_sim(model: Params) -> Sim {
    Sim::start(|a| {
        a.livekit_api_key = Some(KEY.into());
        a.livekit_api_secret = Some(SECRET.into());
        a.model = model;
    })
    .await
}

const SIP: &str = "livekit.SIP/CreateSIPParticipant";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_are_answered_or_refused_per_the_model() {
    let sim = livekit_sim(Params {
        seed: 5,
        answer_prob: 0.4,
        fail_prob: 0.3,
        talk_mean: 20.0,
        talk_cv: 0.3,
        time_scale: 100.0,
        ..Params::default()
    })
    .await;
    let n = 40;
    let t = sip_token();
    let mut replies = Vec::new();
    for i in 0..n {
        replies.push(post(&sim, SIP, Some(&t), dial(i, true)).await);
    }
    let calls = sim.calls().await;
    assert_eq!(calls.len(), n);
    let mut answered = 0;
    for (i, ((status, body), call)) in replies.iter().zip(&calls).enumerate() {
        assert_eq!(call["provider"], "livekit");
        assert_eq!(call["call_id"], format!("ca_{i}"));
        assert_eq!(call["to"], format!("+1555000{i:04}"));
        match call["outcome"].as_str().unwrap() {
            "human" => {
                answered += 1;
                assert_eq!(*status, 200, "{body}");
                assert!(body["participant_id"].as_str().unwrap().starts_with("PA_"));
                assert!(body["sip_call_id"].as_str().unwrap().starts_with("SCL_"));
                assert_eq!(body["sip_call_id"], call["sid"]);
                assert_eq!(body["participant_identity"], format!("sip-ca_{i}"));
                assert_eq!(body["room_name"], format!("vox-call-{i}"));
                assert!(call["answered_at"].is_string());
            }
            outcome => {
                let (code, sip) = match outcome {
                    "busy" => ("resource_exhausted", "486"),
                    "no-answer" => ("resource_exhausted", "480"),
                    _ => ("failed_precondition", "500"),
                };
                assert_eq!(body["code"], code, "{outcome}: {body}");
                assert_eq!(body["meta"]["sip_status_code"], sip);
                assert!(body["msg"].as_str().unwrap().starts_with(&format!("sip status {sip}")));
                assert_eq!(*status, if code == "resource_exhausted" { 429 } else { 412 });
                assert_eq!(call["status"], outcome);
            }
        }
    }
    assert!((8..=28).contains(&answered), "{answered} of {n} answered");
    sim.wait_all_ended(Duration::from_secs(10)).await;
    let calls = sim.calls().await;
    assert!(calls.iter().all(|c| c["media_frames_sent"] == 0), "LiveKit calls carry no media");
    assert_eq!(sim.get_json("/sim/stats").await["by_provider"]["livekit"], n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_waiting_the_reply_is_immediate_and_the_participant_can_be_removed() {
    let sim = livekit_sim(Params { answer_prob: 1.0, fail_prob: 0.0, ..Params::default() }).await;
    let (status, body) = post(&sim, SIP, Some(&sip_token()), dial(1, false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sim.calls().await[0]["status"], "queued");

    let admin = token(KEY, SECRET, json!({"video": {"roomAdmin": true, "room": "vox-call-1"}}), 600);
    let remove = json!({"room": "vox-call-1", "identity": "sip-ca_1"});
    let (status, body) = post(&sim, "livekit.RoomService/RemoveParticipant", Some(&sip_token()), remove.clone()).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthenticated")), "a sip grant is not room admin");
    let (status, body) = post(&sim, "livekit.RoomService/RemoveParticipant", Some(&admin), remove.clone()).await;
    assert_eq!(status, 200, "{body}");
    sim.wait_all_ended(Duration::from_secs(3)).await;
    assert_eq!(sim.calls().await[0]["status"], "canceled");
    let (status, _) = post(&sim, "livekit.RoomService/RemoveParticipant", Some(&admin), remove).await;
    assert_eq!(status, 404, "already gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_bad_requests_are_refused() {
    let sim = livekit_sim(Params::default()).await;
    let cases = [
        ("no token", None),
        ("expired", Some(token(KEY, SECRET, json!({"sip": {"call": true}}), -3600))),
        ("wrong secret", Some(token(KEY, "another-secret", json!({"sip": {"call": true}}), 600))),
        ("wrong key", Some(token("APIother", SECRET, json!({"sip": {"call": true}}), 600))),
        ("no sip grant", Some(token(KEY, SECRET, json!({"video": {"roomJoin": true}}), 600))),
        ("sip without call", Some(token(KEY, SECRET, json!({"sip": {"call": false, "admin": true}}), 600))),
        ("not a JWT", Some("garbage".to_string())),
    ];
    for (what, bearer) in cases {
        let (status, body) = post(&sim, SIP, bearer.as_deref(), dial(1, true)).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["code"], "unauthenticated", "{what}");
        assert!(body["msg"].is_string());
    }
    let t = sip_token();
    for field in ["sip_call_to", "room_name", "sip_trunk_id"] {
        let mut body = dial(1, true);
        body.as_object_mut().unwrap().remove(field);
        let (status, reply) = post(&sim, SIP, Some(&t), body).await;
        assert_eq!((status, reply["code"].as_str()), (400, Some("invalid_argument")), "{field}");
        assert!(reply["msg"].as_str().unwrap().contains(field));
    }
    let resp = reqwest::Client::new()
        .post(format!("{}/twirp/{SIP}", sim.url))
        .bearer_auth(&t)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "malformed");
    assert!(sim.calls().await.is_empty());

    // The faults endpoint applies to LiveKit creates as well.
    let resp = reqwest::Client::new()
        .post(format!("{}/sim/faults", sim.url))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .json(&json!({"create_status": 503, "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, body) = post(&sim, SIP, Some(&t), dial(1, false)).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("unavailable")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_livekit_api_is_off_without_credentials() {
    let sim = Sim::start(|_| {}).await;
    let (status, body) = post(&sim, SIP, Some(&sip_token()), dial(1, true)).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("bad_route")));
}
