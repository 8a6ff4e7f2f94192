//! Eight leasers racing over one campaign of 2,000 calls: each call is leased exactly once
//! and none is left behind. Each leaser has its own client, as separate voxbridge instances
//! would, so they meet only in the database.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test code: a failure should stop the test")]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use vox_domain::call::CallState;
use vox_domain::campaign::{Campaign, CampaignStatus};
use vox_domain::ids;
use vox_domain::phone::E164;
use vox_domain::region::Region;
use vox_store::{CallQuery, LeaseRequest, conformance};

const CALLS: usize = 2_000;
const LEASERS: usize = 8;
const BATCH: usize = 25;

fn campaign(region_id: &str, now: chrono::DateTime<Utc>) -> Campaign {
    let mut spec = conformance::spec(region_id, conformance::no_retry());
    spec.name = "load".into();
    Campaign { id: ids::new_id(ids::CAMPAIGN), spec, status: CampaignStatus::Draft, created_at: now, updated_at: now }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_leasers_lease_two_thousand_calls_exactly_once() {
    let harness = common::fresh().await;
    let s = &harness.stores;
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap();

    let region = Region {
        id: ids::new_id(ids::REGION),
        name: "load".into(),
        country: "US".into(),
        storage: None,
        created_at: now,
        updated_at: now,
    };
    s.regions.insert_region(&region).await.unwrap();
    let c = campaign(&region.id, now);
    s.campaigns.insert_campaign(&c).await.unwrap();
    let numbers: Vec<(u32, E164)> =
        (0..CALLS).map(|i| (i as u32 + 1, E164::parse(&format!("+1415555{i:04}")).unwrap())).collect();
    let started = Instant::now();
    assert!(s.campaigns.add_numbers(&c.id, &numbers, now).await.unwrap().is_empty());
    let added = started.elapsed();
    s.campaigns.set_campaign_status(&c.id, CampaignStatus::Running, "user:op@vox.test", now).await.unwrap();
    let term = s.leadership.acquire_leadership("d1", Duration::minutes(10), now).await.unwrap().term;

    let db = harness.guard.downcast_ref::<common::TestDatabase>().expect("the harness holds its database");
    let mut instances = Vec::new();
    for _ in 0..LEASERS {
        instances.push(vox_store_mongo::open_stores(&db.url, &db.name).await.expect("open another instance"));
    }

    let started = Instant::now();
    let mut leasers = Vec::new();
    for instance in &instances {
        let calls = Arc::clone(&instance.calls);
        let req = LeaseRequest {
            campaign_id: c.id.clone(),
            max: BATCH,
            owner: "d1".into(),
            fencing_term: term,
            ttl: Duration::seconds(30),
        };
        leasers.push(tokio::spawn(async move {
            let (mut got, mut batches, mut slowest) = (Vec::new(), 0, std::time::Duration::ZERO);
            loop {
                let asked = Instant::now();
                let batch = calls.lease_calls(&req, now).await.unwrap();
                slowest = slowest.max(asked.elapsed());
                if batch.is_empty() {
                    return (got, batches, slowest);
                }
                assert!(batch.len() <= BATCH);
                batches += 1;
                got.extend(batch.into_iter().map(|call| {
                    assert_eq!(call.state, CallState::Leased);
                    call.id
                }));
            }
        }));
    }
    let (mut all, mut batches, mut slowest) = (Vec::new(), Vec::new(), std::time::Duration::ZERO);
    for leaser in leasers {
        let (got, n, slow) = leaser.await.unwrap();
        all.extend(got);
        batches.push(n);
        slowest = slowest.max(slow);
    }
    let leasing = started.elapsed();
    eprintln!(
        "{CALLS} calls added in {added:?}; leased by {LEASERS} instances in batches of {BATCH} in {leasing:?} \
         (batches per leaser {batches:?}, slowest lease call {slowest:?})"
    );

    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), CALLS, "every call leased");
    assert_eq!(unique.len(), CALLS, "no call leased twice");
    let counts = s.campaigns.campaign_counts(&c.id).await.unwrap();
    assert_eq!((counts.total, counts.pending, counts.live), (CALLS as u64, 0, CALLS as u64), "none left behind");
    let pending = CallQuery {
        campaign_id: Some(c.id.clone()),
        states: vec![CallState::Pending],
        limit: 10,
        ..Default::default()
    };
    assert!(s.calls.list_calls(&pending).await.unwrap().is_empty());
    // Each call's timeline records exactly one lease.
    for id in all.iter().step_by(97) {
        let events = s.calls.list_call_events(id).await.unwrap();
        assert_eq!(events.iter().filter(|e| e.to_state == CallState::Leased).count(), 1, "{id}");
    }
    drop(harness);
}
