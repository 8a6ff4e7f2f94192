//! What happens when things go wrong or change mid-call: a worker killed, a fleet node
//! drained, and a long call's recording.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use tonic::Request;
use vox_proto::backend::v1 as bpb;

#[tokio::test]
async fn a_killed_worker_ends_its_call_and_loses_no_recording() {
    let c = cluster(2).await;
    let call_id = c.inbound_call().await;
    let mut ws = c.connect(TOKEN).await.unwrap();
    start(&mut ws, &call_id).await;
    // Over a second at real pace, so the worker's recording reaches its disk.
    for i in 0..70 {
        media(&mut ws, i).await;
        assert_eq!(recv(&mut ws).await.unwrap()["event"], "media");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let call = c.call(&call_id).await;
    let pids = worker_pids(&c, call.worker_index);
    assert_eq!(pids.len(), 1, "one process for worker {}", call.worker_index);
    std::process::Command::new("kill").arg("-KILL").arg(pids[0].to_string()).status().unwrap();

    let (code, reason) = recv(&mut ws).await.unwrap_err();
    assert_eq!((code, reason.as_str()), (1011, "worker lost"));
    let failed = until("the call failed with a reason", async || {
        let call = c.call(&call_id).await;
        (call.state() == bpb::CallState::Failed).then_some(call)
    })
    .await;
    assert_eq!(failed.end_reason, "worker_lost");

    // The next call goes to a live worker straight away.
    let next = c.inbound_call().await;
    let mut ws2 = c.connect(TOKEN).await.expect("a live slot takes the next call");
    start(&mut ws2, &next).await;
    media(&mut ws2, 1).await;
    assert_eq!(recv(&mut ws2).await.unwrap()["event"], "media");
    assert_ne!(c.call(&next).await.worker_index, call.worker_index, "no new call to the dead socket");

    // The host restarts the worker, which finishes the partial recording it left.
    let recorded =
        until("the partial recording uploaded and attached", async || c.call(&call_id).await.recording).await;
    assert!(recorded.duration_ms >= 1000, "{recorded:?}");
    assert!(c.dir.path().join("recordings").join(&recorded.key).is_file());
    stop(&mut ws2).await;
    let _ = recv(&mut ws2).await;
    until("both slots free, the restarted one included", async || {
        (c.fleet_health().await["fleet_available"] == 2).then_some(())
    })
    .await;
    let a = c.inbound_call().await;
    let b = c.inbound_call().await;
    let mut wa = c.connect(TOKEN).await.unwrap();
    let mut wb = c.connect(TOKEN).await.unwrap();
    start(&mut wa, &a).await;
    start(&mut wb, &b).await;
    media(&mut wa, 1).await;
    media(&mut wb, 1).await;
    assert_eq!(recv(&mut wa).await.unwrap()["event"], "media");
    assert_eq!(recv(&mut wb).await.unwrap()["event"], "media");
}

#[tokio::test]
async fn maintenance_lets_the_live_call_finish_and_sends_new_calls_elsewhere() {
    let c = cluster_of(&[1, 1]).await;
    let first = c.inbound_call().await;
    let mut ws = c.connect(TOKEN).await.unwrap();
    start(&mut ws, &first).await;
    media(&mut ws, 0).await;
    assert_eq!(recv(&mut ws).await.unwrap()["event"], "media");
    let busy_node = c.call(&first).await.node_id;
    let other_node = c.fleet_nodes.iter().find(|n| **n != busy_node).unwrap().clone();

    let mut nodes = bpb::node_service_client::NodeServiceClient::new(c.channel.clone());
    let mut req = Request::new(bpb::SetNodeLifecycleRequest {
        node_id: busy_node.clone(),
        action: bpb::LifecycleAction::Maintenance as i32,
        reason: "kernel update".into(),
    });
    req.metadata_mut().insert("authorization", format!("Bearer {}", c.admin).parse().unwrap());
    nodes.set_node_lifecycle(req).await.unwrap();
    until("the gateway stops offering the drained node", async || {
        let h = c.fleet_health().await;
        h["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["node_id"] == busy_node.as_str() && w["accepting"] == false)
            .then_some(())
    })
    .await;

    // The live call goes on.
    for i in 1..20 {
        media(&mut ws, i).await;
        assert_eq!(recv(&mut ws).await.unwrap()["event"], "media");
    }
    // A new call goes to the other node; with that one busy too, the next gets 503.
    let second = c.inbound_call().await;
    let mut ws2 = c.connect(TOKEN).await.unwrap();
    start(&mut ws2, &second).await;
    media(&mut ws2, 0).await;
    assert_eq!(recv(&mut ws2).await.unwrap()["event"], "media");
    assert_eq!(c.call(&second).await.node_id, other_node);
    assert_eq!(c.connect(TOKEN).await.unwrap_err().0, 503);

    stop(&mut ws).await;
    assert_eq!(recv(&mut ws).await.unwrap_err().0, 1000);
    let done = until("the drained node's call completed", async || {
        let call = c.call(&first).await;
        (call.state() == bpb::CallState::Completed).then_some(call)
    })
    .await;
    assert_eq!(done.end_reason, "caller_hangup");
}

#[tokio::test]
async fn a_ten_second_call_leaves_a_ten_second_stereo_recording() {
    let c = cluster(1).await;
    let call_id = c.inbound_call().await;
    let mut ws = c.connect(TOKEN).await.unwrap();
    start(&mut ws, &call_id).await;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..500 {
        tick.tick().await;
        media(&mut ws, i).await;
        assert_eq!(recv(&mut ws).await.unwrap()["event"], "media");
    }
    stop(&mut ws).await;
    let _ = recv(&mut ws).await;
    let rec = until("the recording attached", async || c.call(&call_id).await.recording).await;
    assert!((9_900..=10_100).contains(&rec.duration_ms), "{rec:?}");
    let bytes = std::fs::read(c.dir.path().join("recordings").join(&rec.key)).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[22], bytes[23]]), 2, "stereo");
    assert_eq!(bytes.len() as u64, rec.size_bytes);
    let caller = vox_audio::wav::read_prompt(&bytes).unwrap().samples;
    assert_eq!(caller.len(), 80_000, "ten seconds of caller audio at 8 kHz");
}
