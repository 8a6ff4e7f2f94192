//! voxbridge on MongoDB (a real wire-compatible server started by the test script):
//! the same API, data that survives a restart, and no secret in plain text in a dump of
//! the database.
#![allow(clippy::unwrap_used)]

mod common;

use common::{authed, storage};
use futures::TryStreamExt;
use vox_proto::backend::v1 as pb;

fn mongo_url() -> String {
    std::env::var("VOX_TEST_MONGO_URL").unwrap_or_else(|_| {
        panic!("set VOX_TEST_MONGO_URL or run bash ops/test.sh, which starts a server (MongoDB tests never skip)")
    })
}

#[tokio::test]
async fn voxbridge_runs_on_mongodb_and_keeps_secrets_sealed() {
    let url = mongo_url();
    let database = format!("vox_bridge_{}", vox_domain::ids::random_token(8));
    let args = ["--store", url.as_str(), "--store-database", database.as_str()];
    let b = common::start(&args).await;

    let marker = "MONGO-S3-SECRET-MARKER-42";
    let req =
        pb::CreateRegionRequest { name: "us-east-1".into(), country: "US".into(), storage: Some(storage(marker)) };
    let region = b.regions().create_region(authed(&b.admin, req)).await.unwrap().into_inner();
    let (node, secret) = b.register(pb::NodeKind::Fleet, &region.id).await;
    b.heartbeat(&node.id, &secret, "boot", 2).await.unwrap();
    assert!(b.node(&node.id).await.online);

    // A dump of every collection holds neither the storage secret nor the node secret.
    let client = mongodb::Client::with_uri_str(&url).await.unwrap();
    let db = client.database(&database);
    let mut dump = String::new();
    for name in db.list_collection_names().await.unwrap() {
        let docs: Vec<mongodb::bson::Document> =
            db.collection(&name).find(mongodb::bson::doc! {}).await.unwrap().try_collect().await.unwrap();
        for d in docs {
            dump.push_str(&d.to_string());
        }
    }
    assert!(dump.contains(&region.id), "the dump is of the right database");
    assert!(!dump.contains(marker), "the storage secret key is in plain text in MongoDB");
    assert!(!dump.contains(&secret), "a node API secret is in plain text in MongoDB");

    // A restart on the same database keeps everything (the admin is not created again).
    let again = b.restart(&args).await;
    let regions = again
        .regions()
        .list_regions(authed(&again.admin, pb::ListRegionsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .regions;
    assert_eq!(regions.len(), 1);
    assert!(regions[0].storage.as_ref().unwrap().secret_key_set);
    again.heartbeat(&node.id, &secret, "boot-2", 2).await.unwrap();
    db.drop().await.unwrap();
}
