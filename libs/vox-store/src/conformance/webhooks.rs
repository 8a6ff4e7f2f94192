//! Webhook endpoints, their delivery record and the dispatcher's cursor.

use chrono::{DateTime, Duration, Utc};
use vox_domain::ErrorCode;
use vox_domain::ids;
use vox_domain::webhook_endpoint::{DeliveryAttempt, DeliveryOutcome, SealedSecret, WebhookEndpoint};

use crate::Stores;

fn endpoint(now: DateTime<Utc>) -> WebhookEndpoint {
    WebhookEndpoint {
        id: ids::new_id(ids::WEBHOOK),
        url: "https://crm.example.com/vox".into(),
        description: "CRM".into(),
        event_types: vec!["call.*".into()],
        campaign_id: None,
        secrets: vec![SealedSecret { sealed: "v1:opaque".into(), expires_at: None }],
        disabled: false,
        created_at: now,
        updated_at: now,
    }
}

fn attempt(endpoint_id: &str, event_id: u64, n: u32, at: DateTime<Utc>) -> DeliveryAttempt {
    DeliveryAttempt {
        endpoint_id: endpoint_id.into(),
        event_id,
        event_type: "call.ended".into(),
        attempt: n,
        at,
        status: Some(500),
        error: "HTTP 500".into(),
        duration_ms: 12,
        outcome: DeliveryOutcome::Retrying,
    }
}

pub async fn webhook_endpoints_round_trip_with_their_deliveries(s: &Stores, now: DateTime<Utc>) {
    let a = endpoint(now);
    let mut b = endpoint(now + Duration::seconds(1));
    s.webhooks.insert_webhook(&a).await.unwrap();
    s.webhooks.insert_webhook(&b).await.unwrap();
    assert_eq!(s.webhooks.insert_webhook(&a).await.unwrap_err().code, ErrorCode::AlreadyExists);
    assert_eq!(s.webhooks.get_webhook(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(s.webhooks.list_webhooks().await.unwrap(), vec![a.clone(), b.clone()], "oldest first");

    b.secrets.insert(0, SealedSecret { sealed: "v1:newer".into(), expires_at: None });
    b.secrets[1].expires_at = Some(now + Duration::hours(24));
    s.webhooks.update_webhook(&b).await.unwrap();
    assert_eq!(s.webhooks.get_webhook(&b.id).await.unwrap(), Some(b.clone()));
    let ghost = endpoint(now);
    assert_eq!(s.webhooks.update_webhook(&ghost).await.unwrap_err().code, ErrorCode::NotFound);

    for n in 1..=3 {
        s.webhooks.record_delivery(&attempt(&a.id, 7, n, now + Duration::seconds(n.into()))).await.unwrap();
    }
    s.webhooks.record_delivery(&attempt(&b.id, 7, 1, now)).await.unwrap();
    let of_a = s.webhooks.list_deliveries(&a.id, 10).await.unwrap();
    assert_eq!(of_a.iter().map(|d| d.attempt).collect::<Vec<_>>(), [3, 2, 1], "newest first, this endpoint's");
    assert_eq!(s.webhooks.list_deliveries(&a.id, 2).await.unwrap().len(), 2);

    s.webhooks.delete_webhook(&a.id).await.unwrap();
    assert_eq!(s.webhooks.get_webhook(&a.id).await.unwrap(), None);
    assert!(s.webhooks.list_deliveries(&a.id, 10).await.unwrap().is_empty(), "its record goes with it");
    assert_eq!(s.webhooks.list_deliveries(&b.id, 10).await.unwrap().len(), 1);
    assert_eq!(s.webhooks.delete_webhook(&a.id).await.unwrap_err().code, ErrorCode::NotFound);
}

pub async fn the_webhook_cursor_moves_only_from_where_it_is(s: &Stores, _now: DateTime<Utc>) {
    assert_eq!(s.webhooks.webhook_cursor().await.unwrap(), 0);
    assert!(s.webhooks.advance_webhook_cursor(0, 5).await.unwrap());
    assert!(!s.webhooks.advance_webhook_cursor(0, 9).await.unwrap(), "another dispatcher moved it first");
    assert_eq!(s.webhooks.webhook_cursor().await.unwrap(), 5);
    assert!(s.webhooks.advance_webhook_cursor(5, 12).await.unwrap());
    assert!(!s.webhooks.advance_webhook_cursor(5, 13).await.unwrap());
    assert_eq!(s.webhooks.webhook_cursor().await.unwrap(), 12);
}
