//! Webhook delivery: the activity feed pushed to each endpoint that wants it, through the
//! durable work queue.
//!
//! - The **dispatcher** reads the feed after the stored cursor, queues one delivery job
//!   per (event, endpoint that wants it) with the dedup id `<endpoint>:<event>`, then
//!   moves the cursor. A crash between the two queues the same jobs again, which the
//!   dedup id drops while they wait; two voxbridge instances may both dispatch a page, so
//!   a receiver can, rarely, get an event twice after a delivery completed in between —
//!   the `webhook-id` header (the event id, the same on every attempt) is there for it to
//!   drop duplicates, as Standard Webhooks intends.
//! - The **deliverer** reserves up to 8 jobs at a time and sends them side by side: the
//!   body signed with every live secret of the endpoint (`webhook-id`,
//!   `webhook-timestamp`, `webhook-signature`), acked on 2xx. Anything else is nacked:
//!   retried with the queue's exponential backoff (1 s, 2 s…), or after `Retry-After`
//!   when the endpoint sends one, up to 3 attempts; then the job is a dead letter, which
//!   an admin can requeue. 4xx answers are retried too: a receiver misconfigured for a
//!   minute should not lose events. Each attempt is recorded for the console.
//! - A deleted or disabled endpoint's jobs are dropped when they come up.
//! - The same pass queues recording post-processing ([`crate::recordings`]) for each
//!   `call.recording_ready`, so both ride on the one cursor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use vox_domain::feed::FeedQuery;
use vox_domain::webhook::{SigningSecret, headers};
use vox_domain::webhook_endpoint::{self, DeliveryAttempt, DeliveryJob, DeliveryOutcome, QUEUE, WebhookEndpoint};
use vox_domain::{Error, Result};
use vox_store::queue::{EnqueueOptions, Job, Nacked, Retry};

use crate::bridge::Bridge;
use crate::metrics::label;

/// Feed events read per dispatcher step.
const PAGE: usize = 200;
/// How long a deliverer holds a job before it is handed out again.
const VISIBILITY: chrono::Duration = chrono::Duration::seconds(60);
/// How long an endpoint has to answer.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Deliveries in flight per voxbridge: reserved together, sent side by side.
const IN_FLIGHT: usize = 8;
/// How often idle loops look again without a wake-up (a retry's backoff, another
/// instance's dispatch): one store read each, so an idle voxbridge costs little.
const IDLE: Duration = Duration::from_secs(1);
/// At most this much of an endpoint's answer is kept in the attempt's error.
const MAX_ERROR: usize = 300;

/// Starts the dispatcher and the deliverer; they stop with the server.
pub fn start(bridge: Arc<Bridge>) -> Vec<tokio::task::JoinHandle<()>> {
    let http = match reqwest::Client::builder().timeout(TIMEOUT).redirect(reqwest::redirect::Policy::none()).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks are not delivered");
            return Vec::new();
        }
    };
    let mut tasks = vec![tokio::spawn(dispatch_loop(Arc::clone(&bridge)))];
    tasks.push(tokio::spawn(deliver_loop(Arc::clone(&bridge), http)));
    tasks
}

async fn dispatch_loop(bridge: Arc<Bridge>) {
    let mut bus = bridge.stores.events.subscribe();
    let mut shutdown = bridge.shutdown.clone();
    loop {
        match dispatch_once(&bridge).await {
            Ok(n) if n == PAGE => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.message, "webhook dispatch failed; trying again"),
        }
        tokio::select! {
            woke = bus.next() => if woke.is_none() { return },
            _ = tokio::time::sleep(IDLE) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Queues the deliveries of one page of the feed after the cursor; returns how many
/// events it read.
pub async fn dispatch_once(bridge: &Bridge) -> Result<usize> {
    let cursor = bridge.stores.webhooks.webhook_cursor().await?;
    let page = bridge.stores.feed.list_feed(&FeedQuery { after: cursor, campaign_id: None, limit: PAGE }).await?;
    let Some(last) = page.last().map(|e| e.id) else { return Ok(0) };
    let endpoints = bridge.stores.webhooks.list_webhooks().await?;
    let now = bridge.clock.now();
    let mut queued = 0;
    for event in &page {
        if crate::recordings::enqueue_for(bridge, event).await? {
            queued += 1;
        }
        let body = webhook_endpoint::payload(event);
        for endpoint in endpoints.iter().filter(|ep| ep.wants(event)) {
            let job = DeliveryJob {
                endpoint_id: endpoint.id.clone(),
                event_id: event.id,
                event_type: event.kind.clone(),
                body: body.clone(),
            };
            let options = EnqueueOptions { dedup_id: Some(job.dedup_id()), ..Default::default() };
            let payload = serde_json::to_vec(&job).map_err(|e| Error::internal(format!("encode delivery: {e}")))?;
            bridge.queue.enqueue(QUEUE, &payload, &options, now).await?;
            queued += 1;
        }
    }
    if !bridge.stores.webhooks.advance_webhook_cursor(cursor, last).await? {
        tracing::debug!(cursor, "another voxbridge dispatched this page first");
    }
    if queued > 0 {
        bridge.webhook_wake.notify_waiters();
    }
    Ok(page.len())
}

async fn deliver_loop(bridge: Arc<Bridge>, http: reqwest::Client) {
    let consumer = format!("voxbridge-{}", std::process::id());
    let mut shutdown = bridge.shutdown.clone();
    loop {
        let jobs = bridge.queue.reserve_batch(QUEUE, &consumer, VISIBILITY, IN_FLIGHT, bridge.clock.now()).await;
        match jobs {
            Ok(jobs) if !jobs.is_empty() => {
                futures::future::join_all(jobs.into_iter().map(|job| deliver(&bridge, &http, job))).await;
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.message, "reserving webhook deliveries failed; trying again"),
        }
        tokio::select! {
            _ = bridge.webhook_wake.notified() => {}
            _ = tokio::time::sleep(IDLE) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Sends one job and settles it with the queue.
async fn deliver(bridge: &Bridge, http: &reqwest::Client, job: Job) {
    let delivery: DeliveryJob = match job.json() {
        Ok(d) => d,
        Err(e) => {
            let _ = bridge.queue.nack(&job.receipt, &e.message, Retry::Never, bridge.clock.now()).await;
            return;
        }
    };
    let endpoint = match bridge.stores.webhooks.get_webhook(&delivery.endpoint_id).await {
        Ok(Some(ep)) if !ep.disabled => ep,
        Ok(_) => {
            // Deleted or disabled since it was queued: nothing to deliver.
            let _ = bridge.queue.ack(&job.receipt, bridge.clock.now()).await;
            return;
        }
        Err(e) => {
            let _ = bridge.queue.nack(&job.receipt, &e.message, Retry::Backoff, bridge.clock.now()).await;
            return;
        }
    };
    let started = Instant::now();
    let (status, failure, retry_after) = match send(bridge, http, &endpoint, &delivery).await {
        Ok(status) => (Some(status), None, None),
        Err(Failed { status, error, retry_after }) => (status, Some(error), retry_after),
    };
    let now = bridge.clock.now();
    let outcome = match &failure {
        None => match bridge.queue.ack(&job.receipt, now).await {
            Ok(()) => DeliveryOutcome::Delivered,
            Err(e) => {
                // Redelivered meanwhile (this attempt took longer than the visibility).
                tracing::warn!(error = %e.message, job = %job.id, "a webhook delivery was acked too late");
                DeliveryOutcome::Delivered
            }
        },
        Some(error) => {
            let retry = retry_after.map_or(Retry::Backoff, Retry::After);
            match bridge.queue.nack(&job.receipt, error, retry, now).await {
                Ok(Nacked::Retrying { .. }) => DeliveryOutcome::Retrying,
                Ok(Nacked::DeadLettered | Nacked::Expired) => DeliveryOutcome::DeadLettered,
                Err(e) => {
                    tracing::warn!(error = %e.message, job = %job.id, "a failed webhook delivery could not be nacked");
                    DeliveryOutcome::Retrying
                }
            }
        }
    };
    bridge.metrics.webhook_deliveries.get_or_create(&label("outcome", outcome_name(outcome))).inc();
    let attempt = DeliveryAttempt {
        endpoint_id: endpoint.id.clone(),
        event_id: delivery.event_id,
        event_type: delivery.event_type.clone(),
        attempt: job.attempt,
        at: now,
        status,
        error: failure.unwrap_or_default(),
        duration_ms: started.elapsed().as_millis() as u64,
        outcome,
    };
    if let Err(e) = bridge.stores.webhooks.record_delivery(&attempt).await {
        tracing::warn!(error = %e.message, "recording a webhook delivery attempt failed");
    }
}

pub fn outcome_name(o: DeliveryOutcome) -> &'static str {
    match o {
        DeliveryOutcome::Delivered => "delivered",
        DeliveryOutcome::Retrying => "retrying",
        DeliveryOutcome::DeadLettered => "dead_lettered",
    }
}

struct Failed {
    status: Option<u16>,
    error: String,
    retry_after: Option<chrono::Duration>,
}

/// POSTs the delivery, signed with every secret of the endpoint that still signs.
async fn send(
    bridge: &Bridge,
    http: &reqwest::Client,
    endpoint: &WebhookEndpoint,
    delivery: &DeliveryJob,
) -> std::result::Result<u16, Failed> {
    let now = Utc::now();
    let mut secrets = Vec::new();
    for sealed in endpoint.signing_secrets(bridge.clock.now()) {
        let opened =
            bridge.master_key.open(&sealed.sealed, &endpoint.id).and_then(|t| SigningSecret::parse("secret", &t));
        match opened {
            Ok(s) => secrets.push(s),
            Err(e) => {
                return Err(Failed {
                    status: None,
                    error: format!("cannot open the signing secret: {}", e.message),
                    retry_after: None,
                });
            }
        }
    }
    let mut request =
        http.post(&endpoint.url).header("content-type", "application/json").header("user-agent", "Vox-Webhooks/1");
    for (name, value) in headers(&secrets, &delivery.event_id.to_string(), now.timestamp(), delivery.body.as_bytes()) {
        request = request.header(name, value);
    }
    match request.body(delivery.body.clone()).send().await {
        Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
        Ok(r) => {
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
                .map(|s| chrono::Duration::seconds(s.clamp(1, 3600)));
            let text = r.text().await.unwrap_or_default();
            let mut error = format!("HTTP {status}");
            if !text.trim().is_empty() {
                let cut: String = text.chars().take(MAX_ERROR).collect();
                error = format!("{error}: {}", cut.trim());
            }
            Err(Failed { status: Some(status), error, retry_after })
        }
        Err(e) if e.is_timeout() => {
            Err(Failed { status: None, error: format!("no answer within {} s", TIMEOUT.as_secs()), retry_after: None })
        }
        Err(e) => Err(Failed { status: None, error: format!("could not reach the endpoint: {e}"), retry_after: None }),
    }
}

/// Keeps the queue's figures in `/metrics` (every few seconds).
pub async fn queue_metrics_loop(bridge: Arc<Bridge>) {
    let mut shutdown = bridge.shutdown.clone();
    loop {
        for queue in [QUEUE, crate::recordings::QUEUE] {
            match bridge.queue.stats(queue, bridge.clock.now()).await {
                Ok(s) => {
                    for (state, n) in
                        [("ready", s.ready), ("delayed", s.delayed), ("in_flight", s.in_flight), ("dead", s.dead)]
                    {
                        bridge.metrics.queue_jobs.get_or_create(&queue_label(queue, state)).set(n as i64);
                    }
                    bridge.metrics.queue_expired.get_or_create(&label("queue", queue)).set(s.expired as i64);
                    let age = s.oldest_ready_age.map_or(0.0, |a| a.num_milliseconds() as f64 / 1000.0);
                    bridge.metrics.queue_oldest_ready_age.get_or_create(&label("queue", queue)).set(age);
                }
                Err(e) => tracing::debug!(queue, error = %e.message, "reading the work queue's figures failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn queue_label(queue: &str, state: &str) -> crate::metrics::Labels {
    let mut l = label("queue", queue);
    l.push(("state", state.into()));
    l
}
