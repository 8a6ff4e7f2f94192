//! API keys: one document per key. Revoking and touching are single conditional updates,
//! so concurrent requests never move `revoked_at` or `last_used_at` back.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::bson::doc;
use mongodb::options::FindOptions;
use vox_domain::api_key::ApiKey;
use vox_domain::{Error, Result};
use vox_store::ApiKeyStore;

use crate::codec::{date, decode, encode};
use crate::db::{MongoStore, during, find_all, find_by_id, unique};

#[async_trait]
impl ApiKeyStore for MongoStore {
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()> {
        let doc = encode(key)?;
        self.api_keys.insert_one(doc).await.map_err(unique("insert API key", || {
            Error::already_exists(format!("API key {} already exists", key.id))
        }))?;
        Ok(())
    }

    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKey>> {
        Ok(find_by_id(&self.api_keys, id, None, "get API key").await?.map(decode).transpose()?)
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let newest_first = FindOptions::builder().sort(doc! { "created_at": -1, "_id": -1 }).build();
        let docs = find_all(&self.api_keys, doc! {}, newest_first, None, "list API keys").await?;
        docs.into_iter().map(decode).collect()
    }

    async fn revoke_api_key(&self, id: &str, now: DateTime<Utc>) -> Result<ApiKey> {
        self.api_keys
            .update_one(doc! { "_id": id, "revoked_at": null }, doc! { "$set": { "revoked_at": date(now) } })
            .await
            .map_err(during("revoke API key"))?;
        self.get_api_key(id).await?.ok_or_else(|| Error::not_found("API key", id))
    }

    async fn touch_api_key(&self, id: &str, now: DateTime<Utc>) -> Result<()> {
        let used = self
            .api_keys
            .update_one(doc! { "_id": id }, doc! { "$max": { "last_used_at": date(now) } })
            .await
            .map_err(during("touch API key"))?;
        if used.matched_count == 0 {
            return Err(Error::not_found("API key", id));
        }
        Ok(())
    }
}
