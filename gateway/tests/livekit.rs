//! The LiveKit routes against a LiveKit API peer that checks what LiveKit checks: the
//! JWT (key, secret, grant) and the request's shape.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use serde_json::{Value, json};
use tonic::Request;
use vox_proto::backend::v1 as bpb;

/// Serves CreateSIPParticipant like LiveKit: 401 without a valid `sip.call` token, a
/// Twirp error with SIP 486 for the busy number, the participant otherwise.
async fn fake_livekit(seen: Arc<Mutex<Vec<Value>>>) -> String {
    let app = axum::Router::new().route(
        "/twirp/livekit.SIP/CreateSIPParticipant",
        axum::routing::post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let seen = Arc::clone(&seen);
            async move {
                let token = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").trim_start_matches("Bearer ");
                let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
                v.set_issuer(&[LIVEKIT_KEY]);
                v.required_spec_claims.clear();
                let claims = jsonwebtoken::decode::<Value>(token, &jsonwebtoken::DecodingKey::from_secret(LIVEKIT_SECRET.as_bytes()), &v);
                let granted = claims.as_ref().is_ok_and(|c| c.claims["sip"]["call"] == true);
                if !granted {
                    return (StatusCode::UNAUTHORIZED, Json(json!({"code": "unauthenticated", "msg": "no sip.call grant"})));
                }
                seen.lock().unwrap().push(body.clone());
                if body["sip_call_to"] == "+14155550486" {
                    return (StatusCode::BAD_REQUEST, Json(json!({"code": "failed_precondition", "msg": "callee busy", "meta": {"sip_status_code": "486"}})));
                }
                (StatusCode::OK, Json(json!({"participant_id": "PA_1", "participant_identity": body["participant_identity"], "room_name": body["room_name"], "sip_call_id": "SCL_out_1"})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn authed<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

#[tokio::test]
async fn widget_tokens_and_sip_dialout_go_through_livekit() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let lk_url = fake_livekit(Arc::clone(&seen)).await;
    let c =
        cluster_with(&[1], &[("LIVEKIT_URL", lk_url.clone()), ("LIVEKIT_SIP_TRUNK_ID", "ST_trunk1".to_string())]).await;
    let http = reqwest::Client::new();

    // Widget: a web call and a token to join its room.
    let widget = http
        .post(format!("{}/livekit/widget", c.gate.url()))
        .bearer_auth(&c.admin)
        .json(&json!({"display_name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(widget.status(), 201);
    let w: Value = widget.json().await.unwrap();
    let call_id = w["call_id"].as_str().unwrap();
    assert_eq!(w["room"], format!("vox-{call_id}"));
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_issuer(&[LIVEKIT_KEY]);
    let claims = jsonwebtoken::decode::<Value>(
        w["token"].as_str().unwrap(),
        &jsonwebtoken::DecodingKey::from_secret(LIVEKIT_SECRET.as_bytes()),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(
        (claims["video"]["room"].as_str(), claims["video"]["roomJoin"].as_bool(), claims["name"].as_str()),
        (w["room"].as_str(), Some(true), Some("Ada"))
    );
    assert_eq!(c.call(call_id).await.channel, vox_proto::common::v1::Channel::Web as i32);
    assert_eq!(http.post(format!("{}/livekit/widget", c.gate.url())).send().await.unwrap().status(), 401);

    // Dial-out: leased calls of a running campaign, dialled by the leading dialler.
    let spec = bpb::CampaignSpec { name: "renewals".into(), caller_id: "+14155550100".into(), ..Default::default() };
    let campaign_id = c.running_campaign(spec, &["+14155550123", "+14155550486"]).await;
    let dialler = bpb::node_service_client::NodeServiceClient::new(c.channel.clone())
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
    let lead = bpb::leadership_service_client::LeadershipServiceClient::new(c.channel.clone())
        .acquire_leadership(authed(
            &dialler.api_secret,
            bpb::AcquireLeadershipRequest { holder_id: String::new(), ttl_seconds: 30 },
        ))
        .await
        .unwrap()
        .into_inner();
    let leased = bpb::call_service_client::CallServiceClient::new(c.channel.clone())
        .lease_calls(authed(
            &dialler.api_secret,
            bpb::LeaseCallsRequest {
                campaign_id: campaign_id.clone(),
                max: 2,
                owner: String::new(),
                fencing_term: lead.term,
                lease_ttl_seconds: 60,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .calls;
    let by_number = |n: &str| leased.iter().find(|c| c.to_number == n).unwrap().id.clone();
    let dial = |call_id: String| {
        http.post(format!("{}/livekit/dialout", c.gate.url()))
            .bearer_auth(&dialler.api_secret)
            .json(&json!({"call_id": call_id}))
            .send()
    };

    let ok = dial(by_number("+14155550123")).await.unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["livekit"]["sip_call_id"], "SCL_out_1");
    let sent = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (sent["sip_trunk_id"].as_str(), sent["sip_call_to"].as_str(), sent["sip_number"].as_str()),
        (Some("ST_trunk1"), Some("+14155550123"), Some("+14155550100"))
    );

    let busy = dial(by_number("+14155550486")).await.unwrap();
    assert_eq!(busy.status(), 502);
    let err: Value = busy.json().await.unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("SIP 486"), "{err}");

    // A call that is not being dialled is refused.
    let answered = c.inbound_call().await;
    assert_eq!(dial(answered).await.unwrap().status(), 412);
}
