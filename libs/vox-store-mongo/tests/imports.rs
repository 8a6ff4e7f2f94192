//! A large upload whose voxbridge stopped half way (written ahead, one chunk of two
//! added) is finished by the next voxbridge that starts on the database: every number
//! lands once, and the written-ahead upload is gone.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test code: a failure should stop the test")]

#[allow(dead_code, reason = "shared harness; this test opens its stores itself")]
mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use mongodb::bson::{self, doc};
use vox_domain::campaign::{Campaign, CampaignStatus};
use vox_domain::ids;
use vox_domain::phone::E164;
use vox_domain::region::Region;
use vox_store::{CampaignStore, RegionStore, conformance};
use vox_store_mongo::MongoStore;
use vox_store_mongo::imports::{CHUNK, IDLE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_left_half_done_is_finished_at_the_next_start() {
    let url = common::server_url();
    let name = format!("vox_test_{}", ids::random_token(12));
    let _drop = common::TestDatabase { url: url.clone(), name: name.clone() };
    let first = MongoStore::connect(&url, &name).await.unwrap();
    let now = Utc::now();
    let region = Region {
        id: ids::new_id(ids::REGION),
        name: "r".into(),
        country: "US".into(),
        storage: None,
        created_at: now,
        updated_at: now,
    };
    first.insert_region(&region).await.unwrap();
    let spec = conformance::spec(&region.id, conformance::no_retry());
    let c = Campaign {
        id: ids::new_id(ids::CAMPAIGN),
        spec,
        status: CampaignStatus::Running,
        created_at: now,
        updated_at: now,
    };
    first.insert_campaign(&c).await.unwrap();

    // What a voxbridge leaves when it stops after the first chunk of a 6,000-number
    // upload: the chunk added, the upload written ahead with its mark after the chunk,
    // untouched for longer than IDLE.
    let n = CHUNK + 1_000;
    let numbers: Vec<(u32, E164)> =
        (0..n).map(|i| (i as u32 + 2, E164::parse(&format!("+1415{i:07}")).unwrap())).collect();
    assert!(first.add_numbers(&c.id, &numbers[..CHUNK], now).await.unwrap().is_empty());
    let stale = bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() - 2 * IDLE.as_millis() as i64);
    let client = mongodb::Client::with_uri_str(&url).await.unwrap();
    let imports = client.database(&name).collection::<bson::Document>("number_imports");
    imports
        .insert_one(doc! {
            "_id": "im_left_half_done",
            "campaign_id": &c.id,
            "at": bson::DateTime::from_millis(now.timestamp_millis()),
            "rows": numbers.iter().map(|(r, _)| i64::from(*r)).collect::<Vec<_>>(),
            "numbers": numbers.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(),
            "done": CHUNK as i64,
            "already": Vec::<i64>::new(),
            "touched": stale,
        })
        .await
        .unwrap();
    assert_eq!(first.campaign_counts(&c.id).await.unwrap().total, CHUNK as u64);

    // The next voxbridge to start finishes it, on its own.
    let second = MongoStore::connect(&url, &name).await.unwrap();
    let started = Instant::now();
    // Polled gently: counting the campaign's calls is work for the server.
    while imports.count_documents(doc! {}).await.unwrap() > 0 {
        assert!(started.elapsed() < Duration::from_secs(120), "unfinished after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Every number once: the chunk added before the stop was not added again.
    let counts = second.campaign_counts(&c.id).await.unwrap();
    assert_eq!((counts.total, counts.pending), (n as u64, n as u64));
    assert_eq!(vox_store_mongo::imports::finish_idle_imports(&second).await.unwrap(), 0, "nothing left to finish");
}
