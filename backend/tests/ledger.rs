//! The abandon ledger and the compliance report over gRPC, and do-not-call lists kept to
//! a campaign-scoped key. voxbridge runs in this process on a manual clock, so calls are
//! spread over simulated days: the test plays them through the stores at chosen instants
//! (as the dialler and gateway would move them) and reads the figures through the API.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests stop on failure")]

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use clap::Parser;
use common::{ADMIN_EMAIL, ADMIN_PASSWORD, authed, login};
use tonic::Code;
use tonic::transport::Channel;
use vox_domain::ManualClock;
use vox_domain::call::{Call, CallState, Transition};
use vox_proto::backend::v1 as pb;
use vox_store::Stores;

struct InProcess {
    channel: Channel,
    admin: String,
    stores: Stores,
    clock: Arc<ManualClock>,
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start(now: DateTime<Utc>) -> InProcess {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let args = voxbridge::config::Args::try_parse_from([
        "voxbridge",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data,
        "--admin-email",
        ADMIN_EMAIL,
        "--admin-password",
        ADMIN_PASSWORD,
    ])
    .unwrap();
    let settings = args.resolve().unwrap();
    let stores = voxbridge::open_stores(&settings).await.unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (s, c) = (stores.clone(), clock.clone() as Arc<dyn vox_domain::Clock>);
    tokio::spawn(async move {
        voxbridge::run_with(settings, s, c, listener, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap()
    });
    let channel = Channel::from_shared(url.clone()).unwrap().connect().await.unwrap();
    let admin = login(&channel, ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();
    InProcess { channel, admin, stores, clock, url, _stop: stop, _dir: dir }
}

impl InProcess {
    fn campaigns(&self) -> pb::campaign_service_client::CampaignServiceClient<Channel> {
        pb::campaign_service_client::CampaignServiceClient::new(self.channel.clone())
    }
    fn dnc(&self) -> pb::do_not_call_service_client::DoNotCallServiceClient<Channel> {
        pb::do_not_call_service_client::DoNotCallServiceClient::new(self.channel.clone())
    }

    /// A running campaign under `regime` with `n` numbers: its id.
    async fn campaign(&self, region_id: &str, regime: pb::ComplianceRegime, n: u32) -> String {
        let spec = pb::CampaignSpec {
            compliance: Some(pb::Compliance { regime: regime as i32, min_ring_seconds: 20 }),
            ..common::campaign_spec(region_id)
        };
        let create = pb::CreateCampaignRequest { spec: Some(spec) };
        let c = self.campaigns().create_campaign(authed(&self.admin, create)).await.unwrap().into_inner();
        let numbers = (0..n).map(|i| format!("+1415555{i:04}")).collect();
        let add = pb::AddNumbersRequest { campaign_id: c.id.clone(), numbers };
        self.campaigns().add_numbers(authed(&self.admin, add)).await.unwrap();
        let start = pb::CampaignActionRequest { id: c.id.clone() };
        self.campaigns().start_campaign(authed(&self.admin, start)).await.unwrap();
        c.id
    }

    async fn create_key(&self, campaign_id: &str, role: pb::Role) -> String {
        let req = pb::CreateApiKeyRequest { name: "crm".into(), role: role as i32, campaign_id: campaign_id.into() };
        let mut keys = pb::api_key_service_client::ApiKeyServiceClient::new(self.channel.clone());
        keys.create_api_key(authed(&self.admin, req)).await.unwrap().into_inner().secret
    }
}

fn to(call: &Call, state: CallState, reason: &str) -> Transition {
    Transition {
        call_id: call.id.clone(),
        to: Some(state),
        actor: "node:test".into(),
        reason: reason.into(),
        ..Default::default()
    }
}

/// Plays `call`: placed 20 s before `answer`, ringing 1 s after placing, then `path`
/// (its first move at `answer`).
async fn play(stores: &Stores, call: &Call, path: &[(CallState, &str)], answer: DateTime<Utc>) {
    let placed = answer - Duration::seconds(20);
    let mut c = call.clone();
    for (state, at) in [(CallState::Leased, placed), (CallState::Dialing, placed)] {
        c = stores.calls.transition_call(&to(&c, state, ""), at).await.unwrap();
    }
    c = stores.calls.transition_call(&to(&c, CallState::Ringing, ""), placed + Duration::seconds(1)).await.unwrap();
    for (i, (state, reason)) in path.iter().enumerate() {
        let at = answer + Duration::seconds(i as i64);
        c = stores.calls.transition_call(&to(&c, *state, reason), at).await.unwrap();
    }
}

fn instant(t: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.as_ref().map(|t| vox_domain::time::from_proto("t", t).unwrap())
}

/// (live answers, abandons) of `calls` answered in [from, to), by the ledger's rules.
fn recount(calls: &[pb::Call], from: DateTime<Utc>, to: DateTime<Utc>) -> (u64, u64) {
    let mut n = (0, 0);
    for c in calls {
        let answered = instant(&c.answered_at);
        if c.state() != pb::CallState::Machine && answered.is_some_and(|t| t >= from && t < to) {
            n.0 += 1;
            n.1 += u64::from(c.state() == pb::CallState::Abandoned);
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_over_simulated_days_equals_a_recount_and_the_report_lists_every_abandon() {
    // Tokens are checked against the wall clock too: start now, and sign in again after
    // the manual clock has moved on.
    let start_at = Utc.timestamp_opt(Utc::now().timestamp(), 0).unwrap();
    let mut b = start(start_at).await;
    let mut regions = pb::region_service_client::RegionServiceClient::new(b.channel.clone());
    let region = regions
        .create_region(authed(
            &b.admin,
            pb::CreateRegionRequest { name: "us-east-1".into(), country: "us".into(), storage: None },
        ))
        .await
        .unwrap()
        .into_inner();
    let ofcom = b.campaign(&region.id, pb::ComplianceRegime::Ofcom, 36).await;
    let other = b.campaign(&region.id, pb::ComplianceRegime::Fcc, 2).await;

    // 36 calls, one every 23 hours (34 simulated days), outcomes in a cycle.
    let with_message = "no_free_slot: no worker within 2000 ms";
    let paths: [&[(CallState, &str)]; 6] = [
        &[(CallState::Answered, "answered"), (CallState::Completed, "hangup_before_attach")],
        &[(CallState::Answered, "answered"), (CallState::Abandoned, with_message)],
        &[(CallState::Machine, "answering_machine")],
        &[(CallState::Answered, "answered"), (CallState::Abandoned, "no_free_slot")],
        &[(CallState::NoAnswer, "no_answer")],
        &[(CallState::Answered, "answered"), (CallState::Failed, "worker_lost")],
    ];
    let query = |id: &str| vox_store::CallQuery { campaign_id: Some(id.into()), limit: 1000, ..Default::default() };
    let mut calls = b.stores.calls.list_calls(&query(&ofcom)).await.unwrap();
    calls.sort_by(|x, y| x.to_number.cmp(&y.to_number));
    let first = start_at + Duration::hours(1);
    let mut last = first;
    for (i, call) in calls.iter().enumerate() {
        last = first + Duration::hours(23 * i as i64);
        play(&b.stores, call, paths[i % paths.len()], last).await;
    }
    let theirs = b.stores.calls.list_calls(&query(&other)).await.unwrap().remove(0);
    play(&b.stores, &theirs, paths[1], last).await;
    let now = last + Duration::hours(2);
    b.clock.set(now);
    b.admin = login(&b.channel, ADMIN_EMAIL, ADMIN_PASSWORD).await.unwrap();

    let ledger = b
        .campaigns()
        .get_abandon_ledger(authed(&b.admin, pb::GetAbandonLedgerRequest { campaign_id: ofcom.clone() }))
        .await
        .unwrap()
        .into_inner();
    let list = pb::ListCallsRequest { campaign_id: ofcom.clone(), limit: 1000, ..Default::default() };
    let mut call_api = pb::call_service_client::CallServiceClient::new(b.channel.clone());
    let records = call_api.list_calls(authed(&b.admin, list)).await.unwrap().into_inner().calls;
    assert_eq!(records.len(), 36);
    let day = ledger.last_24_hours.unwrap();
    let month = ledger.last_30_days.unwrap();
    assert_eq!((day.live_answers, day.abandons), recount(&records, now - Duration::hours(24), now));
    assert_eq!((month.live_answers, month.abandons), recount(&records, now - Duration::days(30), now));
    assert!(month.abandons >= 8 && month.live_answers > day.live_answers, "{month:?} {day:?}");
    assert!(month.machine_answers > 0, "machines are counted apart: {month:?}");
    assert_eq!((month.abandon_rate * 1e9).round(), (month.abandons as f64 / month.live_answers as f64 * 1e9).round());
    // Ofcom judges by the 24 hours; 3% is the limit.
    assert_eq!(ledger.regime(), pb::ComplianceRegime::Ofcom);
    assert_eq!(ledger.regulated, ledger.last_24_hours);
    assert_eq!(ledger.limit, 0.03);
    assert_eq!(ledger.within_limit, day.abandon_rate <= 0.03);
    assert!(!ledger.within_limit || day.abandons == 0);

    // The report: every abandon of the 30 days, over pages of 3, with ring time and message.
    let from = now - Duration::days(30);
    let mut rows = Vec::new();
    let mut page_token = String::new();
    loop {
        let req = pb::ListAbandonedCallsRequest {
            campaign_id: ofcom.clone(),
            from: Some(vox_domain::time::to_proto(from)),
            to: Some(vox_domain::time::to_proto(now)),
            limit: 3,
            page_token: page_token.clone(),
        };
        let page = b.campaigns().list_abandoned_calls(authed(&b.admin, req)).await.unwrap().into_inner();
        assert_eq!(page.period.as_ref().unwrap().abandons, month.abandons);
        rows.extend(page.calls);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut expected: Vec<&pb::Call> = records
        .iter()
        .filter(|c| {
            c.state() == pb::CallState::Abandoned && instant(&c.answered_at).is_some_and(|t| t >= from && t < now)
        })
        .collect();
    expected.sort_by_key(|c| instant(&c.answered_at));
    assert_eq!(rows.iter().map(|r| &r.call_id).collect::<Vec<_>>(), expected.iter().map(|c| &c.id).collect::<Vec<_>>());
    assert_eq!(rows.len() as u64, month.abandons);
    for r in &rows {
        assert_eq!(r.ring_seconds, 19.0, "ringing 1 s after placing, answered 20 s after: {r:?}");
        if r.end_reason == with_message {
            assert_eq!(r.message_played, vox_domain::campaign::ABANDON_MESSAGE);
        } else {
            assert!(r.message_played.starts_with("none:"), "{r:?}");
        }
    }

    // A key of the other campaign sees nothing of this one; this campaign's key reads it.
    let theirs_key = b.create_key(&other, pb::Role::Viewer).await;
    let err = b
        .campaigns()
        .get_abandon_ledger(authed(&theirs_key, pb::GetAbandonLedgerRequest { campaign_id: ofcom.clone() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let own_key = b.create_key(&ofcom, pb::Role::Operator).await;
    let own = pb::GetAbandonLedgerRequest { campaign_id: ofcom.clone() };
    let own = b.campaigns().get_abandon_ledger(authed(&own_key, own)).await.unwrap().into_inner();
    assert_eq!(own.last_30_days, ledger.last_30_days);

    // Bad periods are named.
    let req = pb::ListAbandonedCallsRequest {
        campaign_id: ofcom.clone(),
        from: Some(vox_domain::time::to_proto(now)),
        to: Some(vox_domain::time::to_proto(from)),
        ..Default::default()
    };
    let err = b.campaigns().list_abandoned_calls(authed(&b.admin, req)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("to:"), "{}", err.message());

    // /metrics carries the figures per campaign and period.
    let metrics = reqwest::get(format!("{}/metrics", b.url)).await.unwrap().text().await.unwrap();
    let line = format!("voxbridge_campaign_abandons{{campaign_id=\"{ofcom}\",period=\"30d\"}} {}", month.abandons);
    assert!(metrics.contains(&line), "no {line:?} in\n{metrics}");
    assert!(metrics.contains(&format!("voxbridge_campaign_abandon_rate{{campaign_id=\"{ofcom}\",period=\"24h\"}}")));

    // Do-not-call: the scoped key keeps to its own campaign's list.
    let add = |campaign_id: &str| pb::AddDoNotCallRequest {
        campaign_id: campaign_id.into(),
        numbers: vec!["+14155559999".into()],
    };
    let added = b.dnc().add_do_not_call(authed(&own_key, add(&ofcom))).await.unwrap().into_inner();
    assert_eq!(added.added, 1);
    let err = b.dnc().add_do_not_call(authed(&own_key, add(""))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "the global list is not the key's: {err:?}");
    let err = b.dnc().add_do_not_call(authed(&own_key, add(&other))).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "another campaign's list does not exist for the key: {err:?}");
    let list = |campaign_id: &str| pb::ListDoNotCallRequest { campaign_id: campaign_id.into(), ..Default::default() };
    let entries = b.dnc().list_do_not_call(authed(&own_key, list(&ofcom))).await.unwrap().into_inner().entries;
    assert_eq!(entries.len(), 1);
    assert!(entries[0].added_by.starts_with("key:"), "{:?}", entries[0]);
    assert_eq!(b.dnc().list_do_not_call(authed(&own_key, list(""))).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(b.dnc().list_do_not_call(authed(&theirs_key, list(&ofcom))).await.unwrap_err().code(), Code::NotFound);
    // An operator's key may not remove; an admin (unscoped) may.
    let remove = pb::RemoveDoNotCallRequest { campaign_id: ofcom.clone(), numbers: vec!["+14155559999".into()] };
    let err = b.dnc().remove_do_not_call(authed(&own_key, remove.clone())).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(b.dnc().remove_do_not_call(authed(&b.admin, remove)).await.unwrap().into_inner().removed, 1);
}
