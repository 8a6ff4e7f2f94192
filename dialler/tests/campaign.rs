//! A 200-number campaign dialled end to end through voxsim, at 30× time.
#![allow(clippy::unwrap_used, reason = "tests stop on failure")]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{Settings, assert_no_double_dials, platform, until};
use vox_proto::backend::v1 as bpb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_number_campaign_reaches_an_end_for_every_number() {
    let p = platform(Settings::default()).await;
    let id = p.campaign(200, 50, 0).await;
    p.until_done(&id, Duration::from_secs(240)).await;

    let calls = p.all_calls(&id).await;
    // Every number reached an end, on its last attempt.
    let mut last: HashMap<&str, &bpb::Call> = HashMap::new();
    for c in &calls {
        let e = last.entry(c.to_number.as_str()).or_insert(c);
        if c.attempt > e.attempt {
            *e = c;
        }
    }
    assert_eq!(last.len(), 200, "every number has calls");
    for (number, c) in &last {
        assert!(
            matches!(
                c.state(),
                bpb::CallState::Completed
                    | bpb::CallState::NoAnswer
                    | bpb::CallState::Busy
                    | bpb::CallState::Failed
                    | bpb::CallState::Abandoned
                    | bpb::CallState::Machine
            ),
            "{number} ended {:?}",
            c.state()
        );
    }
    // Retries follow the policy: only no-answer and busy, at most 2 attempts.
    for c in calls.iter().filter(|c| c.attempt == 2) {
        let first = calls.iter().find(|f| f.id == c.retry_of).unwrap();
        assert!(matches!(first.state(), bpb::CallState::NoAnswer | bpb::CallState::Busy), "{first:?}");
    }
    assert!(calls.iter().all(|c| c.attempt <= 2));

    // The carrier's view: no number in two calls at once, no call placed twice.
    let carrier = p.carrier_calls().await;
    assert_no_double_dials(&carrier);

    // Calls that reached a worker have recordings (uploaded just after they end).
    let connected: Vec<String> = calls
        .iter()
        .filter(|c| c.state() == bpb::CallState::Completed && !c.node_id.is_empty())
        .map(|c| c.id.clone())
        .collect();
    assert!(connected.len() >= 40, "a good share of calls connected to workers: {}", connected.len());
    until("every connected call's recording", Duration::from_secs(30), async || {
        let calls = p.all_calls(&id).await;
        let missing: Vec<&String> =
            connected.iter().filter(|id| calls.iter().any(|c| &&c.id == id && c.recording.is_none())).collect();
        missing.is_empty().then_some(())
    })
    .await;
    let machines = calls.iter().filter(|c| c.state() == bpb::CallState::Machine).count();
    assert!(machines > 0, "answering machines are their own outcome");
    assert!(calls.iter().filter(|c| c.state() == bpb::CallState::Machine).all(|c| c.answered_at.is_none()));

    // The dialler's /metrics match the call records (one tick after the last change).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = p.dialler_metrics(0).await;
    let calls = p.all_calls(&id).await;
    let metric =
        |name: &str| m.get(&format!("voxdialler_{name}_total{{campaign_id=\"{id}\"}}")).copied().unwrap_or(-1.0);
    let placed = calls.iter().filter(|c| !c.provider_call_id.is_empty()).count() as f64;
    let answered = calls.iter().filter(|c| c.answered_at.is_some()).count() as f64;
    let abandoned = calls.iter().filter(|c| c.state() == bpb::CallState::Abandoned).count() as f64;
    assert_eq!(metric("calls_placed"), placed, "placed");
    assert_eq!(metric("calls_placed"), carrier.len() as f64, "the carrier saw every placed call");
    assert_eq!(metric("calls_answered"), answered, "answered");
    assert_eq!(metric("calls_abandoned"), abandoned, "abandoned");
    let ids: HashSet<&str> = calls.iter().map(|c| c.id.as_str()).collect();
    assert!(carrier.iter().all(|c| ids.contains(c["call_id"].as_str().unwrap_or_default())));
    let (code, health) = p.dialler_health(0).await;
    assert_eq!(code, 200, "{health}");
    assert!(m.get("voxdialler_leader_term").copied().unwrap_or(0.0) >= 1.0);

    // The leader's pacing figures reached the activity feed while the campaign ran, as the
    // leading dialler at its term, counting up to what the carrier saw.
    let (leader, term) = p.leader().await;
    let mut events = bpb::event_service_client::EventServiceClient::new(p.channel.clone());
    let req = bpb::ListEventsRequest {
        campaign_id: id.clone(),
        types: vec!["campaign.pacing".into()],
        page_size: 1000,
        ..Default::default()
    };
    let reports: Vec<(bpb::PacingFigures, String, u64)> = events
        .list_events(common::authed(&p.admin, req))
        .await
        .unwrap()
        .into_inner()
        .events
        .into_iter()
        .map(|e| match e.subject {
            Some(bpb::event::Subject::Pacing(r)) => (r.figures.unwrap(), r.dialler_id, r.fencing_term),
            other => panic!("a campaign.pacing event carries pacing: {other:?}"),
        })
        .collect();
    assert!(reports.len() >= 2, "the campaign ran long enough for several reports: {}", reports.len());
    assert!(
        reports.iter().all(|(f, d, t)| f.campaign_id == id && f.mode == "predictive" && *d == leader && *t == term)
    );
    assert!(reports.windows(2).all(|w| w[0].0.calls_placed <= w[1].0.calls_placed), "placed counts up");
    let last_placed = reports.last().map(|r| r.0.calls_placed).unwrap_or(0) as f64;
    assert!(last_placed > 0.0 && last_placed <= placed, "reported {last_placed} of {placed} placed");
    println!(
        "{} calls ({} numbers): {placed} placed, {answered} answered, {abandoned} abandoned, {machines} machines, {} connected",
        calls.len(),
        last.len(),
        connected.len()
    );
}
