//! Webhook endpoints, their delivery record and the dispatcher's cursor on SQLite.

use async_trait::async_trait;
use rusqlite::params;
use vox_domain::webhook_endpoint::{DeliveryAttempt, WebhookEndpoint};
use vox_domain::{Error, Result};
use vox_store::WebhookStore;

use crate::db::{SqliteStore, doc, docs, is_unique_violation, ms, sql, to_doc};

/// Attempts kept per endpoint; older ones are dropped as new ones come.
const KEPT_ATTEMPTS: i64 = 1000;

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn insert_webhook(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        let e = endpoint.clone();
        self.run(move |c| {
            c.execute(
                "INSERT INTO webhooks (id, created_ms, doc) VALUES (?1, ?2, ?3)",
                params![e.id, ms(e.created_at), to_doc(&e)?],
            )
            .map_err(|err| {
                if is_unique_violation(&err) {
                    Error::already_exists(format!("webhook endpoint {} already exists", e.id))
                } else {
                    sql("insert webhook endpoint")(err)
                }
            })?;
            Ok(())
        })
        .await
    }

    async fn get_webhook(&self, id: &str) -> Result<Option<WebhookEndpoint>> {
        let id = id.to_string();
        self.run(move |c| doc(c, "SELECT doc FROM webhooks WHERE id = ?1", [id])).await
    }

    async fn list_webhooks(&self) -> Result<Vec<WebhookEndpoint>> {
        self.run(|c| docs(c, "SELECT doc FROM webhooks ORDER BY created_ms, id", [])).await
    }

    async fn update_webhook(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        let e = endpoint.clone();
        self.run(move |c| {
            let n = c
                .execute("UPDATE webhooks SET doc = ?2 WHERE id = ?1", params![e.id, to_doc(&e)?])
                .map_err(sql("update webhook endpoint"))?;
            if n == 0 {
                return Err(Error::not_found("webhook endpoint", &e.id));
            }
            Ok(())
        })
        .await
    }

    async fn delete_webhook(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.tx(move |tx| {
            let n = tx.execute("DELETE FROM webhooks WHERE id = ?1", [&id]).map_err(sql("delete webhook endpoint"))?;
            if n == 0 {
                return Err(Error::not_found("webhook endpoint", &id));
            }
            tx.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = ?1", [&id])
                .map_err(sql("delete webhook deliveries"))?;
            Ok(())
        })
        .await
    }

    async fn record_delivery(&self, attempt: &DeliveryAttempt) -> Result<()> {
        let a = attempt.clone();
        self.tx(move |tx| {
            tx.execute(
                "INSERT INTO webhook_deliveries (endpoint_id, doc) VALUES (?1, ?2)",
                params![a.endpoint_id, to_doc(&a)?],
            )
            .map_err(sql("record webhook delivery"))?;
            tx.execute(
                "DELETE FROM webhook_deliveries WHERE endpoint_id = ?1 AND seq <= (SELECT seq FROM webhook_deliveries
                 WHERE endpoint_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                params![a.endpoint_id, KEPT_ATTEMPTS],
            )
            .map_err(sql("trim webhook deliveries"))?;
            Ok(())
        })
        .await
    }

    async fn list_deliveries(&self, endpoint_id: &str, limit: usize) -> Result<Vec<DeliveryAttempt>> {
        let (id, limit) = (endpoint_id.to_string(), limit.max(1) as i64);
        self.run(move |c| {
            docs(
                c,
                "SELECT doc FROM webhook_deliveries WHERE endpoint_id = ?1 ORDER BY seq DESC LIMIT ?2",
                params![id, limit],
            )
        })
        .await
    }

    async fn webhook_cursor(&self) -> Result<u64> {
        self.run(|c| {
            c.query_row("SELECT COALESCE(MAX(value), 0) FROM feed_meta WHERE name = 'webhook_cursor'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(sql("read webhook cursor"))
        })
        .await
    }

    async fn advance_webhook_cursor(&self, from: u64, to: u64) -> Result<bool> {
        self.tx(move |tx| {
            let now: i64 = tx
                .query_row("SELECT COALESCE(MAX(value), 0) FROM feed_meta WHERE name = 'webhook_cursor'", [], |r| {
                    r.get(0)
                })
                .map_err(sql("read webhook cursor"))?;
            if now as u64 != from {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO feed_meta (name, value) VALUES ('webhook_cursor', ?1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [to as i64],
            )
            .map_err(sql("move webhook cursor"))?;
            Ok(true)
        })
        .await
    }
}
