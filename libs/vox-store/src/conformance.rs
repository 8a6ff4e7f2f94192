//! The conformance suite: what every implementation of the storage traits must do.
//!
//! A backend runs it with [`conformance_tests!`](crate::conformance_tests), given an
//! async factory that returns a fresh, empty [`Harness`]:
//!
//! ```ignore
//! async fn fresh() -> vox_store::conformance::Harness { /* new empty stores */ }
//! vox_store::conformance_tests!(fresh);
//! ```
//!
//! Each check takes the stores and a starting time, and moves time by passing later
//! instants, so nothing here sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failure should stop the check")]

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::StreamExt;
use vox_domain::ErrorCode;
use vox_domain::call::{Call, CallState, Channel, Direction, Recording, StaleDeadlines, Transition};
use vox_domain::campaign::{
    AgentKind, AgentSettings, CallingWindow, Campaign, CampaignSpec, CampaignStatus, Pacing, PacingMode, RetryPolicy,
};
use vox_domain::ids;
use vox_domain::node::{AuditEvent, DesiredState, Node, NodeKind, Presence, WorkerSlot, WorkerState};
use vox_domain::phone::E164;
use vox_domain::region::{Region, RegionStorage};
use vox_domain::user::{Role, User};

use crate::{CallQuery, ClusterEvent, LeaseRequest, NodeFilter, Stores};

mod feed;
mod ledger;
pub mod queue;
mod stale_updates;
mod webhooks;
pub use feed::*;
pub use ledger::*;
pub use stale_updates::*;
pub use webhooks::*;

/// Fresh, empty stores and whatever must live as long as they do (a temp dir, a server).
pub struct Harness {
    pub stores: Stores,
    pub guard: Box<dyn std::any::Any + Send>,
}

/// Generates one `#[tokio::test]` per conformance check for a backend.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!(@each $factory;
            regions_round_trip, region_names_are_unique, regions_in_use_cannot_be_deleted,
            nodes_round_trip_and_filter, singleton_nodes_are_unique, desired_state_is_conditional_and_audited,
            audit_lists_newest_first_and_filters,
            a_stale_node_update_keeps_the_lifecycle, concurrent_renames_keep_every_lifecycle_change,
            session_ending_user_changes_move_the_token_generation, user_changes_keep_concurrent_changes,
            campaign_status_follows_its_rules, add_numbers_reports_numbers_already_there,
            large_uploads_land_whole, completing_a_campaign_cancels_its_pending_calls,
            inbound_calls_round_trip, transitions_follow_the_state_machine_and_are_recorded, recordings_attach_in_any_state,
            stale_fencing_terms_are_refused, lease_tokens_must_match,
            lease_calls_respects_status_due_time_and_max, concurrent_leasers_never_share_a_call,
            retries_are_scheduled_per_policy, expired_leases_return_to_pending_exactly_once,
            stuck_calls_are_reaped_exactly_once, list_calls_filters_and_pages, call_totals_feed_the_dashboard,
            leadership_terms_strictly_increase,
            users_round_trip_with_unique_emails, the_last_admin_is_protected,
            do_not_call_lists_are_global_or_per_campaign, api_keys_round_trip_and_stay_revoked,
            presence_round_trip, events_reach_subscribers, health_ping,
            the_abandon_ledger_equals_a_recount_of_the_calls,
            the_feed_reports_each_visible_move_in_order,
            a_reader_resuming_from_its_last_id_misses_nothing_under_concurrent_writes,
            pruning_the_feed_leaves_a_mark_and_never_reuses_ids,
            only_the_leader_at_its_term_reports_to_the_feed,
            reports_of_work_done_append_in_order,
            webhook_endpoints_round_trip_with_their_deliveries,
            the_webhook_cursor_moves_only_from_where_it_is);
    };
    (@each $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let harness = $factory().await;
                $crate::conformance::$name(&harness.stores, $crate::conformance::t0()).await;
                drop(harness);
            }
        )*
    };
}

/// The suite's starting instant: Monday 2026-11-23 15:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap()
}

// ---- fixtures --------------------------------------------------------------------------

fn region(name: &str, now: DateTime<Utc>) -> Region {
    Region {
        id: ids::new_id(ids::REGION),
        name: name.into(),
        country: "US".into(),
        storage: Some(RegionStorage {
            endpoint_url: "http://minio:9000".into(),
            bucket: "recordings".into(),
            access_key: "AK".into(),
            secret_key_ciphertext: Some("v1:opaque".into()),
            use_ssl: false,
            signing_region: "us-east-1".into(),
            force_path_style: true,
        }),
        created_at: now,
        updated_at: now,
    }
}

fn node(kind: NodeKind, region_id: Option<&str>, now: DateTime<Utc>) -> Node {
    Node {
        id: ids::new_id(ids::NODE),
        kind,
        region_id: region_id.map(String::from),
        name: kind.as_str().into(),
        endpoint: "http://10.0.0.5:5002".into(),
        sip_port: kind.default_sip_port(),
        desired_state: DesiredState::Active,
        secret_hash: "ab".repeat(32),
        shutdown_boot_id: None,
        created_at: now,
        updated_at: now,
    }
}

fn audit(action: &str, target: &str, at: DateTime<Utc>) -> AuditEvent {
    AuditEvent {
        id: ids::new_id(ids::AUDIT),
        at,
        actor: "user:admin@vox.test".into(),
        action: action.into(),
        target_id: target.into(),
        reason: "conformance".into(),
    }
}

/// A valid campaign spec in `region_id`, calling all day UTC, with `retry`.
pub fn spec(region_id: &str, retry: RetryPolicy) -> CampaignSpec {
    CampaignSpec {
        name: "renewals".into(),
        region_id: region_id.into(),
        caller_id: E164::parse("+14155550100").unwrap(),
        agent: AgentSettings {
            kind: AgentKind::Echo,
            prompt_key: String::new(),
            external_url: String::new(),
            params: Default::default(),
        },
        weight: 1,
        max_concurrency: 10,
        window: CallingWindow {
            time_zone: "UTC".into(),
            start: chrono::NaiveTime::MIN,
            end: chrono::NaiveTime::from_hms_opt(23, 59, 59).unwrap(),
            days: vec![],
        },
        retry,
        pacing: Pacing {
            mode: PacingMode::Predictive,
            fixed_ratio: 1.0,
            abandon_target: 0.03,
            max_calls_per_second: 0,
        },
        compliance: Default::default(),
    }
}

/// One attempt per number.
pub fn no_retry() -> RetryPolicy {
    RetryPolicy { max_attempts: 1, backoff_seconds: 60, backoff_multiplier: 1.0, retry_on: vec![] }
}

fn numbers(n: usize) -> Vec<(u32, E164)> {
    (0..n).map(|i| (i as u32 + 1, E164::parse(&format!("+1415555{:04}", i)).unwrap())).collect()
}

/// A region and a running campaign holding `n` pending calls.
async fn running_campaign(s: &Stores, n: usize, retry: RetryPolicy, now: DateTime<Utc>) -> Campaign {
    let r = region(&format!("r-{}", ids::random_token(6)), now);
    s.regions.insert_region(&r).await.unwrap();
    let c = Campaign {
        id: ids::new_id(ids::CAMPAIGN),
        spec: spec(&r.id, retry),
        status: CampaignStatus::Draft,
        created_at: now,
        updated_at: now,
    };
    s.campaigns.insert_campaign(&c).await.unwrap();
    if n > 0 {
        assert!(s.campaigns.add_numbers(&c.id, &numbers(n), now).await.unwrap().is_empty());
    }
    s.campaigns.set_campaign_status(&c.id, CampaignStatus::Running, "user:op@vox.test", now).await.unwrap()
}

fn lease_req(campaign: &str, max: usize, owner: &str, term: u64) -> LeaseRequest {
    LeaseRequest {
        campaign_id: campaign.into(),
        max,
        owner: owner.into(),
        fencing_term: term,
        ttl: Duration::seconds(30),
    }
}

fn move_to(call: &Call, to: CallState, term: u64) -> Transition {
    Transition {
        call_id: call.id.clone(),
        to: Some(to),
        actor: "node:dialler".into(),
        fencing_term: term,
        lease_token: call.lease.as_ref().map(|l| l.token.clone()).unwrap_or_default(),
        require_lease_token: term > 0,
        ..Default::default()
    }
}

/// Walks a leased call to `in_progress`.
async fn to_in_progress(s: &Stores, call: &Call, term: u64, now: DateTime<Utc>) -> Call {
    let mut c = call.clone();
    for state in
        [CallState::Dialing, CallState::Ringing, CallState::Answered, CallState::Attaching, CallState::InProgress]
    {
        c = s.calls.transition_call(&move_to(&c, state, term), now).await.unwrap();
    }
    c
}

// ---- regions ---------------------------------------------------------------------------

pub async fn regions_round_trip(s: &Stores, now: DateTime<Utc>) {
    let b = region("us-west-2", now);
    let a = region("eu-central-1", now);
    s.regions.insert_region(&b).await.unwrap();
    s.regions.insert_region(&a).await.unwrap();
    assert_eq!(s.regions.get_region(&b.id).await.unwrap().as_ref(), Some(&b));
    assert_eq!(s.regions.get_region("rg_missing").await.unwrap(), None);
    let names: Vec<String> = s.regions.list_regions().await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["eu-central-1", "us-west-2"]);

    let mut renamed = b.clone();
    renamed.name = "us-west-3".into();
    renamed.storage = None;
    renamed.updated_at = now + Duration::seconds(5);
    s.regions.update_region(&renamed).await.unwrap();
    assert_eq!(s.regions.get_region(&b.id).await.unwrap(), Some(renamed));
}

pub async fn region_names_are_unique(s: &Stores, now: DateTime<Utc>) {
    let a = region("us-east-1", now);
    s.regions.insert_region(&a).await.unwrap();
    let dup = region("us-east-1", now);
    assert_eq!(s.regions.insert_region(&dup).await.unwrap_err().code, ErrorCode::AlreadyExists);
    let b = region("us-east-2", now);
    s.regions.insert_region(&b).await.unwrap();
    let clash = Region { name: "us-east-1".into(), ..b.clone() };
    assert_eq!(s.regions.update_region(&clash).await.unwrap_err().code, ErrorCode::AlreadyExists);
    assert_eq!(s.regions.get_region(&b.id).await.unwrap().unwrap().name, "us-east-2");
    let ghost = region("ghost", now);
    assert_eq!(s.regions.update_region(&ghost).await.unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(s.regions.list_regions().await.unwrap().len(), 2);
}

pub async fn regions_in_use_cannot_be_deleted(s: &Stores, now: DateTime<Utc>) {
    let r = region("om-mct", now);
    s.regions.insert_region(&r).await.unwrap();
    let n = node(NodeKind::Fleet, Some(&r.id), now);
    s.nodes.insert_node(&n, &audit("node.register", &n.id, now)).await.unwrap();
    let err = s.regions.delete_region(&r.id).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::FailedPrecondition, "{err}");
    s.nodes.delete_node(&n.id, &audit("node.delete", &n.id, now)).await.unwrap();

    let c = Campaign {
        id: ids::new_id(ids::CAMPAIGN),
        spec: spec(&r.id, no_retry()),
        status: CampaignStatus::Draft,
        created_at: now,
        updated_at: now,
    };
    s.campaigns.insert_campaign(&c).await.unwrap();
    assert_eq!(s.regions.delete_region(&r.id).await.unwrap_err().code, ErrorCode::FailedPrecondition);
    assert!(s.regions.get_region(&r.id).await.unwrap().is_some());

    let empty = region("empty", now);
    s.regions.insert_region(&empty).await.unwrap();
    s.regions.delete_region(&empty.id).await.unwrap();
    assert_eq!(s.regions.get_region(&empty.id).await.unwrap(), None);
    assert_eq!(s.regions.delete_region(&empty.id).await.unwrap_err().code, ErrorCode::NotFound);
}

// ---- nodes and audit -------------------------------------------------------------------

pub async fn nodes_round_trip_and_filter(s: &Stores, now: DateTime<Utc>) {
    let r1 = region("r1", now);
    let r2 = region("r2", now);
    s.regions.insert_region(&r1).await.unwrap();
    s.regions.insert_region(&r2).await.unwrap();
    let f1 = node(NodeKind::Fleet, Some(&r1.id), now);
    let g1 = node(NodeKind::Gateway, Some(&r1.id), now + Duration::seconds(1));
    let f2 = node(NodeKind::Fleet, Some(&r2.id), now + Duration::seconds(2));
    for n in [&f1, &g1, &f2] {
        s.nodes.insert_node(n, &audit("node.register", &n.id, now)).await.unwrap();
    }
    assert_eq!(s.nodes.get_node(&g1.id).await.unwrap().as_ref(), Some(&g1));
    assert_eq!(s.nodes.get_node("nd_missing").await.unwrap(), None);
    let ids_of = |v: Vec<Node>| v.into_iter().map(|n| n.id).collect::<Vec<_>>();
    assert_eq!(
        ids_of(s.nodes.list_nodes(&NodeFilter::default()).await.unwrap()),
        [f1.id.clone(), g1.id.clone(), f2.id.clone()]
    );
    let in_r1 = NodeFilter { region_id: Some(r1.id.clone()), kind: None };
    assert_eq!(ids_of(s.nodes.list_nodes(&in_r1).await.unwrap()), [f1.id.clone(), g1.id.clone()]);
    let fleets = NodeFilter { region_id: None, kind: Some(NodeKind::Fleet) };
    assert_eq!(ids_of(s.nodes.list_nodes(&fleets).await.unwrap()), [f1.id.clone(), f2.id.clone()]);

    let mut changed = f1.clone();
    changed.endpoint = "http://10.0.0.6:5002".into();
    changed.secret_hash = "cd".repeat(32);
    s.nodes.update_node(&changed, &audit("node.secret.rotate", &f1.id, now)).await.unwrap();
    assert_eq!(s.nodes.get_node(&f1.id).await.unwrap(), Some(changed));
    let ghost = node(NodeKind::Fleet, Some(&r1.id), now);
    assert_eq!(s.nodes.update_node(&ghost, &audit("x", &ghost.id, now)).await.unwrap_err().code, ErrorCode::NotFound);

    s.nodes.delete_node(&g1.id, &audit("node.delete", &g1.id, now)).await.unwrap();
    assert_eq!(s.nodes.get_node(&g1.id).await.unwrap(), None);
    assert_eq!(
        s.nodes.delete_node(&g1.id, &audit("node.delete", &g1.id, now)).await.unwrap_err().code,
        ErrorCode::NotFound
    );
    let trail = s.audit.list_audit(Some(&f1.id), 10).await.unwrap();
    assert_eq!(trail.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(), ["node.secret.rotate", "node.register"]);
}

pub async fn singleton_nodes_are_unique(s: &Stores, now: DateTime<Utc>) {
    for kind in [NodeKind::Console, NodeKind::Background] {
        let first = node(kind, None, now);
        s.nodes.insert_node(&first, &audit("node.register", &first.id, now)).await.unwrap();
        let second = node(kind, None, now);
        let err = s.nodes.insert_node(&second, &audit("node.register", &second.id, now)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::AlreadyExists, "{kind:?}");
        assert_eq!(s.nodes.get_node(&second.id).await.unwrap(), None);
        assert!(s.audit.list_audit(Some(&second.id), 10).await.unwrap().is_empty(), "no audit for a refused write");
    }
    for _ in 0..2 {
        let d = node(NodeKind::Dialler, None, now);
        s.nodes.insert_node(&d, &audit("node.register", &d.id, now)).await.unwrap();
    }
}

pub async fn desired_state_is_conditional_and_audited(s: &Stores, now: DateTime<Utc>) {
    let r = region("r", now);
    s.regions.insert_region(&r).await.unwrap();
    let n = node(NodeKind::Fleet, Some(&r.id), now);
    s.nodes.insert_node(&n, &audit("node.register", &n.id, now)).await.unwrap();

    let later = now + Duration::seconds(3);
    let updated = s
        .nodes
        .set_desired_state(
            &n.id,
            DesiredState::Active,
            DesiredState::Maintenance,
            None,
            &audit("node.maintenance", &n.id, later),
        )
        .await
        .unwrap();
    assert_eq!(updated.desired_state, DesiredState::Maintenance);
    assert_eq!(s.nodes.get_node(&n.id).await.unwrap().unwrap().desired_state, DesiredState::Maintenance);

    // A change based on a state that no longer holds changes nothing, audit included.
    let err = s
        .nodes
        .set_desired_state(
            &n.id,
            DesiredState::Active,
            DesiredState::Disabled,
            None,
            &audit("node.disable", &n.id, later),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::FailedPrecondition);
    assert_eq!(s.nodes.get_node(&n.id).await.unwrap().unwrap().desired_state, DesiredState::Maintenance);
    let actions: Vec<String> =
        s.audit.list_audit(Some(&n.id), 10).await.unwrap().into_iter().map(|a| a.action).collect();
    assert_eq!(actions, ["node.maintenance", "node.register"]);

    let shut = s
        .nodes
        .set_desired_state(
            &n.id,
            DesiredState::Maintenance,
            DesiredState::Shutdown,
            Some("boot-1".into()),
            &audit("node.shutdown", &n.id, later),
        )
        .await
        .unwrap();
    assert_eq!(shut.shutdown_boot_id.as_deref(), Some("boot-1"));
    let missing = s
        .nodes
        .set_desired_state(
            "nd_missing",
            DesiredState::Active,
            DesiredState::Maintenance,
            None,
            &audit("x", "nd_missing", later),
        )
        .await
        .unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
}

pub async fn audit_lists_newest_first_and_filters(s: &Stores, now: DateTime<Utc>) {
    for i in 0..5 {
        s.audit
            .append_audit(&audit(&format!("a{i}"), if i % 2 == 0 { "even" } else { "odd" }, now + Duration::seconds(i)))
            .await
            .unwrap();
    }
    let all: Vec<String> = s.audit.list_audit(None, 10).await.unwrap().into_iter().map(|a| a.action).collect();
    assert_eq!(all, ["a4", "a3", "a2", "a1", "a0"]);
    let two: Vec<String> = s.audit.list_audit(None, 2).await.unwrap().into_iter().map(|a| a.action).collect();
    assert_eq!(two, ["a4", "a3"]);
    let odd: Vec<String> = s.audit.list_audit(Some("odd"), 10).await.unwrap().into_iter().map(|a| a.action).collect();
    assert_eq!(odd, ["a3", "a1"]);
}

// ---- campaigns -------------------------------------------------------------------------

pub async fn campaign_status_follows_its_rules(s: &Stores, now: DateTime<Utc>) {
    let r = region("r", now);
    s.regions.insert_region(&r).await.unwrap();
    let c = Campaign {
        id: ids::new_id(ids::CAMPAIGN),
        spec: spec(&r.id, no_retry()),
        status: CampaignStatus::Draft,
        created_at: now,
        updated_at: now,
    };
    s.campaigns.insert_campaign(&c).await.unwrap();
    assert_eq!(s.campaigns.get_campaign(&c.id).await.unwrap().as_ref(), Some(&c));
    let actor = "user:op@vox.test";
    let err = s.campaigns.set_campaign_status(&c.id, CampaignStatus::Paused, actor, now).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::FailedPrecondition, "a draft cannot be paused");
    assert_eq!(
        s.campaigns.set_campaign_status(&c.id, CampaignStatus::Running, actor, now).await.unwrap().status,
        CampaignStatus::Running
    );
    let running = s.campaigns.list_campaigns(Some(CampaignStatus::Running)).await.unwrap();
    assert_eq!(running.len(), 1);
    assert!(s.campaigns.list_campaigns(Some(CampaignStatus::Draft)).await.unwrap().is_empty());
    assert_eq!(
        s.campaigns.set_campaign_status(&c.id, CampaignStatus::Paused, actor, now).await.unwrap().status,
        CampaignStatus::Paused
    );

    let mut new_spec = c.spec.clone();
    new_spec.weight = 7;
    let later = now + Duration::seconds(9);
    let updated = s.campaigns.update_campaign_spec(&c.id, &new_spec, later).await.unwrap();
    assert_eq!(updated.spec.weight, 7);
    assert_eq!(updated.updated_at, later);
    assert_eq!(updated.status, CampaignStatus::Paused);

    s.campaigns.set_campaign_status(&c.id, CampaignStatus::Completed, actor, now).await.unwrap();
    assert_eq!(
        s.campaigns.update_campaign_spec(&c.id, &c.spec, now).await.unwrap_err().code,
        ErrorCode::FailedPrecondition
    );
    assert_eq!(
        s.campaigns.set_campaign_status(&c.id, CampaignStatus::Running, actor, now).await.unwrap_err().code,
        ErrorCode::FailedPrecondition
    );
    assert_eq!(s.campaigns.get_campaign(&c.id).await.unwrap().unwrap().spec.weight, 7);
    assert_eq!(
        s.campaigns.set_campaign_status("cp_missing", CampaignStatus::Running, actor, now).await.unwrap_err().code,
        ErrorCode::NotFound
    );
}

pub async fn add_numbers_reports_numbers_already_there(s: &Stores, now: DateTime<Utc>) {
    let c = running_campaign(s, 3, no_retry(), now).await;
    let again = vec![(1, E164::parse("+14155550009").unwrap()), (2, E164::parse("+14155550001").unwrap())];
    assert_eq!(s.campaigns.add_numbers(&c.id, &again, now).await.unwrap(), vec![2]);
    let counts = s.campaigns.campaign_counts(&c.id).await.unwrap();
    assert_eq!((counts.total, counts.pending), (4, 4));
    let calls = s
        .calls
        .list_calls(&CallQuery { campaign_id: Some(c.id.clone()), limit: 100, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(calls.len(), 4);
    for call in &calls {
        assert_eq!(call.state, CallState::Pending);
        assert_eq!(call.attempt, 1);
        assert_eq!(call.from_number, "+14155550100");
        assert_eq!(s.calls.list_call_events(&call.id).await.unwrap().len(), 1);
    }
    assert_eq!(s.campaigns.add_numbers("cp_missing", &again, now).await.unwrap_err().code, ErrorCode::NotFound);
}

/// An upload larger than one MongoDB transaction (5,000 numbers) lands whole, reports the
/// numbers the campaign had wherever they sit, and a refused one adds nothing.
pub async fn large_uploads_land_whole(s: &Stores, now: DateTime<Utc>) {
    let n = 6_001;
    let upload: Vec<(u32, E164)> =
        (0..n).map(|i| (i as u32 + 2, E164::parse(&format!("+1415{:07}", i)).unwrap())).collect();
    let c = running_campaign(s, 0, no_retry(), now).await;
    // Already there: one number in the first chunk, one in the last.
    let there = vec![(1, upload[10].1.clone()), (2, upload[6_000].1.clone())];
    assert!(s.campaigns.add_numbers(&c.id, &there, now).await.unwrap().is_empty());
    let already = s.campaigns.add_numbers(&c.id, &upload, now).await.unwrap();
    assert_eq!(already, vec![12, 6_002], "the caller's rows of the numbers already there");
    let counts = s.campaigns.campaign_counts(&c.id).await.unwrap();
    assert_eq!((counts.total, counts.pending), (n as u64, n as u64));

    let done = running_campaign(s, 0, no_retry(), now).await;
    s.campaigns.set_campaign_status(&done.id, CampaignStatus::Completed, "user:op@vox.test", now).await.unwrap();
    let e = s.campaigns.add_numbers(&done.id, &upload, now).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::FailedPrecondition, "{e}");
    assert_eq!(s.campaigns.campaign_counts(&done.id).await.unwrap().total, 0);
    assert_eq!(s.campaigns.add_numbers("cp_missing", &upload, now).await.unwrap_err().code, ErrorCode::NotFound);
}

pub async fn completing_a_campaign_cancels_its_pending_calls(s: &Stores, now: DateTime<Utc>) {
    let c = running_campaign(s, 5, no_retry(), now).await;
    let term = s.leadership.acquire_leadership("d1", Duration::seconds(10), now).await.unwrap().term;
    let leased = s.calls.lease_calls(&lease_req(&c.id, 2, "d1", term), now).await.unwrap();
    assert_eq!(leased.len(), 2);
    s.campaigns.set_campaign_status(&c.id, CampaignStatus::Completed, "user:op@vox.test", now).await.unwrap();
    let counts = s.campaigns.campaign_counts(&c.id).await.unwrap();
    assert_eq!((counts.total, counts.pending, counts.live, counts.unsuccessful), (5, 0, 2, 3));
    let canceled = s
        .calls
        .list_calls(&CallQuery {
            campaign_id: Some(c.id.clone()),
            states: vec![CallState::Canceled],
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(canceled.len(), 3);
    let events = s.calls.list_call_events(&canceled[0].id).await.unwrap();
    assert_eq!(events.last().unwrap().to_state, CallState::Canceled);
    assert_eq!(events.last().unwrap().actor, "user:op@vox.test");
    assert_eq!(s.campaigns.add_numbers(&c.id, &numbers(1), now).await.unwrap_err().code, ErrorCode::FailedPrecondition);
}

// ---- calls -----------------------------------------------------------------------------

fn inbound(region_id: &str, channel: Channel, now: DateTime<Utc>) -> Call {
    Call {
        id: ids::new_id(ids::CALL),
        campaign_id: None,
        region_id: region_id.into(),
        direction: Direction::Inbound,
        channel,
        to_number: "+14155550100".into(),
        from_number: "+14155550199".into(),
        state: CallState::Answered,
        attempt: 1,
        retry_of: None,
        due_at: now,
        lease: None,
        provider_call_id: "CA123".into(),
        node_id: String::new(),
        worker_index: 0,
        recording: None,
        end_reason: String::new(),
        created_at: now,
        updated_at: now,
        state_since: now,
        answered_at: Some(now),
        ended_at: None,
        version: 1,
    }
}

pub async fn inbound_calls_round_trip(s: &Stores, now: DateTime<Utc>) {
    let call = inbound("rg_1", Channel::Web, now);
    s.calls.insert_call(&call, "node:gw").await.unwrap();
    assert_eq!(s.calls.get_call(&call.id).await.unwrap().as_ref(), Some(&call));
    let events = s.calls.list_call_events(&call.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].seq, events[0].to_state, events[0].actor.as_str()), (1, CallState::Answered, "node:gw"));
    assert_eq!(s.calls.insert_call(&call, "node:gw").await.unwrap_err().code, ErrorCode::AlreadyExists);
    assert_eq!(s.calls.get_call("ca_missing").await.unwrap(), None);
}

pub async fn transitions_follow_the_state_machine_and_are_recorded(s: &Stores, now: DateTime<Utc>) {
    let c = running_campaign(s, 1, no_retry(), now).await;
    let term = s.leadership.acquire_leadership("d1", Duration::seconds(10), now).await.unwrap().term;
    let leased = s.calls.lease_calls(&lease_req(&c.id, 1, "d1", term), now).await.unwrap().remove(0);
    assert_eq!(leased.state, CallState::Leased);
    let lease = leased.lease.clone().unwrap();
    assert_eq!((lease.owner.as_str(), lease.fencing_term), ("d1", term));
    assert_eq!(lease.expires_at, now + Duration::seconds(30));

    // An illegal move changes nothing.
    let err = s.calls.transition_call(&move_to(&leased, CallState::InProgress, term), now).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::FailedPrecondition);
    assert!(err.message.contains("leased -> in_progress"), "{err}");
    assert_eq!(s.calls.get_call(&leased.id).await.unwrap().as_ref(), Some(&leased));

    let mut t = move_to(&leased, CallState::Dialing, term);
    t.provider_call_id = Some("CA42".into());
    let dialing = s.calls.transition_call(&t, now + Duration::seconds(1)).await.unwrap();
    assert_eq!(dialing.provider_call_id, "CA42");
    assert_eq!(dialing.version, leased.version + 1);
    let mut call = dialing;
    for state in [CallState::Ringing, CallState::Answered] {
        call = s.calls.transition_call(&move_to(&call, state, term), now + Duration::seconds(5)).await.unwrap();
    }
    assert_eq!(call.answered_at, Some(now + Duration::seconds(5)));
    let attach = Transition {
        node_id: Some("nd_fleet".into()),
        worker_index: Some(3),
        actor: "node:gw".into(),
        fencing_term: 0,
        ..move_to(&call, CallState::Attaching, 0)
    };
    call = s.calls.transition_call(&attach, now + Duration::seconds(6)).await.unwrap();
    assert_eq!((call.node_id.as_str(), call.worker_index), ("nd_fleet", 3));
    call =
        s.calls.transition_call(&move_to(&call, CallState::InProgress, 0), now + Duration::seconds(6)).await.unwrap();
    let done = Transition {
        recording: Some(Recording { key: "rec/a.wav".into(), duration_ms: 10_000, size_bytes: 320_044 }),
        reason: "caller_hangup".into(),
        ..move_to(&call, CallState::Completed, 0)
    };
    call = s.calls.transition_call(&done, now + Duration::seconds(20)).await.unwrap();
    assert_eq!(call.state, CallState::Completed);
    assert_eq!(call.end_reason, "caller_hangup");
    assert_eq!(call.ended_at, Some(now + Duration::seconds(20)));
    assert_eq!(call.recording.as_ref().unwrap().duration_ms, 10_000);
    assert_eq!(s.calls.get_call(&call.id).await.unwrap().as_ref(), Some(&call));

    let events = s.calls.list_call_events(&call.id).await.unwrap();
    let states: Vec<CallState> = events.iter().map(|e| e.to_state).collect();
    use CallState::*;
    assert_eq!(states, [Pending, Leased, Dialing, Ringing, Answered, Attaching, InProgress, Completed]);
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
    assert_eq!(events[2].fencing_term, term);
    assert_eq!(events[7].reason, "caller_hangup");

    // Ended calls move nowhere.
    assert_eq!(
        s.calls.transition_call(&move_to(&call, Failed, 0), now).await.unwrap_err().code,
        ErrorCode::FailedPrecondition
    );
    let ghost = Transition { call_id: "ca_missing".into(), to: Some(Failed), ..Default::default() };
    assert_eq!(s.calls.transition_call(&ghost, now).await.unwrap_err().code, ErrorCode::NotFound);
}

pub async fn recordings_attach_in_any_state(s: &Stores, now: DateTime<Utc>) {
    let mut call = inbound("rg_1", Channel::Phone, now);
    call.state = CallState::Failed;
    call.end_reason = "worker_lost".into();
    s.calls.insert_call(&call, "node:gw").await.unwrap();
    let rec = Recording { key: "recordings/ca.wav".into(), duration_ms: 4_000, size_bytes: 128_044 };
    let later = now + Duration::seconds(30);
    let updated = s.calls.set_recording(&call.id, &rec, later).await.unwrap();
    assert_eq!(updated.recording.as_ref(), Some(&rec));
    assert_eq!((updated.state, updated.version, updated.updated_at), (CallState::Failed, call.version + 1, later));
    assert_eq!(s.calls.get_call(&call.id).await.unwrap(), Some(updated));
    assert_eq!(s.calls.set_recording("ca_missing", &rec, later).await.unwrap_err().code, ErrorCode::NotFound);
}

pub async fn stale_fencing_terms_are_refused(s: &Stores, now: DateTime<Utc>) {
    let c = running_campaign(s, 4, no_retry(), now).await;
    let old = s.leadership.acquire_leadership("d1", Duration::seconds(10), now).await.unwrap().term;
    let mine = s.calls.lease_calls(&lease_req(&c.id, 1, "d1", old), now).await.unwrap().remove(0);

    // d1 freezes; its lease runs out and d2 takes over with a higher term.
    let later = now + Duration::seconds(11);
    let new = s.leadership.acquire_leadership("d2", Duration::seconds(10), later).await.unwrap();
    assert_eq!(new.holder_id.as_deref(), Some("d2"));
    assert!(new.term > old);

    let err = s.calls.lease_calls(&lease_req(&c.id, 2, "d1", old), later).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::FailedPrecondition);
    let err = s.calls.transition_call(&move_to(&mine, CallState::Dialing, old), later).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::FailedPrecondition);
    assert!(err.message.contains("stale fencing term"), "{err}");
    assert_eq!(s.calls.get_call(&mine.id).await.unwrap().unwrap().state, CallState::Leased);

    // Leasing needs the exact, live term and the holder's name.
    assert!(s.calls.lease_calls(&lease_req(&c.id, 1, "d2", new.term + 1), later).await.is_err());
    assert!(s.calls.lease_calls(&lease_req(&c.id, 1, "d1", new.term), later).await.is_err());
    assert!(s.calls.lease_calls(&lease_req(&c.id, 1, "d2", new.term), later + Duration::seconds(10)).await.is_err());
    let got = s.calls.lease_calls(&lease_req(&c.id, 10, "d2", new.term), later).await.unwrap();
    assert_eq!(got.len(), 3, "only the three calls d1 never leased");
    assert!(got.iter().all(|call| call.lease.as_ref().unwrap().fencing_term == new.term));
}

pub async fn lease_tokens_must_match(s: &Stores, now: DateTime<Utc>) {
    let c = running_campaign(s, 1, no_retry(), now).await;
    let term = s.leadership.acquire_leadership("d1", Duration::seconds(10), now).await.unwrap().term;
    let call = s.calls.lease_calls(&lease_req(&c.id, 1, "d1", term), now).await.unwrap().remove(0);
    let mut wrong = move_to(&call, CallState::Dialing, term);
    wrong.lease_token = "forged".into();
    assert_eq!(s.calls.transition_call(&wrong, now).await.unwrap_err().code, ErrorCode::FailedPrecondition);
    let mut missing = move_to(&call, CallState::Dialing, term);
    missing.lease_token.clear();
    assert_eq!(s.calls.transition_call(&missing, now).await.unwrap_err().code, ErrorCode::FailedPrecondition);
    assert_eq!(s.calls.list_call_events(&call.id).await.unwrap().len(), 2);
    assert_eq!(
        s.calls.transition_call(&move_to(&call, CallState::Dialing, term), now).await.unwrap().state,
        CallState::Dialing
    );
}

pub async fn lease_calls_respects_status_due_time_and_max(s: &Stores, now: DateTime<Utc>) {
    let c = running_campaign(s, 3, no_retry(), now).await;
    let term = s.leadership.acquire_leadership("d1", Duration::seconds(60), now).await.unwrap().term;
    s.campaigns.set_campaign_status(&c.id, CampaignStatus::Paused, "user:op", now).await.unwrap();
    let err = s.calls.lease_calls(&lease_req(&c.id, 5, "d1", term), now).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::FailedPrecondition, "a paused campaign leases nothing");
    s.campaigns.set_campaign_status(&c.id, CampaignStatus::Running, "user:op", now).await.unwrap();

    // Not yet due.
    assert!(
        s.calls.lease_calls(&lease_req(&c.id, 5, "d1", term), now - Duration::seconds(1)).await.unwrap().is_empty()
    );
    let first = s.calls.lease_calls(&lease_req(&c.id, 2, "d1", term), now).await.unwrap();
    assert_eq!(first.len(), 2);
    let tokens: HashSet<String> = first.iter().map(|c| c.lease.clone().unwrap().token).collect();
    assert_eq!(tokens.len(), 2, "each lease has its own token");
    let rest = s.calls.lease_calls(&lease_req(&c.id, 2, "d1", term), now).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(s.calls.lease_calls(&lease_req(&c.id, 2, "d1", term), now).await.unwrap().is_empty());
    assert_eq!(
        s.calls.lease_calls(&lease_req("cp_missing", 2, "d1", term), now).await.unwrap_err().code,
        ErrorCode::NotFound
    );
}

pub async fn concurrent_leasers_never_share_a_call(s: &Stores, now: DateTime<Utc>) {
    let c = running_campaign(s, 200, no_retry(), now).await;
    let term = s.leadership.acquire_leadership("d1", Duration::seconds(60), now).await.unwrap().term;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let calls = Arc::clone(&s.calls);
        let id = c.id.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = calls.lease_calls(&lease_req(&id, 7, "d1", term), now).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|c| c.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 200, "every call leased");
    assert_eq!(unique.len(), 200, "no call leased twice");
    let counts = s.campaigns.campaign_counts(&c.id).await.unwrap();
    assert_eq!((counts.pending, counts.live), (0, 200));
}

pub async fn retries_are_scheduled_per_policy(s: &Stores, now: DateTime<Utc>) {
    let policy = RetryPolicy {
        max_attempts: 2,
        backoff_seconds: 60,
        backoff_multiplier: 1.0,
        retry_on: vec![CallState::NoAnswer],
    };
    let c = running_campaign(s, 1, policy, now).await;
    let term = s.leadership.acquire_leadership("d1", Duration::seconds(600), now).await.unwrap().term;
    let call = s.calls.lease_calls(&lease_req(&c.id, 1, "d1", term), now).await.unwrap().remove(0);
    let mut live = call.clone();
    for state in [CallState::Dialing, CallState::Ringing, CallState::NoAnswer] {
        live = s.calls.transition_call(&move_to(&live, state, term), now).await.unwrap();
    }
    let pending = s
        .calls
        .list_calls(&CallQuery {
            campaign_id: Some(c.id.clone()),
            states: vec![CallState::Pending],
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    let retry = &pending[0];
    assert_eq!((retry.attempt, retry.retry_of.as_deref()), (2, Some(call.id.as_str())));
    assert_eq!(retry.to_number, call.to_number);
    assert_eq!(retry.due_at, now + Duration::seconds(60));

    assert!(
        s.calls.lease_calls(&lease_req(&c.id, 5, "d1", term), now + Duration::seconds(59)).await.unwrap().is_empty()
    );
    let second =
        s.calls.lease_calls(&lease_req(&c.id, 5, "d1", term), now + Duration::seconds(60)).await.unwrap().remove(0);
    let mut live = second;
    for state in [CallState::Dialing, CallState::Ringing, CallState::NoAnswer] {
        live = s.calls.transition_call(&move_to(&live, state, term), now + Duration::seconds(61)).await.unwrap();
    }
    let counts = s.campaigns.campaign_counts(&c.id).await.unwrap();
    assert_eq!((counts.total, counts.pending, counts.unsuccessful), (2, 0, 2), "no third attempt");
}

pub async fn expired_leases_return_to_pending_exactly_once(s: &Stores, now: DateTime<Utc>) {
    let c = running_campaign(s, 5, no_retry(), now).await;
    let term = s.leadership.acquire_leadership("d1", Duration::seconds(600), now).await.unwrap().term;
    assert_eq!(s.calls.lease_calls(&lease_req(&c.id, 5, "d1", term), now).await.unwrap().len(), 5);
    let d = StaleDeadlines::default();
    assert!(s.calls.reap_stale(&d, now + Duration::seconds(10)).await.unwrap().is_empty());

    let later = now + Duration::seconds(31);
    let (a, b) = tokio::join!(s.calls.reap_stale(&d, later), s.calls.reap_stale(&d, later));
    let total: u64 = a
        .unwrap()
        .into_iter()
        .chain(b.unwrap())
        .map(|(state, n)| {
            assert_eq!(state, CallState::Leased);
            n
        })
        .sum();
    assert_eq!(total, 5, "each expired lease reaped once");
    let calls = s
        .calls
        .list_calls(&CallQuery { campaign_id: Some(c.id.clone()), limit: 10, ..Default::default() })
        .await
        .unwrap();
    for call in calls {
        assert_eq!(call.state, CallState::Pending);
        assert_eq!(call.lease, None);
        let events = s.calls.list_call_events(&call.id).await.unwrap();
        assert_eq!(events.iter().filter(|e| e.reason == "lease_expired").count(), 1);
    }
    // They can be leased again.
    assert_eq!(s.calls.lease_calls(&lease_req(&c.id, 5, "d1", term), later).await.unwrap().len(), 5);
}

pub async fn stuck_calls_are_reaped_exactly_once(s: &Stores, now: DateTime<Utc>) {
    let c = running_campaign(s, 6, no_retry(), now).await;
    let term = s.leadership.acquire_leadership("d1", Duration::seconds(6000), now).await.unwrap().term;
    let leased = s.calls.lease_calls(&lease_req(&c.id, 6, "d1", term), now).await.unwrap();
    for call in &leased[..4] {
        to_in_progress(s, call, term, now).await;
    }
    let ringing = s.calls.transition_call(&move_to(&leased[4], CallState::Dialing, term), now).await.unwrap();
    s.calls.transition_call(&move_to(&ringing, CallState::Ringing, term), now).await.unwrap();

    let d = StaleDeadlines { in_progress: Duration::minutes(60), ..StaleDeadlines::default() };
    let soon = now + Duration::minutes(59);
    let early: u64 = s
        .calls
        .reap_stale(&d, soon)
        .await
        .unwrap()
        .iter()
        .filter(|(st, _)| *st != CallState::Leased)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(early, 1, "only the call ringing for 59 minutes");

    let late = now + Duration::minutes(61);
    let (a, b) = tokio::join!(s.calls.reap_stale(&d, late), s.calls.reap_stale(&d, late));
    let mut by_state = std::collections::BTreeMap::new();
    for (state, n) in a.unwrap().into_iter().chain(b.unwrap()) {
        *by_state.entry(state).or_insert(0) += n;
    }
    assert_eq!(by_state.get(&CallState::InProgress), Some(&4));
    let failed = s
        .calls
        .list_calls(&CallQuery {
            campaign_id: Some(c.id.clone()),
            states: vec![CallState::Failed],
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 5);
    for call in failed {
        let events = s.calls.list_call_events(&call.id).await.unwrap();
        assert_eq!(events.iter().filter(|e| e.reason.starts_with("reaped:")).count(), 1);
        assert!(call.end_reason.starts_with("reaped:stale_"), "{}", call.end_reason);
        assert_eq!(events.last().unwrap().actor, "system");
    }
}

pub async fn list_calls_filters_and_pages(s: &Stores, now: DateTime<Utc>) {
    let a = running_campaign(s, 0, no_retry(), now).await;
    let b = running_campaign(s, 0, no_retry(), now).await;
    for i in 0..7 {
        let at = now + Duration::seconds(i);
        s.campaigns.add_numbers(&a.id, &[(1, E164::parse(&format!("+1415555100{i}")).unwrap())], at).await.unwrap();
    }
    s.campaigns.add_numbers(&b.id, &numbers(3), now).await.unwrap();
    let q = |campaign: &str, limit| CallQuery { campaign_id: Some(campaign.into()), limit, ..Default::default() };

    let all_a = s.calls.list_calls(&q(&a.id, 100)).await.unwrap();
    assert_eq!(all_a.len(), 7);
    assert!(all_a.windows(2).all(|w| w[0].created_at >= w[1].created_at), "newest first");

    let mut seen = Vec::new();
    let mut query = q(&a.id, 3);
    loop {
        let page = s.calls.list_calls(&query).await.unwrap();
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap();
        query.after = Some((last.created_at, last.id.clone()));
        seen.extend(page.into_iter().map(|c| c.id));
    }
    assert_eq!(seen, all_a.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), "pages cover every call once, in order");

    let window = CallQuery {
        created_after: Some(now + Duration::seconds(2)),
        created_before: Some(now + Duration::seconds(5)),
        ..q(&a.id, 100)
    };
    assert_eq!(s.calls.list_calls(&window).await.unwrap().len(), 3, "after is inclusive, before exclusive");
    let none = CallQuery { states: vec![CallState::Completed], ..q(&a.id, 100) };
    assert!(s.calls.list_calls(&none).await.unwrap().is_empty());
    let everything = CallQuery { limit: 100, ..Default::default() };
    assert_eq!(s.calls.list_calls(&everything).await.unwrap().len(), 10);
}

pub async fn call_totals_feed_the_dashboard(s: &Stores, now: DateTime<Utc>) {
    let c = running_campaign(s, 6, no_retry(), now).await;
    let paused = running_campaign(s, 2, no_retry(), now).await;
    s.campaigns.set_campaign_status(&paused.id, CampaignStatus::Paused, "user:op", now).await.unwrap();
    let term = s.leadership.acquire_leadership("d1", Duration::seconds(600), now).await.unwrap().term;
    let leased = s.calls.lease_calls(&lease_req(&c.id, 3, "d1", term), now).await.unwrap();
    to_in_progress(s, &leased[0], term, now).await;
    s.calls.transition_call(&move_to(&leased[1], CallState::Dialing, term), now).await.unwrap();
    s.calls.insert_call(&inbound("rg_1", Channel::Web, now), "node:gw").await.unwrap();
    s.calls.insert_call(&inbound("rg_1", Channel::Phone, now), "node:gw").await.unwrap();

    let totals = s.calls.call_totals(now).await.unwrap();
    // Phone: the outbound call in progress and the inbound phone call (answered).
    assert_eq!((totals.live_phone, totals.live_web), (2, 1));
    // leased[1] dialing, leased[2] leased, and the two answered inbound calls.
    assert_eq!(totals.processing, 4);
    // Three pending in the running campaign; the paused campaign's two don't count.
    assert_eq!(totals.pending_due, 3);
    assert_eq!(s.calls.call_totals(now - Duration::seconds(1)).await.unwrap().pending_due, 0, "not yet due");
}

// ---- leadership ------------------------------------------------------------------------

pub async fn leadership_terms_strictly_increase(s: &Stores, now: DateTime<Utc>) {
    let ttl = Duration::seconds(10);
    assert_eq!(s.leadership.leadership().await.unwrap().holder_id, None);
    let a1 = s.leadership.acquire_leadership("a", ttl, now).await.unwrap();
    assert_eq!(a1.holder_id.as_deref(), Some("a"));
    assert!(a1.term >= 1);
    let renewed = s.leadership.acquire_leadership("a", ttl, now + Duration::seconds(5)).await.unwrap();
    assert_eq!(renewed.term, a1.term, "renewal keeps the term");
    assert_eq!(renewed.expires_at, Some(now + Duration::seconds(15)));

    let refused = s.leadership.acquire_leadership("b", ttl, now + Duration::seconds(6)).await.unwrap();
    assert_eq!(refused.holder_id.as_deref(), Some("a"), "a live lease is not taken over");
    assert_eq!(refused.term, a1.term);

    let b = s.leadership.acquire_leadership("b", ttl, now + Duration::seconds(15)).await.unwrap();
    assert_eq!(b.holder_id.as_deref(), Some("b"));
    assert!(b.term > a1.term);
    // "a" comes back after b's lease ran out: a new term, not its old one.
    let a2 = s.leadership.acquire_leadership("a", ttl, now + Duration::seconds(40)).await.unwrap();
    assert!(a2.term > b.term);

    let stale = s.leadership.release_leadership("b", b.term, now + Duration::seconds(41)).await.unwrap();
    assert_eq!(stale.holder_id.as_deref(), Some("a"), "a stale release changes nothing");
    let released = s.leadership.release_leadership("a", a2.term, now + Duration::seconds(41)).await.unwrap();
    assert_eq!(released.holder_id, None);
    let c = s.leadership.acquire_leadership("c", ttl, now + Duration::seconds(42)).await.unwrap();
    assert!(c.term > a2.term, "terms never repeat, even after a release");
    assert_eq!(s.leadership.leadership().await.unwrap(), c);
}

// ---- users -----------------------------------------------------------------------------

fn user(email: &str, role: Role, now: DateTime<Utc>) -> User {
    User {
        id: ids::new_id(ids::USER),
        email: email.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
        role,
        disabled: false,
        token_generation: 0,
        created_at: now,
        updated_at: now,
    }
}

pub async fn users_round_trip_with_unique_emails(s: &Stores, now: DateTime<Utc>) {
    assert_eq!(s.users.count_users().await.unwrap(), 0);
    let admin = user("admin@vox.test", Role::Admin, now);
    let viewer = user("viewer@vox.test", Role::Viewer, now + Duration::seconds(1));
    s.users.insert_user(&admin).await.unwrap();
    s.users.insert_user(&viewer).await.unwrap();
    assert_eq!(s.users.count_users().await.unwrap(), 2);
    assert_eq!(s.users.get_user(&viewer.id).await.unwrap().as_ref(), Some(&viewer));
    assert_eq!(s.users.get_user_by_email("viewer@vox.test").await.unwrap().as_ref(), Some(&viewer));
    assert_eq!(s.users.get_user_by_email("nobody@vox.test").await.unwrap(), None);
    let dup = user("viewer@vox.test", Role::Operator, now);
    assert_eq!(s.users.insert_user(&dup).await.unwrap_err().code, ErrorCode::AlreadyExists);
    let mut promoted = viewer.clone();
    promoted.role = Role::Operator;
    s.users.update_user(&promoted).await.unwrap();
    assert_eq!(s.users.get_user(&viewer.id).await.unwrap().unwrap().role, Role::Operator);
    assert_eq!(s.users.list_users().await.unwrap().len(), 2);
    s.users.delete_user(&viewer.id).await.unwrap();
    assert_eq!(s.users.delete_user(&viewer.id).await.unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(s.users.update_user(&promoted).await.unwrap_err().code, ErrorCode::NotFound);
}

pub async fn the_last_admin_is_protected(s: &Stores, now: DateTime<Utc>) {
    let admin = user("admin@vox.test", Role::Admin, now);
    s.users.insert_user(&admin).await.unwrap();
    let demoted = User { role: Role::Operator, ..admin.clone() };
    assert_eq!(s.users.update_user(&demoted).await.unwrap_err().code, ErrorCode::FailedPrecondition);
    let disabled = User { disabled: true, ..admin.clone() };
    assert_eq!(s.users.update_user(&disabled).await.unwrap_err().code, ErrorCode::FailedPrecondition);
    assert_eq!(s.users.delete_user(&admin.id).await.unwrap_err().code, ErrorCode::FailedPrecondition);
    assert_eq!(s.users.get_user(&admin.id).await.unwrap().as_ref(), Some(&admin));

    let second = user("second@vox.test", Role::Admin, now);
    s.users.insert_user(&second).await.unwrap();
    s.users.update_user(&demoted).await.unwrap();
    assert_eq!(s.users.delete_user(&second.id).await.unwrap_err().code, ErrorCode::FailedPrecondition);
}

// ---- presence, events, health ----------------------------------------------------------

pub async fn presence_round_trip(s: &Stores, now: DateTime<Utc>) {
    let p = Presence {
        node_id: "nd_a".into(),
        boot_id: "boot-1".into(),
        version: "0.1.0".into(),
        cpu_percent: 12.5,
        memory_used_bytes: 1 << 30,
        memory_total_bytes: 8 << 30,
        workers: vec![WorkerSlot {
            index: 1,
            state: WorkerState::InCall,
            call_id: "ca_1".into(),
            endpoint: "unix:///run/vox/voxcore_1.sock".into(),
        }],
        at: now,
    };
    s.presence.put_presence(&p).await.unwrap();
    assert_eq!(s.presence.get_presence("nd_a").await.unwrap().as_ref(), Some(&p));
    let newer = Presence { at: now + Duration::seconds(2), workers: vec![], ..p.clone() };
    s.presence.put_presence(&newer).await.unwrap();
    assert_eq!(s.presence.list_presence().await.unwrap(), vec![newer]);
    s.presence.remove_presence("nd_a").await.unwrap();
    assert_eq!(s.presence.get_presence("nd_a").await.unwrap(), None);
}

pub async fn events_reach_subscribers(s: &Stores, _now: DateTime<Utc>) {
    let mut sub = s.events.subscribe();
    s.events.publish(ClusterEvent::NodeChanged("nd_a".into()));
    s.events.publish(ClusterEvent::CallChanged("ca_b".into()));
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next()).await.unwrap();
    assert_eq!(first, Some(Some(ClusterEvent::NodeChanged("nd_a".into()))));
    let second = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next()).await.unwrap();
    assert_eq!(second, Some(Some(ClusterEvent::CallChanged("ca_b".into()))));
}

pub async fn health_ping(s: &Stores, _now: DateTime<Utc>) {
    s.health.ping().await.unwrap();
}

// ---- do not call -----------------------------------------------------------------------

pub async fn do_not_call_lists_are_global_or_per_campaign(s: &Stores, now: DateTime<Utc>) {
    let n = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(s.dnc.add_dnc("", &n(&["+15550000001", "+15550000002"]), "user:a", now).await.unwrap(), 2);
    assert_eq!(s.dnc.add_dnc("", &n(&["+15550000002"]), "user:a", now).await.unwrap(), 0, "already there");
    assert_eq!(s.dnc.add_dnc("cp_a", &n(&["+15550000003"]), "user:b", now).await.unwrap(), 1);
    let asked = n(&["+15550000001", "+15550000003", "+15550000009"]);
    assert_eq!(s.dnc.blocked_numbers("cp_a", &asked).await.unwrap(), n(&["+15550000001", "+15550000003"]));
    assert_eq!(s.dnc.blocked_numbers("cp_b", &asked).await.unwrap(), n(&["+15550000001"]), "cp_a's list is its own");
    let global = s.dnc.list_dnc("", "", 10).await.unwrap();
    assert_eq!(global.iter().map(|e| e.number.as_str()).collect::<Vec<_>>(), ["+15550000001", "+15550000002"]);
    assert_eq!(global[0].added_by, "user:a");
    assert_eq!(global[0].added_at, now);
    assert_eq!(s.dnc.list_dnc("", "+15550000001", 10).await.unwrap().len(), 1, "pages after a number");
    assert_eq!(s.dnc.remove_dnc("", &n(&["+15550000001", "+15550000008"])).await.unwrap(), 1);
    assert_eq!(s.dnc.blocked_numbers("cp_b", &asked).await.unwrap(), Vec::<String>::new());
}

pub async fn api_keys_round_trip_and_stay_revoked(s: &Stores, now: DateTime<Utc>) {
    use vox_domain::api_key::ApiKey;
    let hash = |secret: &str| format!("hash of {secret}");
    let (older, _) = ApiKey::new("CRM", Role::Operator, None, "user:a@vox.test", now, hash).unwrap();
    let scope = Some(ids::new_id(ids::CAMPAIGN));
    let (newer, _) =
        ApiKey::new("Reports", Role::Viewer, scope, "user:a@vox.test", now + Duration::seconds(1), hash).unwrap();
    s.api_keys.insert_api_key(&older).await.unwrap();
    s.api_keys.insert_api_key(&newer).await.unwrap();
    let again = s.api_keys.insert_api_key(&older).await.unwrap_err();
    assert_eq!(again.code, ErrorCode::AlreadyExists);
    assert_eq!(s.api_keys.get_api_key(&older.id).await.unwrap().as_ref(), Some(&older));
    assert_eq!(s.api_keys.get_api_key("ak_0000000000000000").await.unwrap(), None);
    let listed: Vec<String> = s.api_keys.list_api_keys().await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(listed, vec![newer.id.clone(), older.id.clone()], "newest first");

    // Uses move `last_used_at` forward only.
    s.api_keys.touch_api_key(&older.id, now + Duration::seconds(60)).await.unwrap();
    s.api_keys.touch_api_key(&older.id, now + Duration::seconds(30)).await.unwrap();
    let used = s.api_keys.get_api_key(&older.id).await.unwrap().unwrap();
    assert_eq!(used.last_used_at, Some(now + Duration::seconds(60)));
    let missing = s.api_keys.touch_api_key("ak_0000000000000000", now).await.unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);

    // A revocation stays, with its first time.
    let revoked = s.api_keys.revoke_api_key(&older.id, now + Duration::seconds(90)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(now + Duration::seconds(90)));
    let twice = s.api_keys.revoke_api_key(&older.id, now + Duration::seconds(120)).await.unwrap();
    assert_eq!(twice.revoked_at, Some(now + Duration::seconds(90)));
    assert!(s.api_keys.get_api_key(&older.id).await.unwrap().unwrap().is_revoked());
    assert!(!s.api_keys.get_api_key(&newer.id).await.unwrap().unwrap().is_revoked());
    let missing = s.api_keys.revoke_api_key("ak_0000000000000000", now).await.unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
}
