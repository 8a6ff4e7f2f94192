//! Internal failures and unreachable dependencies reach callers as an error id, never in
//! the words of SQLite or the MongoDB driver; voxbridge's log has those words under the
//! id. Both through the real gRPC server, and `/health` too.
#![allow(clippy::unwrap_used)]

mod common;

use common::authed;
use vox_domain::error::concealed_id;
use vox_proto::backend::v1 as pb;

/// The log line that carries `error_id`.
fn logged(b: &common::Bridge, error_id: &str) -> String {
    let logs = b.process.logs();
    logs.lines()
        .find(|l| l.contains(error_id))
        .unwrap_or_else(|| panic!("{error_id} is not in the log:\n{logs}"))
        .into()
}

#[tokio::test]
async fn a_storage_failure_reaches_the_caller_as_an_error_id() {
    let b = common::start(&[]).await;
    let region = b.create_region("us-east-1").await;
    let req = pb::CreateCampaignRequest { spec: Some(common::campaign_spec(&region.id)) };
    let campaign = b.campaigns().create_campaign(authed(&b.admin, req)).await.unwrap().into_inner();
    // SQLite fails the insert of one number in its own words ("datatype mismatch").
    let python = vox_testkit::require_program("python3", "install python3");
    let database = common::data_dir(&b.dir).join("vox.db");
    let script = "CREATE TABLE vox_test_ids (id INTEGER PRIMARY KEY);
                  CREATE TRIGGER vox_test_fail BEFORE INSERT ON calls WHEN NEW.first_number = '+14155550199'
                  BEGIN INSERT INTO vox_test_ids (id) VALUES ('not a number'); END;";
    let out = std::process::Command::new(python)
        .args(["-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()"])
        .arg(&database)
        .arg(script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let numbers = vec!["+14155550101".into(), "+14155550199".into()];
    let req = pb::AddNumbersRequest { campaign_id: campaign.id.clone(), numbers };
    let e = b.campaigns().add_numbers(authed(&b.admin, req)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Internal);
    let error_id = concealed_id(e.message()).unwrap_or_else(|| panic!("no error id in {:?}", e.message()));
    assert_eq!(e.message(), format!("internal error {error_id}; the details are in voxbridge's log under this id"));
    assert!(logged(&b, error_id).contains("sqlite: insert call: datatype mismatch"));

    // Refusals keep their words: they are for the caller.
    let req = pb::AddNumbersRequest { campaign_id: campaign.id.clone(), numbers: Vec::new() };
    let e = b.campaigns().add_numbers(authed(&b.admin, req)).await.unwrap_err();
    assert_eq!((e.code(), e.message()), (tonic::Code::InvalidArgument, "numbers: no numbers given"));
}

#[tokio::test]
async fn an_unreachable_database_is_named_by_an_error_id() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mongo, port) = vox_testkit::mongo_server(dir.path(), false).await;
    let url = format!("mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=1000");
    let b = common::start(&["--store", &url]).await;

    mongo.kill();
    let e = b.regions().list_regions(authed(&b.admin, pb::ListRegionsRequest {})).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    let error_id = concealed_id(e.message()).unwrap_or_else(|| panic!("no error id in {:?}", e.message()));
    assert!(e.message().starts_with("voxbridge cannot reach its database or storage right now; retry shortly"));
    assert!(!e.message().contains(&port.to_string()) && !e.message().contains("mongodb"), "{}", e.message());
    let line = logged(&b, error_id);
    // The driver's own words are in the log under that id (which words depends on when
    // the server went: a refused connection names the address, a cut one says "end of file").
    assert!(line.contains("\"error\":\"mongodb: "), "{line}");

    // Anyone may ask /health: it says the store is unreachable, and where to look.
    let r = reqwest::get(format!("{}/health", b.process.url())).await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    let store = body["store"].as_str().unwrap();
    let error_id = concealed_id(store).unwrap_or_else(|| panic!("no error id in {body}"));
    assert!(store.starts_with("unreachable (error err_") && !store.contains(&port.to_string()), "{body}");
    assert!(logged(&b, error_id).contains(&port.to_string()));
}
