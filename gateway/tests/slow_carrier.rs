//! A carrier that stops reading its media socket (issue 12, item 9): the relay's sends to
//! it have a deadline, so the call ends within bounded time as `peer_not_reading`, in the
//! log and the call record, instead of stalling the relay, its watchdogs and the worker
//! behind it; the slot is free again and the next call goes through.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vox_proto::backend::v1 as bpb;

/// A Twilio media frame of half a second of audio: its echo is 25 frames back.
fn half_second(i: usize) -> Message {
    use base64::Engine;
    let payload =
        base64::engine::general_purpose::STANDARD.encode(vox_audio::mulaw::encode(&[(i as i16 % 50) * 400; 4000]));
    let media = json!({"track": "inbound", "chunk": (i + 1).to_string(), "timestamp": (i * 500).to_string(),
        "payload": payload});
    Message::text(
        json!({"event": "media", "streamSid": "MZ1", "sequenceNumber": (i + 2).to_string(), "media": media})
            .to_string(),
    )
}

#[tokio::test]
async fn a_carrier_that_stops_reading_ends_the_call_and_frees_the_slot() {
    let c = cluster(1).await;
    let call_id = c.inbound_call().await;

    // A carrier with a receive buffer of a few KiB that, after `start`, only ever writes.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(c.gate.addr).await.unwrap();
    let url = c.stream_url();
    let mut req = url.as_str().into_client_request().unwrap();
    let sig = voxgate::media::twilio::signature(TOKEN, &url, &[]);
    req.headers_mut().insert("x-twilio-signature", sig.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    start(&mut ws, &call_id).await;
    let (mut write, never_read) = ws.split();
    let talking = tokio::spawn(async move {
        // Until the gateway stops taking frames too (at most 30 s).
        for i in 0..15_000 {
            match tokio::time::timeout(Duration::from_secs(1), write.send(half_second(i))).await {
                Ok(Ok(())) => tokio::time::sleep(Duration::from_millis(2)).await,
                _ => return,
            }
        }
    });

    let started = Instant::now();
    let ended = until("the call ended", async || {
        let call = c.call(&call_id).await;
        matches!(call.state(), bpb::CallState::Failed | bpb::CallState::Completed).then_some(call)
    })
    .await;
    let took = started.elapsed();
    assert_eq!((ended.state(), ended.end_reason.as_str()), (bpb::CallState::Failed, "peer_not_reading"));
    assert!(took < Duration::from_secs(15), "the call ended within bounded time: {took:?}");
    let metrics = reqwest::get(format!("{}/metrics", c.gate.url())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"voxgate_peers_not_reading_total{peer="carrier"} 1"#), "{metrics}");
    talking.abort();
    drop(never_read);

    // The relay and the worker take the next call.
    until("the slot free again", async || (c.fleet_health().await["fleet_available"] == 1).then_some(())).await;
    let next = c.inbound_call().await;
    let mut ws = c.connect(TOKEN).await.unwrap();
    start(&mut ws, &next).await;
    media(&mut ws, 3).await;
    assert_eq!(recv(&mut ws).await.unwrap()["event"], "media");
    stop(&mut ws).await;
    assert_eq!(until_closed(&mut ws).await.0, 1000);
    let logs = c.gate.logs();
    assert!(logs.contains("the carrier has not read the call's audio"), "the log says why:\n{logs}");
}
