//! Outgoing webhooks through the console REST API, in front of a real voxbridge: an admin
//! registers endpoints (the secret shown once), edits, rotates and deletes them; bad input
//! is refused naming the field; other roles are refused; and an endpoint that keeps
//! failing ends in the dead letters, from which a requeue delivers the event once the
//! receiver (a local HTTP server here) answers again. Signature verification with the
//! reference library is tested end to end in `tests/` (vox-e2e).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests stop on failure")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use common::{error_message, read};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// voxbridge flags for these tests: the receiver is a plain-HTTP loopback server.
const INSECURE: &[&str] = &["--allow-insecure-webhook-urls"];

/// A webhook receiver on loopback: answers 503 while `failing`, else 204, and keeps the
/// `webhook-id` and body of every request it gets.
struct Receiver {
    url: String,
    failing: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<(String, Value)>>>,
}

async fn receiver() -> Receiver {
    let failing = Arc::new(AtomicBool::new(true));
    let got = Arc::new(Mutex::new(Vec::new()));
    let (f, g) = (failing.clone(), got.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (f, g) = (f.clone(), g.clone());
            async move {
                let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                g.lock().await.push((id, serde_json::from_str(&body).unwrap_or(Value::Null)));
                if f.load(Ordering::SeqCst) { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::NO_CONTENT }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, failing, got }
}

/// Polls `GET path` as admin until `done` holds for the body (at most 20 s).
async fn eventually(api: &common::Api, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let body = api.admin(Method::GET, path, None, StatusCode::OK).await;
        if done(&body) {
            return body;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{what}: still not after 20 s; last {path}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_admin_manages_endpoints_and_sees_each_secret_once() {
    let api = common::start().await;
    let campaign = api.campaign().await;
    let created = api
        .admin(
            Method::POST,
            "/api/v1/webhooks",
            Some(json!({
                "url": "https://crm.example.com/vox",
                "description": "HubSpot",
                "event_types": ["call.answered", "call.ended"],
                "campaign_id": campaign["id"],
            })),
            StatusCode::CREATED,
        )
        .await;
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_") && secret.len() > 20, "{created}");
    let endpoint = &created["endpoint"];
    let id = endpoint["id"].as_str().unwrap().to_string();
    assert_eq!(endpoint["event_types"], json!(["call.answered", "call.ended"]));
    assert_eq!((endpoint["campaign_id"].clone(), endpoint["disabled"].clone()), (campaign["id"].clone(), json!(false)));
    assert!(endpoint["previous_secret_expires_at"].is_null(), "{endpoint}");

    let listed = api.admin(Method::GET, "/api/v1/webhooks", None, StatusCode::OK).await;
    assert_eq!(listed["endpoints"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        (listed["endpoints"][0]["id"].as_str(), listed["endpoints"][0]["url"].as_str()),
        (Some(&*id), Some("https://crm.example.com/vox"))
    );
    assert!(!listed.to_string().contains(&secret), "the list never shows a secret: {listed}");
    assert!(listed["endpoints"][0].get("secret").is_none(), "{listed}");

    // A patch changes what it names and keeps the rest.
    let path = format!("/api/v1/webhooks/{id}");
    let disabled = api.admin(Method::PATCH, &path, Some(json!({"disabled": true})), StatusCode::OK).await;
    assert_eq!(disabled["disabled"], true);
    assert_eq!(
        (disabled["description"].as_str(), disabled["campaign_id"].clone()),
        (Some("HubSpot"), campaign["id"].clone())
    );
    assert_eq!(disabled["event_types"], json!(["call.answered", "call.ended"]));
    let widened = api
        .admin(Method::PATCH, &path, Some(json!({"campaign_id": null, "event_types": ["call.*"]})), StatusCode::OK)
        .await;
    assert!(widened["campaign_id"].is_null(), "null removes the campaign filter: {widened}");
    assert_eq!((widened["event_types"].clone(), widened["disabled"].clone()), (json!(["call.*"]), json!(true)));

    let rotated = api.admin(Method::POST, &format!("{path}/rotate-secret"), None, StatusCode::OK).await;
    let new_secret = rotated["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret, "a new secret: {rotated}");
    assert!(
        rotated["endpoint"]["previous_secret_expires_at"].is_string(),
        "the old secret signs for a while: {rotated}"
    );
    let listed = api.admin(Method::GET, "/api/v1/webhooks", None, StatusCode::OK).await.to_string();
    assert!(!listed.contains(new_secret) && !listed.contains(&secret), "{listed}");

    let (status, body) = read(api.req(Method::DELETE, &path, &api.admin).send().await.unwrap()).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let listed = api.admin(Method::GET, "/api/v1/webhooks", None, StatusCode::OK).await;
    assert_eq!(listed["endpoints"], json!([]));
    let gone = api.admin(Method::PATCH, &path, Some(json!({"disabled": false})), StatusCode::NOT_FOUND).await;
    assert!(error_message(&gone, "not_found").contains(&id), "{gone}");
}

#[tokio::test]
async fn bad_endpoints_are_refused_naming_the_field() {
    let api = common::start().await;
    let refuse = |body: Value| {
        let api = &api;
        async move {
            let bad = api.admin(Method::POST, "/api/v1/webhooks", Some(body), StatusCode::BAD_REQUEST).await;
            error_message(&bad, "invalid_argument")
        }
    };
    let msg = refuse(json!({"url": "http://crm.example.com/vox"})).await;
    assert!(msg.contains("url") && msg.contains("https://"), "plain http is refused by default: {msg}");
    let msg = refuse(json!({"url": "ftp://crm.example.com"})).await;
    assert!(msg.contains("url"), "{msg}");
    let msg = refuse(json!({"url": "https://crm.example.com", "event_types": ["call.ended", "call.exploded"]})).await;
    assert!(msg.contains("event_types[1]") && msg.contains("call.exploded"), "{msg}");
    let msg = refuse(json!({"description": "no url"})).await;
    assert!(msg.contains("url"), "{msg}");
    let msg = refuse(json!({"url": "https://crm.example.com", "event_types": "call.ended"})).await;
    assert!(msg.contains("event_types"), "{msg}");

    let ok = api
        .admin(Method::POST, "/api/v1/webhooks", Some(json!({"url": "https://crm.example.com"})), StatusCode::CREATED)
        .await;
    assert_eq!(ok["endpoint"]["event_types"], json!([]), "no types: every type");
    let path = format!("/api/v1/webhooks/{}", ok["endpoint"]["id"].as_str().unwrap());
    let bad = api.admin(Method::PATCH, &path, Some(json!({"url": "crm.example.com"})), StatusCode::BAD_REQUEST).await;
    assert!(error_message(&bad, "invalid_argument").contains("url"), "{bad}");
    let bad = api.admin(Method::PATCH, &path, Some(json!({"disabled": "yes"})), StatusCode::BAD_REQUEST).await;
    assert!(error_message(&bad, "invalid_argument").contains("disabled"), "{bad}");
    let bad = api.admin(Method::GET, &format!("{path}/deliveries?limit=many"), None, StatusCode::BAD_REQUEST).await;
    assert!(error_message(&bad, "invalid_argument").contains("limit"), "{bad}");
}

#[tokio::test]
async fn only_admins_reach_webhooks() {
    let api = common::start().await;
    let created = api
        .admin(Method::POST, "/api/v1/webhooks", Some(json!({"url": "https://crm.example.com"})), StatusCode::CREATED)
        .await;
    let id = created["endpoint"]["id"].as_str().unwrap();
    for role in ["viewer", "operator"] {
        let token = api.user(&format!("{role}@vox.test"), role).await;
        for (method, path, body) in [
            (Method::GET, "/api/v1/webhooks".to_string(), None),
            (Method::POST, "/api/v1/webhooks".to_string(), Some(json!({"url": "https://evil.example.com"}))),
            (Method::PATCH, format!("/api/v1/webhooks/{id}"), Some(json!({"disabled": true}))),
            (Method::DELETE, format!("/api/v1/webhooks/{id}"), None),
            (Method::POST, format!("/api/v1/webhooks/{id}/rotate-secret"), None),
            (Method::GET, format!("/api/v1/webhooks/{id}/deliveries"), None),
            (Method::GET, "/api/v1/webhooks/dead-letters".to_string(), None),
            (Method::POST, "/api/v1/webhooks/dead-letters/requeue".to_string(), Some(json!({}))),
            (Method::GET, "/api/v1/webhooks/queue".to_string(), None),
        ] {
            let mut r = api.req(method.clone(), &path, &token);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let (status, body) = read(r.send().await.unwrap()).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{role}: {method} {path}: {body}");
            error_message(&body, "permission_denied");
        }
    }
    let listed = api.admin(Method::GET, "/api/v1/webhooks", None, StatusCode::OK).await;
    assert_eq!(listed["endpoints"].as_array().unwrap().len(), 1, "nothing was added by the refused calls: {listed}");
    assert_eq!(listed["endpoints"][0]["disabled"], false);
}

#[tokio::test]
async fn a_failing_endpoint_ends_in_the_dead_letters_and_a_requeue_delivers_it() {
    let api = common::start_with(INSECURE, |_| {}).await;
    let hook = receiver().await;
    let created = api
        .admin(
            Method::POST,
            "/api/v1/webhooks",
            Some(json!({"url": hook.url, "event_types": ["campaign.state_changed"]})),
            StatusCode::CREATED,
        )
        .await;
    let id = created["endpoint"]["id"].as_str().unwrap().to_string();
    let queue = api.admin(Method::GET, "/api/v1/webhooks/queue", None, StatusCode::OK).await;
    assert_eq!((queue["ready"].as_u64(), queue["dead"].as_u64()), (Some(0), Some(0)), "{queue}");
    let none = api.admin(Method::POST, "/api/v1/webhooks/dead-letters/requeue", None, StatusCode::OK).await;
    assert_eq!(none["requeued"], 0, "nothing to requeue yet, and no body is fine: {none}");

    let campaign = api.campaign().await;
    api.admin(
        Method::POST,
        &format!("/api/v1/campaigns/{}/start", campaign["id"].as_str().unwrap()),
        None,
        StatusCode::OK,
    )
    .await;

    // Three attempts (1 s, then 2 s apart), then a dead letter.
    let deliveries = format!("/api/v1/webhooks/{id}/deliveries");
    let attempts = eventually(&api, &deliveries, "three failed attempts", |b| {
        b["deliveries"].as_array().is_some_and(|d| d.iter().any(|a| a["outcome"] == "dead_lettered"))
    })
    .await;
    let attempts = attempts["deliveries"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    let newest = &attempts[0];
    assert_eq!((newest["attempt"].as_u64(), newest["status"].as_u64()), (Some(3), Some(503)), "newest first: {newest}");
    assert_eq!(newest["event_type"], "campaign.state_changed");
    assert!(newest["error"].is_string(), "{newest}");
    assert_eq!(
        attempts.iter().map(|a| a["outcome"].as_str().unwrap()).collect::<Vec<_>>(),
        ["dead_lettered", "retrying", "retrying"]
    );
    let one = api.admin(Method::GET, &format!("{deliveries}?limit=1"), None, StatusCode::OK).await;
    assert_eq!(one["deliveries"].as_array().unwrap().len(), 1, "{one}");

    let dead = api.admin(Method::GET, "/api/v1/webhooks/dead-letters", None, StatusCode::OK).await;
    let dead = dead["deliveries"].as_array().unwrap().clone();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0]["endpoint_id"].as_str(), dead[0]["attempts"].as_u64()), (Some(&*id), Some(3)), "{dead:?}");
    let event_id = dead[0]["event_id"].as_u64().unwrap();
    let queue = api.admin(Method::GET, "/api/v1/webhooks/queue", None, StatusCode::OK).await;
    assert_eq!(queue["dead"], 1, "{queue}");

    // The receiver recovers; the requeue of that one job delivers the event.
    hook.failing.store(false, Ordering::SeqCst);
    let requeued = api
        .admin(
            Method::POST,
            "/api/v1/webhooks/dead-letters/requeue",
            Some(json!({"job_id": dead[0]["job_id"]})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(requeued["requeued"], 1, "{requeued}");
    eventually(&api, &deliveries, "the requeued delivery", |b| b["deliveries"][0]["outcome"] == "delivered").await;
    let dead = api.admin(Method::GET, "/api/v1/webhooks/dead-letters", None, StatusCode::OK).await;
    assert_eq!(dead["deliveries"], json!([]), "{dead}");
    let got = hook.got.lock().await.clone();
    assert_eq!(got.len(), 4, "three failures and the delivery: {got:?}");
    assert!(
        got.iter().all(|(wid, body)| !wid.is_empty() && *wid == got[0].0 && body["data"]["id"] == event_id),
        "every attempt carries the same event and webhook-id: {got:?}"
    );
    assert_eq!(got[3].1["type"], "campaign.state_changed", "{got:?}");
}

/// The webhook routes, as SECURITY.md and the console know them.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/webhooks"),
    ("post", "/api/v1/webhooks"),
    ("patch", "/api/v1/webhooks/{id}"),
    ("delete", "/api/v1/webhooks/{id}"),
    ("post", "/api/v1/webhooks/{id}/rotate-secret"),
    ("get", "/api/v1/webhooks/{id}/deliveries"),
    ("get", "/api/v1/webhooks/dead-letters"),
    ("post", "/api/v1/webhooks/dead-letters/requeue"),
    ("get", "/api/v1/webhooks/queue"),
];

#[tokio::test]
async fn every_webhook_route_is_documented_and_needs_a_token() {
    let api = common::start().await;
    let (status, doc) = read(api.http.get(api.url("/api/v1/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    for (method, path) in ROUTES {
        let op = &doc["paths"][*path][*method];
        assert_eq!(op["tags"], json!(["webhooks"]), "{method} {path} is documented under webhooks: {op}");
        let url = api.url(&path.replace("{id}", "wh_x"));
        let (status, body) =
            read(api.http.request(method.to_uppercase().parse().unwrap(), url).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
    }
    assert!(doc["tags"].as_array().unwrap().iter().any(|t| t["name"] == "webhooks"), "{}", doc["tags"]);
    let create = &doc["paths"]["/api/v1/webhooks"]["post"]["responses"]["201"]["content"]["application/json"]["schema"];
    assert_eq!(create["$ref"], "#/components/schemas/WebhookSecret");
    // A wrong method on a known webhook path answers the JSON error shape.
    let (status, body) = read(api.req(Method::PUT, "/api/v1/webhooks/queue", &api.admin).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
}
