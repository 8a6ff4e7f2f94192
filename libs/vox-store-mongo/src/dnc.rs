//! The do-not-call list: one document per (list, number), `_id` "<campaign id or *>|<number>".

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use vox_domain::Result;
use vox_store::{DncEntry, DncStore};

use crate::db::{MongoStore, driver_error};

fn id(campaign_id: &str, number: &str) -> String {
    format!("{}|{number}", if campaign_id.is_empty() { "*" } else { campaign_id })
}

fn entry(d: &Document) -> DncEntry {
    DncEntry {
        number: d.get_str("number").unwrap_or_default().to_string(),
        campaign_id: d.get_str("campaign_id").unwrap_or_default().to_string(),
        added_at: d
            .get_datetime("added_at")
            .ok()
            .and_then(|t| DateTime::<Utc>::from_timestamp_millis(t.timestamp_millis()))
            .unwrap_or_default(),
        added_by: d.get_str("added_by").unwrap_or_default().to_string(),
    }
}

#[async_trait]
impl DncStore for MongoStore {
    async fn add_dnc(&self, campaign_id: &str, numbers: &[String], actor: &str, now: DateTime<Utc>) -> Result<u32> {
        let mut added = 0;
        for n in numbers {
            let set = doc! {
                "number": n, "campaign_id": campaign_id,
                "added_at": mongodb::bson::DateTime::from_millis(now.timestamp_millis()), "added_by": actor,
            };
            let r = self
                .dnc
                .update_one(doc! { "_id": id(campaign_id, n) }, doc! { "$setOnInsert": set })
                .upsert(true)
                .await
                .map_err(|e| driver_error("add dnc", &e))?;
            if r.upserted_id.is_some() {
                added += 1;
            }
        }
        Ok(added)
    }

    async fn remove_dnc(&self, campaign_id: &str, numbers: &[String]) -> Result<u32> {
        let ids: Vec<String> = numbers.iter().map(|n| id(campaign_id, n)).collect();
        let r =
            self.dnc.delete_many(doc! { "_id": { "$in": ids } }).await.map_err(|e| driver_error("remove dnc", &e))?;
        Ok(u32::try_from(r.deleted_count).unwrap_or(u32::MAX))
    }

    async fn list_dnc(&self, campaign_id: &str, after: &str, limit: usize) -> Result<Vec<DncEntry>> {
        let docs: Vec<Document> = self
            .dnc
            .find(doc! { "campaign_id": campaign_id, "number": { "$gt": after } })
            .sort(doc! { "number": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| driver_error("list dnc", &e))?
            .try_collect()
            .await
            .map_err(|e| driver_error("list dnc", &e))?;
        Ok(docs.iter().map(entry).collect())
    }

    async fn blocked_numbers(&self, campaign_id: &str, numbers: &[String]) -> Result<Vec<String>> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let docs: Vec<Document> = self
            .dnc
            .find(doc! { "number": { "$in": numbers }, "campaign_id": { "$in": ["", campaign_id] } })
            .await
            .map_err(|e| driver_error("check dnc", &e))?
            .try_collect()
            .await
            .map_err(|e| driver_error("check dnc", &e))?;
        let mut blocked: Vec<String> = docs.iter().map(|d| entry(d).number).collect();
        blocked.sort();
        blocked.dedup();
        Ok(blocked)
    }
}
