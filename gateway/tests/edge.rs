//! A stateless edge: two gateways on one voxbridge, and each step of a call landing on
//! either. A web session opened through one streams through the other; an outbound call
//! answered through one connects when its stream arrives at the other, on the worker
//! reserved at answer time.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use vox_proto::backend::v1 as bpb;
use vox_testkit::twilio::twiml_stream;

fn refused_with(result: Result<impl Sized, tokio_tungstenite::tungstenite::Error>, status: u16) {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), status),
        Err(e) => panic!("expected HTTP {status}, got {e}"),
        Ok(_) => panic!("expected HTTP {status}, the stream was accepted"),
    }
}

#[tokio::test]
async fn two_hosts_with_the_same_port_layout_are_two_hosts_and_both_take_calls() {
    // Two fleet hosts on their own loopback addresses, workers on the same ports: only
    // (node id, worker index) tells their slots apart.
    let base = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port().to_string()
    };
    let c = cluster_hosts(
        &[2, 2],
        |h| ["--listen-ip".into(), format!("127.0.0.{}", h + 2), "--worker-base-port".into(), base.clone()].into(),
        &[],
    )
    .await;
    let health = c.fleet_health().await;
    let workers = health["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 4, "{health}");
    let ports: std::collections::HashSet<&str> =
        workers.iter().map(|w| w["url"].as_str().unwrap().rsplit(':').next().unwrap()).collect();
    assert_eq!(ports.len(), 2, "the same two ports on both hosts: {health}");

    // Four calls held at once: two on each host.
    let mut streams = Vec::new();
    let mut ids = Vec::new();
    for i in 0..4 {
        let call_id = c.inbound_call().await;
        let mut ws = c.connect(TOKEN).await.unwrap();
        start(&mut ws, &call_id).await;
        media(&mut ws, i).await;
        assert_eq!(recv(&mut ws).await.unwrap()["event"], "media");
        streams.push(ws);
        ids.push(call_id);
    }
    let mut per_host = std::collections::HashMap::<String, usize>::new();
    for id in &ids {
        *per_host.entry(c.call(id).await.node_id).or_default() += 1;
    }
    assert_eq!(per_host.len(), 2, "{per_host:?}");
    assert!(per_host.values().all(|n| *n == 2), "{per_host:?}");
}

#[tokio::test]
async fn a_web_session_opened_on_one_gateway_streams_through_the_other_once() {
    let c = cluster(1).await;
    let b = c.second_gateway("voxgate-b").await;
    let opened = c.open_web_session(&c.gate.url()).await;
    let token = opened["token"].as_str().unwrap().to_string();
    let call_id = opened["call_id"].as_str().unwrap().to_string();
    assert_eq!(opened["ws_url"], format!("ws://{}/media/web?token={token}", c.gate.addr), "{opened}");

    // The browser's socket reaches gateway B, which never saw the session.
    let on_b = format!("ws://{}/media/web?token={token}", b.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(on_b.as_str()).await.unwrap();
    let (pcm, echoed) = pcm_round_trip(&mut ws, 40).await;
    assert_eq!(echoed, pcm, "the echo agent answered through gateway B");
    assert_eq!(c.call(&call_id).await.state(), bpb::CallState::InProgress);

    // The token opened its call once, whichever gateway it is shown to next.
    refused_with(tokio_tungstenite::connect_async(on_b.as_str()).await, 401);
    let on_a = opened["ws_url"].as_str().unwrap();
    refused_with(tokio_tungstenite::connect_async(on_a).await, 401);
    // Nor is a token voxbridge did not sign accepted.
    let forged = format!("ws://{}/media/web?token={}x", b.addr, &token[..token.len() - 1]);
    refused_with(tokio_tungstenite::connect_async(forged.as_str()).await, 401);

    ws.send(Message::text(r#"{"event":"stop"}"#)).await.unwrap();
    assert_eq!(recv(&mut ws).await.unwrap_err().0, 1000);
    until("the web call completed", async || {
        (c.call(&call_id).await.state() == bpb::CallState::Completed).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_outbound_call_answered_on_one_gateway_connects_on_the_other_on_its_reserved_worker() {
    let c = cluster_of(&[1, 1]).await;
    let b = c.second_gateway("voxgate-b").await;
    let call_id = c.dialing_call().await;

    let twiml = answer_outbound(&c.gate.url(), &call_id).await;
    let (url, params) = twiml_stream(&twiml);
    assert_eq!(url, format!("ws://{}/media/twilio", c.gate.addr), "no query string: {twiml}");
    assert_eq!(params["call_id"], call_id.as_str(), "{twiml}");
    let slot = params["slot"].as_str().unwrap().to_string();
    let parts: Vec<&str> = slot.split('/').collect();
    assert_eq!(parts.len(), 3, "<node_id>/<worker_index>/<reservation_id>: {slot}");
    assert!(c.fleet_nodes.iter().any(|n| n == parts[0]), "{slot}");
    assert_eq!(c.call(&call_id).await.state(), bpb::CallState::Answered);

    // The carrier's stream reaches gateway B, with the TwiML's parameters.
    let mut ws = connect_to(&format!("ws://{}/media/twilio", b.addr), TOKEN).await.unwrap();
    start_with(&mut ws, Value::Object(params)).await;
    media(&mut ws, 1).await;
    assert_eq!(recv(&mut ws).await.unwrap()["event"], "media", "the echo agent answered");
    let call = c.call(&call_id).await;
    assert_eq!(call.state(), bpb::CallState::InProgress);
    assert_eq!(
        (call.node_id.as_str(), call.worker_index.to_string()),
        (parts[0], parts[1].to_string()),
        "the call is on the worker reserved when it was answered"
    );
    stop(&mut ws).await;
    assert_eq!(until_closed(&mut ws).await.0, 1000);
    until("the outbound call completed", async || {
        (c.call(&call_id).await.state() == bpb::CallState::Completed).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_stream_naming_a_slot_this_gateway_does_not_know_is_reserved_afresh() {
    let c = cluster_of(&[1, 1]).await;
    let b = c.second_gateway("voxgate-b").await;
    let call_id = c.dialing_call().await;
    let twiml = answer_outbound(&c.gate.url(), &call_id).await;
    let (_, mut params) = twiml_stream(&twiml);
    let reserved = params["slot"].as_str().unwrap().to_string();
    // A slot on a node nobody knows: the stream reserves a worker the normal way. The
    // answer's reservation still holds its worker, so the call lands on the other one.
    params.insert("slot".into(), json!("nd_0000000000000000/1/rsv_gone"));
    let mut ws = connect_to(&format!("ws://{}/media/twilio", b.addr), TOKEN).await.unwrap();
    start_with(&mut ws, Value::Object(params)).await;
    media(&mut ws, 2).await;
    assert_eq!(recv(&mut ws).await.unwrap()["event"], "media", "the echo agent answered");
    let call = c.call(&call_id).await;
    assert_eq!(call.state(), bpb::CallState::InProgress);
    assert!(!reserved.starts_with(&format!("{}/", call.node_id)), "{reserved} vs {}", call.node_id);
}
