//! Starts a real voxbridge process and serves the REST router in front of it on loopback,
//! so tests talk HTTP to the API exactly as the console does.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, reason = "test harness; a failure stops the test")]

use std::path::PathBuf;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tonic::transport::Channel;
use vox_testkit::ServerProcess;
use voxgate_rest::{RestConfig, router};

pub const ADMIN_EMAIL: &str = "admin@vox.test";
pub const ADMIN_PASSWORD: &str = "admin password for tests";
pub const USER_PASSWORD: &str = "a long enough password";

/// The voxbridge binary of this workspace (built by the workspace test run, or here).
fn voxbridge_bin() -> PathBuf {
    vox_testkit::workspace_binary("voxbridge", "voxbridge")
}

/// voxbridge plus the REST API in front of it, and an admin's token.
pub struct Api {
    pub bridge: ServerProcess,
    pub base: String,
    pub http: reqwest::Client,
    pub admin: String,
    /// voxbridge's data dir is `dir/data`; its logs are in `dir` too.
    pub dir: tempfile::TempDir,
}

pub async fn start() -> Api {
    start_with(&[], |_| {}).await
}

/// [`start`] with `extra` voxbridge flags, and the REST config as `configure` leaves it.
pub async fn start_with(extra: &[&str], configure: impl FnOnce(&mut RestConfig)) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        dir.path().join("data").display().to_string(),
        "--log-format".into(),
        "json".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let envs = [("VOX_ADMIN_EMAIL", ADMIN_EMAIL.to_string()), ("VOX_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string())];
    let bin = tokio::task::spawn_blocking(voxbridge_bin).await.unwrap();
    let bridge = ServerProcess::start("voxbridge", &bin, &args, &envs, dir.path()).await.unwrap();
    let channel = Channel::from_shared(bridge.url()).unwrap().connect_lazy();
    let mut config = RestConfig::new(channel);
    configure(&mut config);
    let app = router(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let mut api = Api { bridge, base, http, admin: String::new(), dir };
    api.admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    api
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with `token` as the bearer.
    pub fn req(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(token)
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .http
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        let (status, body) = read(r).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// `method path` as admin with a JSON body (or none); expects `want`.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>, want: StatusCode) -> Value {
        let mut r = self.req(method.clone(), path, &self.admin);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let (status, body) = read(r.send().await.unwrap()).await;
        assert_eq!(status, want, "{method} {path}: {body}");
        body
    }

    /// A user with `role`, created through the API; returns their token.
    pub async fn user(&self, email: &str, role: &str) -> String {
        let created = self
            .admin(
                Method::POST,
                "/api/v1/users",
                Some(json!({"email": email, "password": USER_PASSWORD, "role": role})),
                StatusCode::CREATED,
            )
            .await;
        assert_eq!(created["role"], role);
        self.login(email, USER_PASSWORD).await
    }

    pub async fn region(&self, name: &str) -> Value {
        self.admin(Method::POST, "/api/v1/regions", Some(json!({"name": name, "country": "us"})), StatusCode::CREATED)
            .await
    }

    /// A draft campaign in a new region.
    pub async fn campaign(&self) -> Value {
        let region = self.region("us-east-1").await;
        let spec = json!({
            "name": "renewals",
            "region_id": region["id"],
            "caller_id": "+14155550100",
            "window": {"time_zone": "UTC", "start": "00:00", "end": "24:00"},
        });
        self.admin(Method::POST, "/api/v1/campaigns", Some(spec), StatusCode::CREATED).await
    }
}

/// Status and JSON body; a body that is not JSON fails the test, since every answer
/// of the API (errors included) is JSON.
pub async fn read(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {text:?}"))
    };
    (status, body)
}

/// Asserts the API's error shape and returns the message.
pub fn error_message(body: &Value, code: &str) -> String {
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap_or_else(|| panic!("no error.message in {body}")).to_string()
}
