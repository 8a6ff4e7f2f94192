//! The console REST API as the console meets it: real HTTP in front of a real voxbridge.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests stop on failure")]

mod common;

use common::{Api, error_message, read};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn sign_in_and_refusals_answer_json() {
    let api = common::start().await;

    let (status, me) = read(api.req(Method::GET, "/api/v1/auth/me", &api.admin).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!((me["email"].as_str(), me["role"].as_str()), (Some(common::ADMIN_EMAIL), Some("admin")));

    let login = api
        .http
        .post(api.url("/api/v1/auth/login"))
        .json(&json!({"email": common::ADMIN_EMAIL, "password": common::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let (_, login) = read(login).await;
    let expires = login["expires_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(expires).is_ok(), "expires_at is RFC 3339: {expires}");
    assert_eq!(login["user"]["email"], common::ADMIN_EMAIL);

    let wrong = json!({"email": common::ADMIN_EMAIL, "password": "not the password at all"});
    let (status, body) = read(api.http.post(api.url("/api/v1/auth/login")).json(&wrong).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    error_message(&body, "unauthenticated");

    // No token: refused before voxbridge is asked.
    let (status, body) = read(api.http.get(api.url("/api/v1/regions")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_message(&body, "unauthenticated").contains("Authorization"), "{body}");
    let (status, body) = read(api.req(Method::GET, "/api/v1/regions", "not-a-jwt").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "voxbridge refuses a bad token: {body}");

    // Malformed JSON, wrong content type, a missing field: 400 naming the problem.
    let r = api
        .req(Method::POST, "/api/v1/regions", &api.admin)
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"name": "us-east-1", "country": }"#)
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let msg = error_message(&body, "invalid_argument");
    assert!(msg.starts_with("malformed JSON body:") && msg.contains("line 1 column"), "{msg}");

    let r = api.req(Method::POST, "/api/v1/regions", &api.admin).body(r#"{"name": "x"}"#).send().await.unwrap();
    let (status, body) = read(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body, "invalid_argument").contains("Content-Type"), "{body}");

    let r = api.req(Method::POST, "/api/v1/regions", &api.admin).json(&json!({"name": "us-east-1"})).send().await;
    let (status, body) = read(r.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body, "invalid_argument").contains("missing field `country`"), "{body}");

    // voxbridge's own validation comes back with its message, which names the field.
    let bad = json!({"name": "us-east-1", "country": "Narnia"});
    let (status, body) =
        read(api.req(Method::POST, "/api/v1/regions", &api.admin).json(&bad).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body, "invalid_argument").contains("country"), "{body}");

    // Unknown routes and methods keep the JSON shape.
    let (status, body) = read(api.req(Method::GET, "/api/v1/nope", &api.admin).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    error_message(&body, "not_found");
    let (status, body) = read(api.req(Method::DELETE, "/api/v1/regions", &api.admin).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    error_message(&body, "method_not_allowed");

    // 1 MiB is the most a JSON body may carry.
    let big = json!({"name": "x".repeat(1024 * 1024 + 10), "country": "US"});
    let (status, body) =
        read(api.req(Method::POST, "/api/v1/regions", &api.admin).json(&big).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    error_message(&body, "payload_too_large");
}

#[tokio::test]
async fn region_storage_secret_is_write_only() {
    let api = common::start().await;
    let secret = "the-storage-secret-key-4711";
    let create = json!({
        "name": "eu-west-1",
        "country": "de",
        "storage": {
            "endpoint_url": "http://127.0.0.1:9000",
            "bucket": "recordings",
            "access_key": "vox-access",
            "secret_key": secret,
            "force_path_style": true
        }
    });
    let r = api.req(Method::POST, "/api/v1/regions", &api.admin).json(&create).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let text = r.text().await.unwrap();
    assert!(!text.contains(secret), "the secret key never leaves: {text}");
    let region: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(region["country"], "DE");
    assert_eq!(region["storage"]["secret_key_set"], true);
    assert!(region["storage"].get("secret_key").is_none());
    let id = region["id"].as_str().unwrap();

    // Storage without a secret keeps the stored one.
    let storage = json!({"endpoint_url": "http://127.0.0.1:9000", "bucket": "calls", "access_key": "vox-access"});
    let put = api.admin(Method::PUT, &format!("/api/v1/regions/{id}/storage"), Some(storage), StatusCode::OK).await;
    assert_eq!(
        (put["storage"]["bucket"].as_str(), put["storage"]["secret_key_set"].as_bool()),
        (Some("calls"), Some(true))
    );

    let renamed = api
        .admin(Method::PATCH, &format!("/api/v1/regions/{id}"), Some(json!({"name": "eu-central-1"})), StatusCode::OK)
        .await;
    assert_eq!((renamed["name"].as_str(), renamed["id"].as_str()), (Some("eu-central-1"), Some(id)));
    let list = api.admin(Method::GET, "/api/v1/regions", None, StatusCode::OK).await;
    assert!(!list.to_string().contains(secret));
    assert_eq!(list["regions"].as_array().unwrap().len(), 1);

    api.admin(Method::DELETE, &format!("/api/v1/regions/{id}"), None, StatusCode::NO_CONTENT).await;
    let gone = api.admin(Method::GET, &format!("/api/v1/regions/{id}"), None, StatusCode::NOT_FOUND).await;
    error_message(&gone, "not_found");
}

#[tokio::test]
async fn nodes_register_once_and_follow_lifecycle() {
    let api = common::start().await;
    let region = api.region("us-east-1").await;
    let register = json!({"kind": "fleet", "region_id": region["id"], "endpoint": "http://10.0.0.5:5002"});
    let r = api.req(Method::POST, "/api/v1/nodes", &api.admin).json(&register).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let text = r.text().await.unwrap();
    let created: Value = serde_json::from_str(&text).unwrap();
    let secret = created["api_secret"].as_str().unwrap();
    assert!(!secret.is_empty());
    assert_eq!(text.matches(secret).count(), 1, "the secret is in the response exactly once");
    let node = &created["node"];
    let id = node["id"].as_str().unwrap();
    assert_eq!((node["kind"].as_str(), node["sip_port"].as_u64()), (Some("fleet"), Some(5080)));
    assert_eq!((node["desired_state"].as_str(), node["online"].as_bool()), (Some("active"), Some(false)));

    let r = api.req(Method::GET, &format!("/api/v1/nodes/{id}"), &api.admin).send().await.unwrap();
    let text = r.text().await.unwrap();
    assert!(!text.contains(secret) && !text.contains("api_secret"), "GET never shows the secret: {text}");

    let fleet = api.admin(Method::GET, "/api/v1/nodes?kind=fleet", None, StatusCode::OK).await;
    assert_eq!(fleet["nodes"].as_array().unwrap().len(), 1);
    let gateways = api.admin(Method::GET, "/api/v1/nodes?kind=gateway", None, StatusCode::OK).await;
    assert!(gateways["nodes"].as_array().unwrap().is_empty());
    let bad = api.admin(Method::GET, "/api/v1/nodes?kind=router", None, StatusCode::BAD_REQUEST).await;
    let msg = error_message(&bad, "invalid_argument");
    assert!(msg.contains("kind") && msg.contains("router") && msg.contains("`fleet`"), "{msg}");
    let bad = json!({"kind": "router", "endpoint": "http://10.0.0.6:5002"});
    let bad = api.admin(Method::POST, "/api/v1/nodes", Some(bad), StatusCode::BAD_REQUEST).await;
    let msg = error_message(&bad, "invalid_argument");
    assert!(msg.contains("kind: unknown variant `router`") && msg.contains("`gateway`"), "{msg}");

    let lifecycle = format!("/api/v1/nodes/{id}/lifecycle");
    let body = json!({"action": "maintenance", "reason": "kernel update"});
    let drained = api.admin(Method::POST, &lifecycle, Some(body.clone()), StatusCode::OK).await;
    assert_eq!(drained["desired_state"], "maintenance");
    let seen = api.admin(Method::GET, &format!("/api/v1/nodes/{id}"), None, StatusCode::OK).await;
    assert_eq!(seen["desired_state"], "maintenance");
    let audit = api.admin(Method::GET, &format!("/api/v1/audit?target_id={id}&limit=1"), None, StatusCode::OK).await;
    let latest = &audit["events"][0];
    assert_eq!(
        (latest["action"].as_str(), latest["reason"].as_str()),
        (Some("node.maintenance"), Some("kernel update"))
    );
    assert_eq!(latest["actor"], format!("user:{}", common::ADMIN_EMAIL));
    let bad =
        api.admin(Method::POST, &lifecycle, Some(json!({"action": "reboot", "reason": "x"})), StatusCode::BAD_REQUEST);
    assert!(error_message(&bad.await, "invalid_argument").contains("action"));

    // A viewer may look but not act.
    let viewer = api.user("viewer@vox.test", "viewer").await;
    let r = api.req(Method::POST, &lifecycle, &viewer).json(&json!({"action": "resume", "reason": "mine"}));
    let (status, denied) = read(r.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    error_message(&denied, "permission_denied");
    let (status, _) = read(api.req(Method::GET, &format!("/api/v1/nodes/{id}"), &viewer).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    let rotated = api.admin(Method::POST, &format!("/api/v1/nodes/{id}/rotate-secret"), None, StatusCode::OK).await;
    let new_secret = rotated["api_secret"].as_str().unwrap();
    assert!(!new_secret.is_empty() && new_secret != secret);
    let renamed = api
        .admin(Method::PATCH, &format!("/api/v1/nodes/{id}"), Some(json!({"name": "fleet-a"})), StatusCode::OK)
        .await;
    assert_eq!(renamed["name"], "fleet-a");
    api.admin(Method::DELETE, &format!("/api/v1/nodes/{id}"), None, StatusCode::NO_CONTENT).await;
}

#[tokio::test]
async fn users_are_managed_by_admins() {
    let api = common::start().await;
    let operator = api.user("op@vox.test", "operator").await;
    let users = api.admin(Method::GET, "/api/v1/users", None, StatusCode::OK).await;
    let op = users["users"].as_array().unwrap().iter().find(|u| u["email"] == "op@vox.test").unwrap().clone();
    let id = op["id"].as_str().unwrap();
    let (status, body) = read(api.req(Method::GET, "/api/v1/users", &operator).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let promoted =
        api.admin(Method::PATCH, &format!("/api/v1/users/{id}"), Some(json!({"role": "admin"})), StatusCode::OK).await;
    assert_eq!(promoted["role"], "admin");
    let bad = api
        .admin(Method::PATCH, &format!("/api/v1/users/{id}"), Some(json!({"role": "root"})), StatusCode::BAD_REQUEST)
        .await;
    let msg = error_message(&bad, "invalid_argument");
    assert!(msg.contains("role") && msg.contains("`viewer`"), "{msg}");
    api.admin(Method::DELETE, &format!("/api/v1/users/{id}"), None, StatusCode::NO_CONTENT).await;
    let (status, _) = read(api.req(Method::GET, "/api/v1/auth/me", &operator).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a deleted user's token stops working");
}

#[tokio::test]
async fn an_integration_uses_an_api_key_until_it_is_revoked() {
    let api = common::start().await;
    let created = api
        .admin(Method::POST, "/api/v1/api-keys", Some(json!({"name": "CRM", "role": "viewer"})), StatusCode::CREATED)
        .await;
    let secret = created["secret"].as_str().unwrap().to_string();
    let id = created["key"]["id"].as_str().unwrap();
    assert_eq!((created["key"]["role"].as_str(), created["key"]["campaign_id"].as_null()), (Some("viewer"), Some(())));
    assert!(created["key"]["revoked_at"].is_null(), "{created}");

    let (status, body) = read(api.req(Method::GET, "/api/v1/calls", &secret).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = read(api.req(Method::GET, "/api/v1/api-keys", &secret).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer key does not manage keys: {body}");
    let listed = api.admin(Method::GET, "/api/v1/api-keys", None, StatusCode::OK).await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&secret), "the list never shows a secret");

    let bad = api
        .admin(Method::POST, "/api/v1/api-keys", Some(json!({"name": "", "role": "viewer"})), StatusCode::BAD_REQUEST)
        .await;
    assert!(error_message(&bad, "invalid_argument").contains("name"), "{bad}");

    let revoked = api.admin(Method::POST, &format!("/api/v1/api-keys/{id}/revoke"), None, StatusCode::OK).await;
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let (status, body) = read(api.req(Method::GET, "/api/v1/calls", &secret).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

/// Every route of the API, as the console is promised it.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/login"),
    ("get", "/api/v1/api-keys"),
    ("post", "/api/v1/api-keys"),
    ("post", "/api/v1/api-keys/{id}/revoke"),
    ("get", "/api/v1/auth/me"),
    ("get", "/api/v1/regions"),
    ("post", "/api/v1/regions"),
    ("get", "/api/v1/regions/{id}"),
    ("patch", "/api/v1/regions/{id}"),
    ("delete", "/api/v1/regions/{id}"),
    ("put", "/api/v1/regions/{id}/storage"),
    ("post", "/api/v1/regions/{id}/storage/test"),
    ("get", "/api/v1/calls/{id}/recording"),
    ("get", "/api/v1/recordings/{key}"),
    ("get", "/api/v1/nodes"),
    ("post", "/api/v1/nodes"),
    ("get", "/api/v1/nodes/{id}"),
    ("patch", "/api/v1/nodes/{id}"),
    ("delete", "/api/v1/nodes/{id}"),
    ("post", "/api/v1/nodes/{id}/rotate-secret"),
    ("post", "/api/v1/nodes/{id}/lifecycle"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/campaigns"),
    ("post", "/api/v1/campaigns"),
    ("get", "/api/v1/campaigns/{id}"),
    ("put", "/api/v1/campaigns/{id}"),
    ("post", "/api/v1/campaigns/{id}/start"),
    ("post", "/api/v1/campaigns/{id}/pause"),
    ("post", "/api/v1/campaigns/{id}/complete"),
    ("post", "/api/v1/campaigns/{id}/numbers"),
    ("get", "/api/v1/campaigns/{id}/ledger"),
    ("get", "/api/v1/campaigns/{id}/compliance.csv"),
    ("get", "/api/v1/do-not-call"),
    ("post", "/api/v1/do-not-call"),
    ("post", "/api/v1/do-not-call/remove"),
    ("get", "/api/v1/calls"),
    ("get", "/api/v1/calls/{id}"),
    ("get", "/api/v1/calls/{id}/events"),
    ("post", "/api/v1/calls/{id}/cancel"),
    ("get", "/api/v1/dashboard"),
    ("get", "/api/v1/dashboard/stream"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/events/stream"),
    ("get", "/api/v1/webhooks"),
    ("post", "/api/v1/webhooks"),
    ("patch", "/api/v1/webhooks/{id}"),
    ("delete", "/api/v1/webhooks/{id}"),
    ("post", "/api/v1/webhooks/{id}/rotate-secret"),
    ("get", "/api/v1/webhooks/{id}/deliveries"),
    ("get", "/api/v1/webhooks/dead-letters"),
    ("post", "/api/v1/webhooks/dead-letters/requeue"),
    ("get", "/api/v1/webhooks/queue"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("patch", "/api/v1/users/{id}"),
    ("delete", "/api/v1/users/{id}"),
    ("post", "/api/v1/jobs/cleanup"),
    ("get", "/api/v1/dialler"),
    ("get", "/api/v1/openapi.json"),
];

#[tokio::test]
async fn openapi_documents_every_route_the_router_serves() {
    let api = common::start().await;
    let (status, doc) = read(api.http.get(api.url("/api/v1/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().unwrap();

    for (method, path) in ROUTES {
        let op = &paths.get(*path).unwrap_or_else(|| panic!("{path} is not documented"))[*method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} has no responses");
    }
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|p| p.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap())
        .collect();
    let documented = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), documented, "operationIds are unique");
    assert_eq!(documented, ROUTES.len(), "the document has routes beyond the promised ones");

    // Every documented operation is served: without a token it is refused with 401, never
    // a 404 or 405 (sign-in and this document need no token).
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let url = api.url(&path.replace("{id}", "x"));
            let r = api.http.request(method.to_uppercase().parse().unwrap(), url).send().await.unwrap();
            let (status, body) = read(r).await;
            let want = match path.as_str() {
                "/api/v1/auth/login" => StatusCode::BAD_REQUEST,
                // Playback takes a signature, not a token: without one it is a bad request.
                "/api/v1/recordings/{key}" => StatusCode::BAD_REQUEST,
                "/api/v1/openapi.json" => StatusCode::OK,
                _ => StatusCode::UNAUTHORIZED,
            };
            assert_eq!(status, want, "{method} {path}: {body}");
        }
    }

    let create = &paths["/api/v1/regions"]["post"];
    let schema = &create["requestBody"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(schema, "#/components/schemas/CreateRegionRequest");
    let upload = &paths["/api/v1/campaigns/{id}/numbers"]["post"]["requestBody"]["content"];
    assert!(upload.get("text/csv").is_some() && upload.get("application/json").is_some(), "{upload}");
    let node = &doc["components"]["schemas"]["NodeKind"]["enum"];
    assert_eq!(node, &json!(["fleet", "gateway", "console", "background", "dialler"]));
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn an_unreachable_control_plane_answers_503_with_retry_after() {
    let mut api: Api = common::start().await;
    let (status, _) = read(api.req(Method::GET, "/api/v1/regions", &api.admin).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    api.bridge.kill();
    let r = api.req(Method::GET, "/api/v1/regions", &api.admin).send().await.unwrap();
    assert_eq!(r.headers().get(RETRY_AFTER).map(|v| v.to_str().unwrap().to_string()).as_deref(), Some("1"));
    let (status, body) = read(r).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let msg = error_message(&body, "unavailable");
    assert!(msg.contains("control plane") && msg.contains("unreachable"), "{msg}");
}
