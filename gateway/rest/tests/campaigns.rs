//! Campaigns, their numbers, calls and the dashboard through the console REST API, in
//! front of a real voxbridge.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests stop on failure")]

mod common;

use common::{error_message, read};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn numbers_upload_reports_rows_as_the_file_numbers_them() {
    let api = common::start().await;
    let campaign = api.campaign().await;
    assert_eq!(campaign["status"], "draft");
    let id = campaign["id"].as_str().unwrap();
    let numbers = format!("/api/v1/campaigns/{id}/numbers");

    // Row 1 is the header, row 3 is not a number, row 5 repeats row 2.
    let csv = "phone,name\r\n+1 415 555 0101,Ann\r\n12345,Bad\r\n+14155550102,\"Cy, Jr\"\r\n+14155550101,Again\r\n";
    let r = api.req(Method::POST, &numbers, &api.admin).header(CONTENT_TYPE, "text/csv").body(csv).send().await;
    let (status, added) = read(r.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!(added["accepted"], 2);
    let rejected = added["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{added}");
    assert_eq!((rejected[0]["row"].as_u64(), rejected[0]["input"].as_str()), (Some(3), Some("12345")));
    assert!(rejected[0]["reason"].as_str().unwrap().contains("'+'"), "{added}");
    assert_eq!((rejected[1]["row"].as_u64(), rejected[1]["reason"].as_str()), (Some(5), Some("duplicate of row 2")));

    // JSON rows are positions in the list; numbers already in the campaign are refused.
    let json_upload = json!({"numbers": ["+14155550103", "+14155550102"]});
    let added = api.admin(Method::POST, &numbers, Some(json_upload), StatusCode::OK).await;
    assert_eq!(added["accepted"], 1);
    assert_eq!(
        (added["rejected"][0]["row"].as_u64(), added["rejected"][0]["reason"].as_str()),
        (Some(2), Some("already in the campaign"))
    );
    let seen = api.admin(Method::GET, &format!("/api/v1/campaigns/{id}"), None, StatusCode::OK).await;
    assert_eq!(seen["counts"]["pending"], 3);

    let r = api.req(Method::POST, &numbers, &api.admin).header(CONTENT_TYPE, "text/plain").body("+14155550104");
    let (status, body) = read(r.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body, "invalid_argument").contains("text/csv"), "{body}");

    // Uploads may be larger than other bodies (10 MiB, see numbers.rs), but not without bound.
    let huge = "+14155550101\n".repeat(10 * 1024 * 1024 / 13 + 10);
    let r = api.req(Method::POST, &numbers, &api.admin).header(CONTENT_TYPE, "text/csv").body(huge).send().await;
    let (status, body) = read(r.unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    error_message(&body, "payload_too_large");
}

#[tokio::test]
async fn campaigns_move_through_their_statuses() {
    let api = common::start().await;
    let campaign = api.campaign().await;
    let id = campaign["id"].as_str().unwrap();
    assert_eq!(campaign["spec"]["pacing"]["mode"], "predictive", "defaults come back filled in");

    let mut spec = campaign["spec"].clone();
    spec["weight"] = json!(5);
    spec["pacing"] = json!({"mode": "fixed_ratio", "fixed_ratio": 1.5});
    let updated = api.admin(Method::PUT, &format!("/api/v1/campaigns/{id}"), Some(spec), StatusCode::OK).await;
    assert_eq!(
        (updated["spec"]["weight"].as_u64(), updated["spec"]["pacing"]["mode"].as_str()),
        (Some(5), Some("fixed_ratio"))
    );

    let pause = format!("/api/v1/campaigns/{id}/pause");
    let refused = api.admin(Method::POST, &pause, None, StatusCode::PRECONDITION_FAILED).await;
    error_message(&refused, "failed_precondition");
    let started = api.admin(Method::POST, &format!("/api/v1/campaigns/{id}/start"), None, StatusCode::OK).await;
    assert_eq!(started["status"], "running");
    assert_eq!(api.admin(Method::POST, &pause, None, StatusCode::OK).await["status"], "paused");
    let running = api.admin(Method::GET, "/api/v1/campaigns?status=running", None, StatusCode::OK).await;
    assert!(running["campaigns"].as_array().unwrap().is_empty());
    let done = api.admin(Method::POST, &format!("/api/v1/campaigns/{id}/complete"), None, StatusCode::OK).await;
    assert_eq!(done["status"], "completed");
    let completed = api.admin(Method::GET, "/api/v1/campaigns?status=completed", None, StatusCode::OK).await;
    assert_eq!(completed["campaigns"][0]["id"], id);
    let bad = api.admin(Method::GET, "/api/v1/campaigns?status=finished", None, StatusCode::BAD_REQUEST).await;
    assert!(error_message(&bad, "invalid_argument").contains("status"));
}

#[tokio::test]
async fn calls_page_with_tokens_and_cancel() {
    let api = common::start().await;
    let campaign = api.campaign().await;
    let id = campaign["id"].as_str().unwrap();
    let numbers: Vec<String> = (0..5).map(|i| format!("+1415555020{i}")).collect();
    let added = api
        .admin(
            Method::POST,
            &format!("/api/v1/campaigns/{id}/numbers"),
            Some(json!({"numbers": numbers})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(added["accepted"], 5);

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut path = format!("/api/v1/calls?campaign_id={id}&limit=2");
    loop {
        let page = api.admin(Method::GET, &path, None, StatusCode::OK).await;
        pages += 1;
        let calls = page["calls"].as_array().unwrap();
        assert!(calls.len() <= 2);
        seen.extend(calls.iter().map(|c| c["id"].as_str().unwrap().to_string()));
        assert!(calls.iter().all(|c| c["state"] == "pending" && c["campaign_id"] == id), "{page}");
        match page["next_page_token"].as_str() {
            Some(token) => path = format!("/api/v1/calls?campaign_id={id}&limit=2&page_token={token}"),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "every call once across the pages");
    assert!(pages >= 3);

    let both = api.admin(Method::GET, "/api/v1/calls?state=pending,completed&state=busy", None, StatusCode::OK).await;
    assert_eq!(both["calls"].as_array().unwrap().len(), 5);
    let none = api.admin(Method::GET, "/api/v1/calls?state=completed", None, StatusCode::OK).await;
    assert!(none["calls"].as_array().unwrap().is_empty());
    let bad = api.admin(Method::GET, "/api/v1/calls?state=lost", None, StatusCode::BAD_REQUEST).await;
    assert!(error_message(&bad, "invalid_argument").contains("`in_progress`"));
    let future = api.admin(Method::GET, "/api/v1/calls?created_after=2999-01-01T00:00:00Z", None, StatusCode::OK).await;
    assert!(future["calls"].as_array().unwrap().is_empty());
    let bad = api.admin(Method::GET, "/api/v1/calls?page_token=garbage", None, StatusCode::BAD_REQUEST).await;
    assert!(error_message(&bad, "invalid_argument").starts_with("page_token"));

    let call_id = &seen[0];
    let call = api.admin(Method::GET, &format!("/api/v1/calls/{call_id}"), None, StatusCode::OK).await;
    assert_eq!((call["direction"].as_str(), call["channel"].as_str()), (Some("outbound"), Some("phone")));
    assert!(call["node_id"].is_null() && call["ended_at"].is_null());
    let canceled = api
        .admin(
            Method::POST,
            &format!("/api/v1/calls/{call_id}/cancel"),
            Some(json!({"reason": "customer asked"})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(canceled["state"], "canceled");
    let again = api
        .admin(Method::POST, &format!("/api/v1/calls/{call_id}/cancel"), None, StatusCode::PRECONDITION_FAILED)
        .await;
    error_message(&again, "failed_precondition");
    let events = api.admin(Method::GET, &format!("/api/v1/calls/{call_id}/events"), None, StatusCode::OK).await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0]["from_state"].is_null());
    assert_eq!(
        (events[1]["to_state"].as_str(), events[1]["reason"].as_str()),
        (Some("canceled"), Some("customer asked"))
    );

    let cleanup = api.admin(Method::POST, "/api/v1/jobs/cleanup", None, StatusCode::OK).await;
    assert_eq!(cleanup["total"], 0);
}

#[tokio::test]
async fn dashboard_streams_as_server_sent_events() {
    use futures::StreamExt;

    let api = common::start().await;
    let once = api.admin(Method::GET, "/api/v1/dashboard", None, StatusCode::OK).await;
    assert_eq!(once["capacity"]["fleet_nodes_total"], 0);

    let (status, body) = read(api.http.get(api.url("/api/v1/dashboard/stream")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    error_message(&body, "unauthenticated");

    let r = api.req(Method::GET, "/api/v1/dashboard/stream", &api.admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CONTENT_TYPE], "text/event-stream");
    let mut chunks = r.bytes_stream();
    let mut text = String::new();
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let chunk = chunks.next().await.expect("the stream stays open").unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            if let Some((event, _)) = text.split_once("\n\n") {
                return event.to_string();
            }
        }
    })
    .await
    .expect("a first event within 10 s");
    let mut lines = event.lines();
    assert_eq!(lines.next(), Some("event: dashboard"), "{event}");
    let data: Value = serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(data["capacity"]["fleet_nodes_online"], 0);
    assert!(chrono::DateTime::parse_from_rfc3339(data["at"].as_str().unwrap()).is_ok());
    drop(chunks);

    // A new region changes nothing on the dashboard, but the API still answers after the
    // stream was dropped mid-way.
    api.region("us-west-2").await;
}
