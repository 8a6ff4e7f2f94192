//! Webhooks from a real voxbridge to receivers in the test: signed as the Standard
//! Webhooks reference library (PyPI `standardwebhooks`) verifies, retried with backoff
//! until the endpoint answers, dead-lettered after the last attempt and delivered again
//! when an admin requeues it.
#![allow(clippy::unwrap_used, reason = "test: a failed step stops it with its error")]

mod common;

use std::collections::VecDeque;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::authed;
use tonic::Code;
use vox_proto::backend::v1 as pb;

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

/// A receiver answering from a script of statuses (then 200), recording every request.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> (Receiver, String) {
        let r = Receiver { script: Arc::new(Mutex::new(script.iter().copied().collect())), ..Default::default() };
        let app = axum::Router::new().route("/hook", axum::routing::post(take)).with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, url)
    }

    fn got(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    fn answer_always(&self, status: u16) {
        let mut s = self.script.lock().unwrap();
        s.clear();
        s.extend(std::iter::repeat_n(status, 100));
    }

    fn answer_ok(&self) {
        self.script.lock().unwrap().clear();
    }
}

async fn take(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    r.got.lock().unwrap().push(Delivery {
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
        body,
    });
    let status = r.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

const VERIFY: &str = r#"
import sys
from standardwebhooks.webhooks import Webhook
secret, msg_id, ts, sig, body = sys.argv[1:6]
Webhook(secret).verify(body, {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": sig})
print("verified")
"#;

/// Verifies `d` with the reference library; Err with its words when it refuses.
fn reference_verify(secret: &str, d: &Delivery) -> Result<(), String> {
    let out = Command::new("python3")
        .args(["-c", VERIFY, secret, &d.id, &d.timestamp, &d.signature, &d.body])
        .output()
        .expect("run python3 (install the test deps: bash ops/install-test-deps.sh)");
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn hooks(b: &common::Bridge) -> pb::webhook_service_client::WebhookServiceClient<tonic::transport::Channel> {
    pb::webhook_service_client::WebhookServiceClient::new(b.channel.clone())
}

async fn endpoint(b: &common::Bridge, url: &str) -> (String, String) {
    let req = pb::CreateWebhookEndpointRequest {
        url: url.into(),
        description: "CRM".into(),
        event_types: vec!["campaign.*".into()],
        campaign_id: String::new(),
    };
    let r = hooks(b).create_webhook_endpoint(authed(&b.admin, req)).await.unwrap().into_inner();
    assert!(r.secret.starts_with("whsec_"));
    (r.endpoint.unwrap().id, r.secret)
}

#[tokio::test]
async fn webhooks_are_signed_retried_dead_lettered_and_requeued() {
    let b = common::start(&["--allow-insecure-webhook-urls"]).await;
    let (steady, steady_url) = Receiver::start(&[]).await;
    let (flaky, flaky_url) = Receiver::start(&[500, 503]).await;
    let (down, down_url) = Receiver::start(&[]).await;
    down.answer_always(500);
    let (steady_id, steady_secret) = endpoint(&b, &steady_url).await;
    let (flaky_id, _) = endpoint(&b, &flaky_url).await;
    let (down_id, _) = endpoint(&b, &down_url).await;

    // Bad input is refused, naming the field, and changes nothing.
    let bad = pb::CreateWebhookEndpointRequest { url: "ftp://x".into(), ..Default::default() };
    let err = hooks(&b).create_webhook_endpoint(authed(&b.admin, bad)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("url:"), "{}", err.message());
    let operator = b.user("operator@vox.test", pb::Role::Operator).await;
    let listed = hooks(&b).list_webhook_endpoints(authed(&operator, pb::ListWebhookEndpointsRequest {})).await;
    assert_eq!(listed.unwrap_err().code(), Code::PermissionDenied, "admins only");

    // One event: a campaign starts.
    let region = b.create_region("us-east-1").await;
    let campaign = b
        .campaigns()
        .create_campaign(authed(&b.admin, pb::CreateCampaignRequest { spec: Some(common::campaign_spec(&region.id)) }))
        .await
        .unwrap()
        .into_inner();
    b.campaigns()
        .start_campaign(authed(&b.admin, pb::CampaignActionRequest { id: campaign.id.clone() }))
        .await
        .unwrap();

    // The steady endpoint gets it once, signed as the reference library verifies.
    let first = until("the steady endpoint's delivery", async || steady.got().into_iter().next()).await;
    reference_verify(&steady_secret, &first).unwrap();
    let body: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(body["type"], "campaign.state_changed");
    assert_eq!(body["data"]["campaign"]["to"], "running");
    assert_eq!(body["data"]["id"].as_u64().unwrap().to_string(), first.id, "webhook-id is the event id");
    let mut tampered = first.clone();
    tampered.body = first.body.replace("running", "paused");
    assert!(reference_verify(&steady_secret, &tampered).is_err(), "a changed body is refused");

    // The flaky one fails twice, then gets it on the third attempt, exactly once.
    until("the flaky endpoint's third attempt", async || (flaky.got().len() >= 3).then_some(())).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = flaky.got();
    assert_eq!(got.len(), 3, "two failures then one success, and nothing after: {got:#?}");
    assert!(got.iter().all(|d| d.id == first.id), "the same webhook-id on every attempt");
    let attempts = hooks(&b)
        .list_webhook_deliveries(authed(&b.admin, pb::ListWebhookDeliveriesRequest { endpoint_id: flaky_id, limit: 0 }))
        .await
        .unwrap()
        .into_inner()
        .deliveries;
    let seen: Vec<(u32, u32, &str)> = attempts.iter().map(|a| (a.attempt, a.status, a.outcome.as_str())).collect();
    assert_eq!(seen, [(3, 200, "delivered"), (2, 503, "retrying"), (1, 500, "retrying")]);

    // The endpoint that is down ends in the dead letters after 3 attempts.
    let dead = until("a dead letter", async || {
        let r = hooks(&b)
            .list_dead_webhook_deliveries(authed(&b.admin, pb::ListDeadWebhookDeliveriesRequest { limit: 0 }))
            .await
            .unwrap()
            .into_inner();
        r.deliveries.into_iter().next()
    })
    .await;
    assert_eq!((dead.endpoint_id.as_str(), dead.attempts), (down_id.as_str(), 3));
    assert!(dead.last_error.contains("HTTP 500"), "{}", dead.last_error);
    assert_eq!(down.got().len(), 3);
    let queue = hooks(&b).get_webhook_queue(authed(&b.admin, pb::GetWebhookQueueRequest {})).await.unwrap();
    assert_eq!(queue.into_inner().dead, 1);

    // Fixed and requeued, it gets the event.
    down.answer_ok();
    let req = pb::RequeueDeadWebhookDeliveriesRequest { job_id: dead.job_id.clone() };
    let r = hooks(&b).requeue_dead_webhook_deliveries(authed(&b.admin, req)).await.unwrap().into_inner();
    assert_eq!(r.requeued, 1);
    until("the requeued delivery", async || (down.got().len() == 4).then_some(())).await;
    assert_eq!(down.got()[3].id, first.id);
    let metrics = reqwest::get(format!("{}/metrics", b.process.url())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("voxbridge_webhook_deliveries_total{outcome=\"dead_lettered\"} 1"), "{metrics}");
    assert_eq!(steady.got().len(), 1, "the steady endpoint got the event once");
    let delivered = hooks(&b)
        .list_webhook_deliveries(authed(
            &b.admin,
            pb::ListWebhookDeliveriesRequest { endpoint_id: steady_id, limit: 0 },
        ))
        .await
        .unwrap()
        .into_inner()
        .deliveries;
    assert_eq!(delivered.len(), 1);
    assert_eq!((delivered[0].attempt, delivered[0].outcome.as_str()), (1, "delivered"));
}
