//! WebhookService: admins manage the endpoints the activity feed is pushed to, see every
//! delivery attempt, and requeue dead deliveries. Signing secrets are made here, shown
//! once, and stored sealed with the master key (bound to the endpoint's id); delivery
//! itself is `crate::webhooks`. Every change is in the audit log.

use std::sync::Arc;

use chrono::Duration;
use tonic::Request;
use vox_domain::user::Role;
use vox_domain::webhook::SigningSecret;
use vox_domain::webhook_endpoint::{self, DeliveryAttempt, DeliveryJob, QUEUE, SealedSecret, WebhookEndpoint};
use vox_domain::{Error, Result, ids, time};
use vox_proto::backend::v1 as pb;
use vox_proto::backend::v1::webhook_service_server::WebhookService;
use vox_store::queue::DeadLetters;

use super::{RpcResult, limit, reply, required_id};
use crate::auth::Principal;
use crate::bridge::Bridge;

#[derive(Debug, Clone)]
pub struct Webhooks(pub Arc<Bridge>);

fn to_proto(e: &WebhookEndpoint) -> pb::WebhookEndpoint {
    pb::WebhookEndpoint {
        id: e.id.clone(),
        url: e.url.clone(),
        description: e.description.clone(),
        event_types: e.event_types.clone(),
        campaign_id: e.campaign_id.clone().unwrap_or_default(),
        disabled: e.disabled,
        created_at: Some(time::to_proto(e.created_at)),
        updated_at: Some(time::to_proto(e.updated_at)),
        previous_secret_expires_at: e.secrets.iter().filter_map(|s| s.expires_at).max().map(time::to_proto),
    }
}

fn attempt_to_proto(a: &DeliveryAttempt) -> pb::WebhookDelivery {
    pb::WebhookDelivery {
        endpoint_id: a.endpoint_id.clone(),
        event_id: a.event_id,
        event_type: a.event_type.clone(),
        attempt: a.attempt,
        at: Some(time::to_proto(a.at)),
        status: a.status.map_or(0, u32::from),
        error: a.error.clone(),
        duration_ms: a.duration_ms,
        outcome: crate::webhooks::outcome_name(a.outcome).into(),
    }
}

impl Webhooks {
    async fn admin<T>(&self, req: &Request<T>) -> Result<String> {
        let admin = self.0.auth.user(req.metadata(), Role::Admin).await?;
        Ok(Principal::User(admin).actor())
    }

    fn description(v: &str) -> Result<String> {
        let v = v.trim();
        if v.chars().count() > 200 {
            return Err(Error::invalid("description", "at most 200 characters"));
        }
        Ok(v.to_string())
    }

    async fn campaign(&self, id: &str) -> Result<Option<String>> {
        match id.trim() {
            "" => Ok(None),
            id => match self.0.stores.campaigns.get_campaign(id).await? {
                Some(_) => Ok(Some(id.to_string())),
                None => {
                    Err(Error::invalid("campaign_id", format!("no campaign {id:?}; leave it empty for every campaign")))
                }
            },
        }
    }

    /// A fresh secret sealed for `endpoint_id`, and its text to show once.
    fn new_secret(&self, endpoint_id: &str) -> Result<(SealedSecret, String)> {
        let (_, text) = SigningSecret::generate();
        let sealed = self.0.master_key.seal(&text, endpoint_id)?;
        Ok((SealedSecret { sealed, expires_at: None }, text))
    }

    async fn load(&self, id: &str) -> Result<WebhookEndpoint> {
        let id = required_id("id", id)?;
        self.0.stores.webhooks.get_webhook(&id).await?.ok_or_else(|| Error::not_found("webhook endpoint", &id))
    }

    async fn create(&self, req: Request<pb::CreateWebhookEndpointRequest>) -> Result<pb::WebhookSecretResponse> {
        let actor = self.admin(&req).await?;
        let r = req.into_inner();
        let now = self.0.clock.now();
        let id = ids::new_id(ids::WEBHOOK);
        let (secret, text) = self.new_secret(&id)?;
        let endpoint = WebhookEndpoint {
            url: webhook_endpoint::check_url("url", &r.url, self.0.settings.allow_insecure_webhook_urls)?,
            description: Self::description(&r.description)?,
            event_types: webhook_endpoint::check_event_types("event_types", &r.event_types)?,
            campaign_id: self.campaign(&r.campaign_id).await?,
            secrets: vec![secret],
            disabled: false,
            created_at: now,
            updated_at: now,
            id,
        };
        self.0.stores.webhooks.insert_webhook(&endpoint).await?;
        self.0.stores.audit.append_audit(&self.0.audit(&actor, "webhook.create", &endpoint.id, &endpoint.url)).await?;
        tracing::info!(endpoint_id = %endpoint.id, by = %actor, "webhook endpoint created");
        Ok(pb::WebhookSecretResponse { endpoint: Some(to_proto(&endpoint)), secret: text })
    }

    async fn update(&self, req: Request<pb::UpdateWebhookEndpointRequest>) -> Result<pb::WebhookEndpoint> {
        let actor = self.admin(&req).await?;
        let r = req.into_inner();
        let mut endpoint = self.load(&r.id).await?;
        endpoint.url = webhook_endpoint::check_url("url", &r.url, self.0.settings.allow_insecure_webhook_urls)?;
        endpoint.description = Self::description(&r.description)?;
        endpoint.event_types = webhook_endpoint::check_event_types("event_types", &r.event_types)?;
        endpoint.campaign_id = self.campaign(&r.campaign_id).await?;
        endpoint.disabled = r.disabled;
        endpoint.updated_at = self.0.clock.now();
        self.0.stores.webhooks.update_webhook(&endpoint).await?;
        self.0.stores.audit.append_audit(&self.0.audit(&actor, "webhook.update", &endpoint.id, &endpoint.url)).await?;
        Ok(to_proto(&endpoint))
    }

    async fn rotate(&self, req: Request<pb::RotateWebhookSecretRequest>) -> Result<pb::WebhookSecretResponse> {
        let actor = self.admin(&req).await?;
        let mut endpoint = self.load(&req.get_ref().id).await?;
        let now = self.0.clock.now();
        let (secret, text) = self.new_secret(&endpoint.id)?;
        // The current secret signs beside the new one for the grace period; older ones go.
        let grace = now + Duration::hours(webhook_endpoint::ROTATION_GRACE_HOURS);
        let mut kept: Vec<SealedSecret> = endpoint.signing_secrets(now).take(1).cloned().collect();
        for s in &mut kept {
            s.expires_at = Some(s.expires_at.map_or(grace, |t| t.min(grace)));
        }
        endpoint.secrets = std::iter::once(secret).chain(kept).collect();
        endpoint.updated_at = now;
        self.0.stores.webhooks.update_webhook(&endpoint).await?;
        self.0.stores.audit.append_audit(&self.0.audit(&actor, "webhook.rotate_secret", &endpoint.id, "")).await?;
        Ok(pb::WebhookSecretResponse { endpoint: Some(to_proto(&endpoint)), secret: text })
    }
}

#[tonic::async_trait]
impl WebhookService for Webhooks {
    async fn create_webhook_endpoint(
        &self,
        req: Request<pb::CreateWebhookEndpointRequest>,
    ) -> RpcResult<pb::WebhookSecretResponse> {
        reply("CreateWebhookEndpoint", self.create(req).await)
    }

    async fn list_webhook_endpoints(
        &self,
        req: Request<pb::ListWebhookEndpointsRequest>,
    ) -> RpcResult<pb::ListWebhookEndpointsResponse> {
        let r = async {
            self.admin(&req).await?;
            let endpoints = self.0.stores.webhooks.list_webhooks().await?;
            Ok(pb::ListWebhookEndpointsResponse { endpoints: endpoints.iter().map(to_proto).collect() })
        };
        reply("ListWebhookEndpoints", r.await)
    }

    async fn update_webhook_endpoint(
        &self,
        req: Request<pb::UpdateWebhookEndpointRequest>,
    ) -> RpcResult<pb::WebhookEndpoint> {
        reply("UpdateWebhookEndpoint", self.update(req).await)
    }

    async fn delete_webhook_endpoint(
        &self,
        req: Request<pb::DeleteWebhookEndpointRequest>,
    ) -> RpcResult<pb::DeleteWebhookEndpointResponse> {
        let r = async {
            let actor = self.admin(&req).await?;
            let id = required_id("id", &req.get_ref().id)?;
            self.0.stores.webhooks.delete_webhook(&id).await?;
            self.0.stores.audit.append_audit(&self.0.audit(&actor, "webhook.delete", &id, "")).await?;
            Ok(pb::DeleteWebhookEndpointResponse {})
        };
        reply("DeleteWebhookEndpoint", r.await)
    }

    async fn rotate_webhook_secret(
        &self,
        req: Request<pb::RotateWebhookSecretRequest>,
    ) -> RpcResult<pb::WebhookSecretResponse> {
        reply("RotateWebhookSecret", self.rotate(req).await)
    }

    async fn list_webhook_deliveries(
        &self,
        req: Request<pb::ListWebhookDeliveriesRequest>,
    ) -> RpcResult<pb::ListWebhookDeliveriesResponse> {
        let r = async {
            self.admin(&req).await?;
            let endpoint = self.load(&req.get_ref().endpoint_id).await?;
            let n = limit("limit", req.get_ref().limit, 100, 1000)?;
            let attempts = self.0.stores.webhooks.list_deliveries(&endpoint.id, n).await?;
            Ok(pb::ListWebhookDeliveriesResponse { deliveries: attempts.iter().map(attempt_to_proto).collect() })
        };
        reply("ListWebhookDeliveries", r.await)
    }

    async fn list_dead_webhook_deliveries(
        &self,
        req: Request<pb::ListDeadWebhookDeliveriesRequest>,
    ) -> RpcResult<pb::ListDeadWebhookDeliveriesResponse> {
        let r = async {
            self.admin(&req).await?;
            let n = limit("limit", req.get_ref().limit, 100, 1000)?;
            let dead = self.0.queue.list_dead(QUEUE, 0, n).await?;
            let deliveries = dead
                .into_iter()
                .map(|job| {
                    let d: Option<DeliveryJob> = serde_json::from_slice(&job.payload).ok();
                    pb::DeadWebhookDelivery {
                        job_id: job.id,
                        endpoint_id: d.as_ref().map(|d| d.endpoint_id.clone()).unwrap_or_default(),
                        event_id: d.as_ref().map_or(0, |d| d.event_id),
                        event_type: d.map(|d| d.event_type).unwrap_or_default(),
                        attempts: job.attempts,
                        failed_at: Some(time::to_proto(job.at)),
                        last_error: job.last_error.unwrap_or_default(),
                    }
                })
                .collect();
            Ok(pb::ListDeadWebhookDeliveriesResponse { deliveries })
        };
        reply("ListDeadWebhookDeliveries", r.await)
    }

    async fn requeue_dead_webhook_deliveries(
        &self,
        req: Request<pb::RequeueDeadWebhookDeliveriesRequest>,
    ) -> RpcResult<pb::RequeueDeadWebhookDeliveriesResponse> {
        let r = async {
            let actor = self.admin(&req).await?;
            let job_id = req.get_ref().job_id.trim().to_string();
            let which = if job_id.is_empty() { DeadLetters::All } else { DeadLetters::One(&job_id) };
            let requeued = self.0.queue.requeue_dead(QUEUE, which, self.0.clock.now()).await?;
            let target = if job_id.is_empty() { "all" } else { job_id.as_str() };
            self.0.stores.audit.append_audit(&self.0.audit(&actor, "webhook.requeue", target, "")).await?;
            self.0.webhook_wake.notify_waiters();
            Ok(pb::RequeueDeadWebhookDeliveriesResponse { requeued })
        };
        reply("RequeueDeadWebhookDeliveries", r.await)
    }

    async fn get_webhook_queue(&self, req: Request<pb::GetWebhookQueueRequest>) -> RpcResult<pb::WebhookQueue> {
        let r = async {
            self.admin(&req).await?;
            let s = self.0.queue.stats(QUEUE, self.0.clock.now()).await?;
            Ok(pb::WebhookQueue {
                ready: s.ready,
                delayed: s.delayed,
                in_flight: s.in_flight,
                dead: s.dead,
                expired: s.expired,
                oldest_ready_age_seconds: s.oldest_ready_age.map_or(0.0, |a| a.num_milliseconds() as f64 / 1000.0),
            })
        };
        reply("GetWebhookQueue", r.await)
    }
}
