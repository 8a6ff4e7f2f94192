use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use vox_domain::api_key::ApiKey;
use vox_domain::{Error, Result};
use vox_store::ApiKeyStore;

use crate::db::{SqliteStore, doc, docs, is_unique_violation, ms, sql, to_doc};

fn load(c: &Connection, id: &str) -> Result<ApiKey> {
    doc(c, "SELECT doc FROM api_keys WHERE id = ?1", [id])?.ok_or_else(|| Error::not_found("API key", id))
}

fn store(c: &Connection, key: &ApiKey) -> Result<()> {
    c.execute("UPDATE api_keys SET doc = ?2 WHERE id = ?1", params![key.id, to_doc(key)?])
        .map_err(sql("update API key"))?;
    Ok(())
}

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()> {
        let key = key.clone();
        self.run(move |c| {
            c.execute(
                "INSERT INTO api_keys (id, created_ms, doc) VALUES (?1, ?2, ?3)",
                params![key.id, ms(key.created_at), to_doc(&key)?],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::already_exists(format!("API key {} already exists", key.id))
                } else {
                    sql("insert API key")(e)
                }
            })?;
            Ok(())
        })
        .await
    }

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKey>> {
        let id = id.to_string();
        self.run(move |c| doc(c, "SELECT doc FROM api_keys WHERE id = ?1", [id])).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        self.run(|c| docs(c, "SELECT doc FROM api_keys ORDER BY created_ms DESC, id DESC", [])).await
    }

    async fn revoke_api_key(&self, id: &str, now: DateTime<Utc>) -> Result<ApiKey> {
        let id = id.to_string();
        self.tx(move |tx| {
            let mut key = load(tx, &id)?;
            if key.revoked_at.is_none() {
                key.revoked_at = Some(now);
                store(tx, &key)?;
            }
            Ok(key)
        })
        .await
    }

    async fn touch_api_key(&self, id: &str, now: DateTime<Utc>) -> Result<()> {
        let id = id.to_string();
        self.tx(move |tx| {
            let mut key = load(tx, &id)?;
            if key.last_used_at.is_none_or(|t| t < now) {
                key.last_used_at = Some(now);
                store(tx, &key)?;
            }
            Ok(())
        })
        .await
    }
}
