//! Outgoing webhooks: the endpoints integrations register, their signing secrets (shown
//! once), the record of delivery attempts, the dead letters and the queue behind them.
//!
//! A PATCH names only what changes; voxbridge's `UpdateWebhookEndpoint` replaces every
//! field, so the handler merges the patch into the endpoint as it is first
//! ([`UpdateWebhookEndpointRequest::merge`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use vox_proto::backend::v1 as pb;

use super::{convert_all, known, non_empty, opt_time, time};
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpoint {
    pub id: String,
    /// Where events are POSTed: `https://` (voxbridge takes `http://` only with
    /// `--allow-insecure-webhook-urls`).
    #[schema(example = "https://crm.example.com/vox/events")]
    pub url: String,
    pub description: String,
    /// Event types (`call.answered`, …) or `call.*` / `campaign.*`; empty: every type.
    pub event_types: Vec<String>,
    /// Only this campaign's events; `null`: every campaign's (and calls outside campaigns).
    pub campaign_id: Option<String>,
    /// A disabled endpoint is sent nothing until enabled again.
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set while a rotated-out secret still signs beside the new one (24 hours).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl TryFrom<pb::WebhookEndpoint> for WebhookEndpoint {
    type Error = ApiError;

    fn try_from(e: pb::WebhookEndpoint) -> ApiResult<Self> {
        Ok(WebhookEndpoint {
            created_at: time(e.created_at, "webhook endpoint created_at")?,
            updated_at: time(e.updated_at, "webhook endpoint updated_at")?,
            previous_secret_expires_at: opt_time(
                e.previous_secret_expires_at,
                "webhook endpoint previous_secret_expires_at",
            )?,
            campaign_id: non_empty(e.campaign_id),
            id: e.id,
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            disabled: e.disabled,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointList {
    pub endpoints: Vec<WebhookEndpoint>,
}

impl TryFrom<pb::ListWebhookEndpointsResponse> for WebhookEndpointList {
    type Error = ApiError;

    fn try_from(r: pb::ListWebhookEndpointsResponse) -> ApiResult<Self> {
        Ok(WebhookEndpointList { endpoints: convert_all(r.endpoints)? })
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateWebhookEndpointRequest {
    #[schema(example = "https://crm.example.com/vox/events")]
    pub url: String,
    #[serde(default)]
    pub description: String,
    /// Omitted or empty: every event type.
    #[serde(default)]
    #[schema(example = json!(["call.answered", "call.ended"]))]
    pub event_types: Vec<String>,
    /// Only this campaign's events.
    #[serde(default)]
    pub campaign_id: Option<String>,
}

impl From<CreateWebhookEndpointRequest> for pb::CreateWebhookEndpointRequest {
    fn from(r: CreateWebhookEndpointRequest) -> Self {
        pb::CreateWebhookEndpointRequest {
            url: r.url,
            description: r.description,
            event_types: r.event_types,
            campaign_id: r.campaign_id.unwrap_or_default(),
        }
    }
}

/// What changes; omitted fields keep their value. `campaign_id: null` removes the
/// campaign filter; `event_types: []` asks for every type.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct UpdateWebhookEndpointRequest {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub campaign_id: Option<Option<String>>,
    pub disabled: Option<bool>,
}

/// A field that may be present as `null`: `Some(None)`, told apart from absent (`None`,
/// by `#[serde(default)]`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl UpdateWebhookEndpointRequest {
    /// The full update voxbridge takes: this patch over `current`.
    pub fn merge(self, current: WebhookEndpoint) -> pb::UpdateWebhookEndpointRequest {
        pb::UpdateWebhookEndpointRequest {
            id: current.id,
            url: self.url.unwrap_or(current.url),
            description: self.description.unwrap_or(current.description),
            event_types: self.event_types.unwrap_or(current.event_types),
            campaign_id: self.campaign_id.unwrap_or(current.campaign_id).unwrap_or_default(),
            disabled: self.disabled.unwrap_or(current.disabled),
        }
    }
}

/// An endpoint and its signing secret: shown this once (on create and on rotation), then
/// kept sealed by voxbridge.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookSecret {
    pub endpoint: WebhookEndpoint,
    /// `whsec_<base64>`, as the Standard Webhooks libraries take it.
    pub secret: String,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecret").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl TryFrom<pb::WebhookSecretResponse> for WebhookSecret {
    type Error = ApiError;

    fn try_from(r: pb::WebhookSecretResponse) -> ApiResult<Self> {
        Ok(WebhookSecret { endpoint: known(r.endpoint, "webhook endpoint")?.try_into()?, secret: r.secret })
    }
}

/// How one delivery attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// The endpoint answered 2xx.
    Delivered,
    /// It failed; another attempt follows.
    Retrying,
    /// It failed for the last time: the delivery is in the dead letters.
    DeadLettered,
}

impl DeliveryOutcome {
    fn from_wire(s: &str) -> Option<Self> {
        match s {
            "delivered" => Some(DeliveryOutcome::Delivered),
            "retrying" => Some(DeliveryOutcome::Retrying),
            "dead_lettered" => Some(DeliveryOutcome::DeadLettered),
            _ => None,
        }
    }
}

/// One attempt to deliver one event to one endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookDelivery {
    pub endpoint_id: String,
    /// The feed event's id (also the `webhook-id` header, the same on every attempt).
    pub event_id: u64,
    pub event_type: String,
    /// 1 for the first.
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// The endpoint's HTTP status; `null` when it did not answer.
    pub status: Option<u16>,
    /// Why it failed; `null` when delivered.
    pub error: Option<String>,
    pub duration_ms: u64,
    pub outcome: DeliveryOutcome,
}

impl TryFrom<pb::WebhookDelivery> for WebhookDelivery {
    type Error = ApiError;

    fn try_from(d: pb::WebhookDelivery) -> ApiResult<Self> {
        Ok(WebhookDelivery {
            at: time(d.at, "webhook delivery time")?,
            outcome: known(DeliveryOutcome::from_wire(&d.outcome), "webhook delivery outcome")?,
            status: u16::try_from(d.status).ok().filter(|s| *s != 0),
            error: non_empty(d.error),
            endpoint_id: d.endpoint_id,
            event_id: d.event_id,
            event_type: d.event_type,
            attempt: d.attempt,
            duration_ms: d.duration_ms,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveryList {
    /// Newest first.
    pub deliveries: Vec<WebhookDelivery>,
}

impl TryFrom<pb::ListWebhookDeliveriesResponse> for WebhookDeliveryList {
    type Error = ApiError;

    fn try_from(r: pb::ListWebhookDeliveriesResponse) -> ApiResult<Self> {
        Ok(WebhookDeliveryList { deliveries: convert_all(r.deliveries)? })
    }
}

/// A delivery that failed its last attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadWebhookDelivery {
    /// The queue job: pass it to `POST /api/v1/webhooks/dead-letters/requeue`.
    pub job_id: String,
    pub endpoint_id: String,
    pub event_id: u64,
    pub event_type: String,
    pub attempts: u32,
    pub failed_at: DateTime<Utc>,
    pub last_error: String,
}

impl TryFrom<pb::DeadWebhookDelivery> for DeadWebhookDelivery {
    type Error = ApiError;

    fn try_from(d: pb::DeadWebhookDelivery) -> ApiResult<Self> {
        Ok(DeadWebhookDelivery {
            failed_at: time(d.failed_at, "dead webhook delivery failed_at")?,
            job_id: d.job_id,
            endpoint_id: d.endpoint_id,
            event_id: d.event_id,
            event_type: d.event_type,
            attempts: d.attempts,
            last_error: d.last_error,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadWebhookDeliveryList {
    pub deliveries: Vec<DeadWebhookDelivery>,
}

impl TryFrom<pb::ListDeadWebhookDeliveriesResponse> for DeadWebhookDeliveryList {
    type Error = ApiError;

    fn try_from(r: pb::ListDeadWebhookDeliveriesResponse) -> ApiResult<Self> {
        Ok(DeadWebhookDeliveryList { deliveries: convert_all(r.deliveries)? })
    }
}

/// How many rows to list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryLimit {
    /// Default 100, at most 1000.
    pub limit: Option<u32>,
}

/// Which dead deliveries to send again.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct RequeueRequest {
    /// One dead delivery's `job_id`; omitted (or no body): every dead delivery.
    #[serde(default)]
    pub job_id: Option<String>,
}

impl From<RequeueRequest> for pb::RequeueDeadWebhookDeliveriesRequest {
    fn from(r: RequeueRequest) -> Self {
        pb::RequeueDeadWebhookDeliveriesRequest { job_id: r.job_id.unwrap_or_default() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Requeued {
    /// Dead deliveries sent back to the queue, their attempts started over.
    pub requeued: u64,
}

/// The queue deliveries run on, by job state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookQueue {
    /// Waiting for a worker.
    pub ready: u64,
    /// Waiting for their retry time.
    pub delayed: u64,
    /// Being delivered now.
    pub in_flight: u64,
    /// Failed their last attempt (the dead letters).
    pub dead: u64,
    /// Dropped unsent, too old.
    pub expired: u64,
    /// How long the oldest ready job has waited; 0 when nothing is ready.
    pub oldest_ready_age_seconds: f64,
}

impl From<pb::WebhookQueue> for WebhookQueue {
    fn from(q: pb::WebhookQueue) -> Self {
        WebhookQueue {
            ready: q.ready,
            delayed: q.delayed,
            in_flight: q.in_flight,
            dead: q.dead,
            expired: q.expired,
            oldest_ready_age_seconds: q.oldest_ready_age_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::parse_json;

    fn endpoint() -> WebhookEndpoint {
        WebhookEndpoint {
            id: "wh_1".into(),
            url: "https://crm.example.com/a".into(),
            description: "CRM".into(),
            event_types: vec!["call.ended".into()],
            campaign_id: Some("cmp_1".into()),
            disabled: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            previous_secret_expires_at: None,
        }
    }

    #[test]
    fn a_patch_keeps_what_it_does_not_name() {
        let patch: UpdateWebhookEndpointRequest = parse_json(br#"{"disabled": true}"#).unwrap();
        let r = patch.merge(endpoint());
        assert_eq!(
            (r.id.as_str(), r.url.as_str(), r.description.as_str(), r.campaign_id.as_str(), r.disabled),
            ("wh_1", "https://crm.example.com/a", "CRM", "cmp_1", true)
        );
        assert_eq!(r.event_types, vec!["call.ended".to_string()]);
    }

    #[test]
    fn a_patch_clears_the_campaign_with_null_and_the_types_with_an_empty_list() {
        let patch: UpdateWebhookEndpointRequest =
            parse_json(br#"{"campaign_id": null, "event_types": [], "url": "https://b.example"}"#).unwrap();
        let r = patch.merge(endpoint());
        assert_eq!((r.campaign_id.as_str(), r.url.as_str()), ("", "https://b.example"));
        assert!(r.event_types.is_empty());
        let patch: UpdateWebhookEndpointRequest = parse_json(br#"{"campaign_id": "cmp_2"}"#).unwrap();
        assert_eq!(patch.merge(endpoint()).campaign_id, "cmp_2");
    }

    #[test]
    fn an_unknown_outcome_is_a_version_mismatch_not_a_guess() {
        let d = pb::WebhookDelivery {
            outcome: "exploded".into(),
            at: Some(vox_domain::time::to_proto(Utc::now())),
            ..Default::default()
        };
        assert_eq!(WebhookDelivery::try_from(d).unwrap_err().status().as_u16(), 500);
        let d = pb::WebhookDelivery {
            outcome: "retrying".into(),
            status: 0,
            error: "timed out".into(),
            at: Some(vox_domain::time::to_proto(Utc::now())),
            ..Default::default()
        };
        let d = WebhookDelivery::try_from(d).unwrap();
        assert_eq!((d.status, d.error.as_deref(), d.outcome), (None, Some("timed out"), DeliveryOutcome::Retrying));
    }

    #[test]
    fn the_secret_stays_out_of_logs() {
        let s = WebhookSecret { endpoint: endpoint(), secret: "whsec_c2VjcmV0".into() };
        assert!(!format!("{s:?}").contains("whsec_"));
    }
}
