//! Faults around the dialler: voxbridge restarted mid-campaign, a carrier answering 500
//! or timing out, bad callbacks and bad campaigns.
#![allow(clippy::unwrap_used, reason = "tests stop on failure")]

mod common;

use std::time::Duration;

use common::{Settings, TOKEN, assert_no_double_dials, authed, platform, until};
use serde_json::json;
use vox_proto::backend::v1 as bpb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voxbridge_restarted_mid_campaign_the_dialler_waits_and_resumes() {
    let mut p = platform(Settings::default()).await;
    let id = p.campaign(60, 20, 4).await;
    until("calls placed", Duration::from_secs(60), async || (p.carrier_calls().await.len() >= 8).then_some(())).await;
    let (code, _) = p.dialler_health(0).await;
    assert_eq!(code, 200);

    let url = p.diallers[0].process.url();
    let watch = async move {
        // While voxbridge is down the dialler says so.
        until("the dialler to report voxbridge unreachable", Duration::from_secs(15), async || {
            let r = reqwest::get(format!("{url}/health")).await.ok()?;
            let code = r.status().as_u16();
            let h: serde_json::Value = r.json().await.ok()?;
            let reason = h["reason"].as_str().unwrap_or_default().to_string();
            (code == 503 && reason.contains("voxbridge unreachable")).then_some(reason)
        })
        .await
    };
    let ((), reason) = tokio::join!(p.restart_bridge(Duration::from_secs(5)), watch);
    println!("while voxbridge was down the dialler said: {reason}");
    until("the dialler to be healthy again", Duration::from_secs(30), async || {
        let (code, _) = p.dialler_health(0).await;
        (code == 200).then_some(())
    })
    .await;
    p.until_done(&id, Duration::from_secs(180)).await;
    assert_no_double_dials(&p.carrier_calls().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_answering_500_or_timing_out_loses_nothing_and_dials_nothing_twice() {
    let p =
        platform(Settings { dialler_args: vec!["--provider-timeout-ms".into(), "1000".into()], ..Settings::default() })
            .await;
    // The first 5 create requests fail with 500, the next 2 hang past the timeout.
    p.sim_fault(json!({"create_status": 500, "count": 5})).await;
    let id = p.campaign(30, 10, 0).await;
    until("the 500s to be used up", Duration::from_secs(60), async || {
        (p.carrier_calls().await.len() >= 3).then_some(())
    })
    .await;
    p.sim_fault(json!({"create_delay_ms": 3000, "count": 2})).await;
    p.until_done(&id, Duration::from_secs(180)).await;

    let calls = p.all_calls(&id).await;
    let numbers: std::collections::HashSet<&str> = calls.iter().map(|c| c.to_number.as_str()).collect();
    assert_eq!(numbers.len(), 30, "no number lost");
    // A refused create put the call back in the pool without using an attempt.
    let mut refused = 0;
    for c in &calls {
        let events = p.events(&c.id).await;
        if events.iter().any(|e| e.to_state() == bpb::CallState::Pending && e.reason.starts_with("provider_refused")) {
            refused += 1;
        }
    }
    assert!(refused >= 1, "500s sent calls back to pending");
    let timeouts: Vec<&bpb::Call> = calls.iter().filter(|c| c.end_reason.starts_with("provider_timeout")).collect();
    assert!(
        !timeouts.is_empty(),
        "a create that timed out ends that attempt: {:?}",
        calls.iter().map(|c| &c.end_reason).collect::<Vec<_>>()
    );
    assert_no_double_dials(&p.carrier_calls().await);
    let m = p.dialler_metrics(0).await;
    assert!(
        m.keys().any(|k| k.starts_with("voxdialler_placement_failures_total{reason=\"provider_refused\"}")),
        "{m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_callbacks_and_bad_campaigns_get_clear_errors() {
    let p = platform(Settings { diallers: 0, ..Settings::default() }).await;
    let gate = p.gate.url();
    let http = reqwest::Client::new();
    // Wrong signature.
    let r = http
        .post(format!("{gate}/twilio/status?call_id=ca_nope"))
        .header("X-Twilio-Signature", "bm9wZQ==")
        .form(&[("CallSid", "CA1"), ("CallStatus", "ringing")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("X-Twilio-Signature"));
    // Signed right, unknown call.
    let url = format!("{gate}/twilio/status?call_id=ca_0000000000000000");
    let params = [("CallSid".to_string(), "CA1".to_string()), ("CallStatus".to_string(), "ringing".to_string())];
    let r = http
        .post(&url)
        .header("X-Twilio-Signature", voxgate::media::twilio::signature(TOKEN, &url, &params))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("ca_0000000000000000"));
    // Signed right, no call id.
    let url = format!("{gate}/twilio/outbound/answer");
    let r = http
        .post(&url)
        .header("X-Twilio-Signature", voxgate::media::twilio::signature(TOKEN, &url, &params))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A campaign with a bad time zone, and numbers with a bad row.
    let mut spec = bpb::CampaignSpec {
        name: "bad".into(),
        region_id: p.region.clone(),
        caller_id: "+15550000000".into(),
        weight: 1,
        max_concurrency: 5,
        window: Some(bpb::CallingWindow {
            time_zone: "Mars/Olympus".into(),
            start: "09:00".into(),
            end: "17:00".into(),
            days: vec![],
        }),
        ..Default::default()
    };
    let err = p
        .campaigns()
        .create_campaign(authed(&p.admin, bpb::CreateCampaignRequest { spec: Some(spec.clone()) }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("window.time_zone") && err.message().contains("Mars/Olympus"), "{}", err.message());
    spec.window.as_mut().unwrap().time_zone = "Europe/Paris".into();
    let id = p
        .campaigns()
        .create_campaign(authed(&p.admin, bpb::CreateCampaignRequest { spec: Some(spec) }))
        .await
        .unwrap()
        .into_inner()
        .id;
    let r = p
        .campaigns()
        .add_numbers(authed(
            &p.admin,
            bpb::AddNumbersRequest { campaign_id: id.clone(), numbers: vec!["+15551234567".into(), "12ab".into()] },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 1);
    assert_eq!(r.rejected.len(), 1);
    assert_eq!(r.rejected[0].row, 2);
    assert!(!r.rejected[0].reason.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_on_the_do_not_call_list_are_never_dialled() {
    let p = platform(Settings::default()).await;
    let dnc = || bpb::do_not_call_service_client::DoNotCallServiceClient::new(p.channel.clone());
    // The first two numbers of the campaign are on the global list.
    let global = vec!["+15551000000".to_string(), "+15551000001".to_string()];
    let added = dnc()
        .add_do_not_call(authed(&p.admin, bpb::AddDoNotCallRequest { campaign_id: String::new(), numbers: global }))
        .await
        .unwrap()
        .into_inner()
        .added;
    assert_eq!(added, 2);
    let bad = dnc()
        .add_do_not_call(authed(
            &p.admin,
            bpb::AddDoNotCallRequest {
                campaign_id: String::new(),
                numbers: vec!["+15551000003".into(), "call me".into()],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("numbers[1]"), "{}", bad.message());

    let id = p.campaign(10, 10, 0).await;
    p.until_done(&id, Duration::from_secs(120)).await;
    let calls = p.all_calls(&id).await;
    for number in ["+15551000000", "+15551000001"] {
        let c = calls.iter().find(|c| c.to_number == number).unwrap();
        assert_eq!(c.state(), bpb::CallState::Canceled);
        assert_eq!(c.end_reason, "do_not_call");
    }
    let carrier = p.carrier_calls().await;
    assert!(!carrier.iter().any(|c| c["to"] == "+15551000000" || c["to"] == "+15551000001"), "never dialled");
    assert!(carrier.iter().any(|c| c["to"] == "+15551000003"), "an invalid request added nothing");
    let listed = dnc()
        .list_do_not_call(authed(
            &p.admin,
            bpb::ListDoNotCallRequest { campaign_id: String::new(), limit: 0, after: String::new() },
        ))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(listed.len(), 2);
}
