//! Large numbers uploads through the console REST API in front of a real voxbridge: who
//! may send one (checked before the body is read), how many rows, and that a file lands
//! whole or not at all, on the embedded store and on MongoDB. Internal failures reach
//! the caller as an error id, with the details in voxbridge's log.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests stop on failure")]

mod common;

use std::time::{Duration, Instant};

use common::{Api, error_message, read};
use futures::StreamExt;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// `n` numbers under a header, one a row: row `i + 2` holds `+1415` and `i` in 7 digits.
fn csv(n: usize) -> String {
    let mut text = String::from("number,name\n");
    for i in 0..n {
        text.push_str(&format!("+1415{i:07},Person {i}\n"));
    }
    text
}

async fn upload(api: &Api, campaign: &str, body: String) -> (StatusCode, Value) {
    let path = format!("/api/v1/campaigns/{campaign}/numbers");
    let r = api.req(Method::POST, &path, &api.admin).header(CONTENT_TYPE, "text/csv").body(body).send().await;
    read(r.unwrap()).await
}

async fn total(api: &Api, campaign: &str) -> u64 {
    let c = api.admin(Method::GET, &format!("/api/v1/campaigns/{campaign}"), None, StatusCode::OK).await;
    c["counts"]["total"].as_u64().unwrap()
}

/// 150,000 rows land, every one; on the embedded store the same file again is all
/// "already in the campaign" (listing the first 1,000). MongoDB writes the file in 30
/// chunks (see `vox_store_mongo::imports`); the repeat is left to the embedded store,
/// since the test server writes about 2,000 documents a second.
async fn a_150000_row_file_lands_whole(api: &Api, repeat: bool) {
    let campaign = api.campaign().await;
    let id = campaign["id"].as_str().unwrap();
    let started = Instant::now();
    let (status, added) = upload(api, id, csv(150_000)).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    println!("150000 rows stored in {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!((added["accepted"].as_u64(), added["rejected_count"].as_u64()), (Some(150_000), Some(0)), "{added}");
    assert_eq!(total(api, id).await, 150_000);
    if !repeat {
        return;
    }
    let (status, again) = upload(api, id, csv(150_000)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!((again["accepted"].as_u64(), again["rejected_count"].as_u64()), (Some(0), Some(150_000)));
    let listed = again["rejected"].as_array().unwrap();
    assert_eq!(listed.len(), 1_000, "the first 1,000 are listed");
    assert_eq!((listed[0]["row"].as_u64(), listed[0]["reason"].as_str()), (Some(2), Some("already in the campaign")));
    assert_eq!(total(api, id).await, 150_000);
}

#[tokio::test]
async fn a_150000_row_file_lands_whole_on_the_embedded_store() {
    let api = common::start().await;
    a_150000_row_file_lands_whole(&api, true).await;
}

/// On a MongoDB server of its own (the test script's secantus, started again here, at
/// the lowest CPU priority): the 300,000 documents of this upload keep a server busy for
/// minutes, and the shared one, or a server at normal priority on a small machine, would
/// make the other MongoDB tests of the run wait behind them.
#[tokio::test]
async fn a_150000_row_file_lands_whole_on_mongodb() {
    let dir = tempfile::tempdir().unwrap();
    let (_mongo, port) = vox_testkit::mongo_server(dir.path(), true).await;
    let url = format!("mongodb://127.0.0.1:{port}/?directConnection=true");
    let api = common::start_with(&["--store", &url], |_| {}).await;
    a_150000_row_file_lands_whole(&api, false).await;
}

#[tokio::test]
async fn a_bad_line_near_the_end_adds_nothing() {
    let api = common::start().await;
    let campaign = api.campaign().await;
    let id = campaign["id"].as_str().unwrap();
    // Line 149,000 holds row 148,998's number with a stray quote in it.
    let file = csv(150_000).replacen("+14150148998,", "+1415014\"8998,", 1);
    let (status, body) = upload(&api, id, file).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = error_message(&body, "invalid_argument");
    assert!(message.starts_with("CSV line 149000, column 9: a quote inside an unquoted value"), "{message}");
    assert!(message.ends_with("nothing was added"), "{message}");
    assert_eq!(total(&api, id).await, 0);
}

#[tokio::test]
async fn an_upload_over_the_row_cap_is_refused_whole() {
    let api = common::start_with(&[], |config| config.max_upload_rows = 1_000).await;
    let campaign = api.campaign().await;
    let id = campaign["id"].as_str().unwrap();
    let (status, body) = upload(&api, id, csv(1_500)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = error_message(&body, "invalid_argument");
    assert!(message.starts_with("the upload has 1500 rows; at most 1000 are taken at a time"), "{message}");
    assert!(message.contains("--max-upload-rows"), "{message}");
    assert_eq!(total(&api, id).await, 0);
    let (status, body) = upload(&api, id, csv(1_000)).await;
    assert_eq!((status, body["accepted"].as_u64()), (StatusCode::OK, Some(1_000)), "{body}");
}

/// A body that sends 1 MiB of rows and then never ends.
fn endless_upload() -> reqwest::Body {
    let chunk = bytes_of_rows(1024 * 1024);
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(chunk) }).chain(futures::stream::pending());
    reqwest::Body::wrap_stream(stream)
}

fn bytes_of_rows(n: usize) -> Vec<u8> {
    "+14155550123\n".repeat(n / 13).into_bytes()
}

#[tokio::test]
async fn strangers_and_viewers_are_refused_before_the_body_is_read() {
    let api = common::start().await;
    let campaign = api.campaign().await;
    let id = campaign["id"].as_str().unwrap();
    let path = format!("/api/v1/campaigns/{id}/numbers");
    let viewer = api.user("viewer@vox.test", "viewer").await;
    for (token, want, code) in [
        ("not-a-token", StatusCode::UNAUTHORIZED, "unauthenticated"),
        (viewer.as_str(), StatusCode::FORBIDDEN, "permission_denied"),
    ] {
        let started = Instant::now();
        let r = api.req(Method::POST, &path, token).header(CONTENT_TYPE, "text/csv").body(endless_upload()).send();
        let r = tokio::time::timeout(Duration::from_secs(10), r)
            .await
            .expect("answered without waiting for a body that never ends")
            .unwrap();
        let (status, body) = read(r).await;
        assert_eq!(status, want, "{body}");
        error_message(&body, code);
        assert!(started.elapsed() < Duration::from_secs(5), "refused in {:?}", started.elapsed());
    }
    // voxbridge was asked who the caller is, and never to add a number.
    let metrics = api.http.get(format!("{}/metrics", api.bridge.url())).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("/vox.backend.v1.AuthService/WhoAmI"), "{metrics}");
    assert!(!metrics.contains("ImportNumbers") && !metrics.contains("AddNumbers"), "{metrics}");
    assert_eq!(total(&api, id).await, 0);
}

/// A storage failure in the middle of a large upload: a trigger makes SQLite fail the
/// insert of one number near the end ("datatype mismatch"). Nothing of the file lands,
/// and the caller gets an error id instead of SQLite's words, which are in voxbridge's
/// log under that id.
#[tokio::test]
async fn a_storage_failure_adds_nothing_and_answers_an_error_id() {
    let api = common::start().await;
    let campaign = api.campaign().await;
    let id = campaign["id"].as_str().unwrap();
    let database = api.dir.path().join("data").join("vox.db");
    sqlite(
        &database,
        "CREATE TABLE vox_test_ids (id INTEGER PRIMARY KEY);
         CREATE TRIGGER vox_test_fail BEFORE INSERT ON calls WHEN NEW.first_number = '+14150148998'
         BEGIN INSERT INTO vox_test_ids (id) VALUES ('not a number'); END;",
    );

    let (status, body) = upload(&api, id, csv(150_000)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let message = error_message(&body, "internal");
    let error_id = vox_domain::error::concealed_id(&message).unwrap_or_else(|| panic!("no error id in {message:?}"));
    assert_eq!(message, format!("internal error {error_id}; the details are in voxbridge's log under this id"));
    assert!(!body.to_string().contains("mismatch") && !body.to_string().to_lowercase().contains("sqlite"), "{body}");
    assert_eq!(total(&api, id).await, 0, "one refused row: nothing of the file landed");

    let logs = api.bridge.logs();
    let line =
        logs.lines().find(|l| l.contains(error_id)).unwrap_or_else(|| panic!("{error_id} not in the log:\n{logs}"));
    assert!(line.contains("sqlite: insert call: datatype mismatch"), "{line}");
}

/// Runs statements on the SQLite file beside voxbridge (python3's sqlite3 module, which
/// the test script needs anyway).
fn sqlite(database: &std::path::Path, statements: &str) {
    let python = vox_testkit::require_program("python3", "install python3");
    let out = std::process::Command::new(python)
        .args(["-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()"])
        .arg(database)
        .arg(statements)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
