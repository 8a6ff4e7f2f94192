//! Webhook endpoints (`webhooks`), their delivery record (`webhook_deliveries`, newest
//! 1,000 per endpoint) and the dispatcher's cursor (counter `webhook_cursor`).

use async_trait::async_trait;
use mongodb::bson::{Bson, doc};
use mongodb::options::FindOptions;
use vox_domain::webhook_endpoint::{DeliveryAttempt, WebhookEndpoint};
use vox_domain::{Error, Result};
use vox_store::WebhookStore;

use crate::codec::{decode, encode, int_field};
use crate::db::{MongoStore, during, find_all, find_by_id, is_duplicate_key, unique};

/// Attempts kept per endpoint; older ones are dropped as new ones come.
const KEPT_ATTEMPTS: u64 = 1000;

#[async_trait]
impl WebhookStore for MongoStore {
    async fn insert_webhook(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        self.webhooks.insert_one(encode(endpoint)?).await.map_err(unique("insert webhook endpoint", || {
            Error::already_exists(format!("webhook endpoint {} already exists", endpoint.id))
        }))?;
        Ok(())
    }

    async fn get_webhook(&self, id: &str) -> Result<Option<WebhookEndpoint>> {
        Ok(find_by_id(&self.webhooks, id, None, "get webhook endpoint").await?.map(decode).transpose()?)
    }

    async fn list_webhooks(&self) -> Result<Vec<WebhookEndpoint>> {
        let oldest_first = FindOptions::builder().sort(doc! { "created_at": 1, "_id": 1 }).build();
        let docs = find_all(&self.webhooks, doc! {}, oldest_first, None, "list webhook endpoints").await?;
        docs.into_iter().map(decode).collect()
    }

    async fn update_webhook(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        let replaced = self
            .webhooks
            .replace_one(doc! { "_id": &endpoint.id }, encode(endpoint)?)
            .await
            .map_err(during("update webhook endpoint"))?;
        if replaced.matched_count == 0 {
            return Err(Error::not_found("webhook endpoint", &endpoint.id));
        }
        Ok(())
    }

    async fn delete_webhook(&self, id: &str) -> Result<()> {
        let deleted = self.webhooks.delete_one(doc! { "_id": id }).await.map_err(during("delete webhook endpoint"))?;
        if deleted.deleted_count == 0 {
            return Err(Error::not_found("webhook endpoint", id));
        }
        self.webhook_deliveries
            .delete_many(doc! { "endpoint_id": id })
            .await
            .map_err(during("delete webhook deliveries"))?;
        Ok(())
    }

    async fn record_delivery(&self, attempt: &DeliveryAttempt) -> Result<()> {
        self.webhook_deliveries.insert_one(encode(attempt)?).await.map_err(during("record webhook delivery"))?;
        let oldest_kept = FindOptions::builder()
            .sort(doc! { "_id": -1 })
            .skip(KEPT_ATTEMPTS)
            .limit(1)
            .projection(doc! { "_id": 1 })
            .build();
        let beyond = find_all(
            &self.webhook_deliveries,
            doc! { "endpoint_id": &attempt.endpoint_id },
            oldest_kept,
            None,
            "find old webhook deliveries",
        )
        .await?;
        if let Some(id) = beyond.first().and_then(|d| d.get("_id").cloned()) {
            self.webhook_deliveries
                .delete_many(doc! { "endpoint_id": &attempt.endpoint_id, "_id": { "$lte": id } })
                .await
                .map_err(during("trim webhook deliveries"))?;
        }
        Ok(())
    }

    async fn list_deliveries(&self, endpoint_id: &str, limit: usize) -> Result<Vec<DeliveryAttempt>> {
        let newest_first = FindOptions::builder()
            .sort(doc! { "_id": -1 })
            .limit(i64::try_from(limit.max(1)).unwrap_or(i64::MAX))
            .build();
        let docs = find_all(
            &self.webhook_deliveries,
            doc! { "endpoint_id": endpoint_id },
            newest_first,
            None,
            "list webhook deliveries",
        )
        .await?;
        docs.into_iter().map(decode).collect()
    }

    async fn webhook_cursor(&self) -> Result<u64> {
        let cursor = find_by_id(&self.counters, "webhook_cursor", None, "read webhook cursor").await?;
        Ok(match cursor {
            Some(c) => u64::try_from(int_field(&c, "seq")?).unwrap_or(0),
            None => 0,
        })
    }

    async fn advance_webhook_cursor(&self, from: u64, to: u64) -> Result<bool> {
        let (from, to) = (i64::try_from(from).unwrap_or(i64::MAX), i64::try_from(to).unwrap_or(i64::MAX));
        // A missing cursor reads as 0: moving from 0 creates it.
        let at_from = if from == 0 {
            doc! { "_id": "webhook_cursor", "$or": [ { "seq": 0_i64 }, { "seq": { "$exists": false } } ] }
        } else {
            doc! { "_id": "webhook_cursor", "seq": from }
        };
        match self.counters.update_one(at_from, doc! { "$set": { "seq": Bson::Int64(to) } }).upsert(from == 0).await {
            Ok(r) => Ok(r.matched_count == 1 || r.upserted_id.is_some()),
            // Upserting from 0 while another dispatcher already moved it: the id is taken.
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(during("move webhook cursor")(e).into()),
        }
    }
}
