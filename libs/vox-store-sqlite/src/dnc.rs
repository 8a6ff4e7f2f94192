use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;
use vox_domain::Result;
use vox_store::{DncEntry, DncStore};

use crate::db::{SqliteStore, from_ms, ms, sql};

#[async_trait]
impl DncStore for SqliteStore {
    async fn add_dnc(&self, campaign_id: &str, numbers: &[String], actor: &str, now: DateTime<Utc>) -> Result<u32> {
        let (campaign_id, numbers, actor) = (campaign_id.to_string(), numbers.to_vec(), actor.to_string());
        self.run(move |c| {
            let tx = c.transaction().map_err(sql("begin"))?;
            let mut added = 0;
            for n in &numbers {
                added += tx
                    .execute(
                        "INSERT OR IGNORE INTO dnc (campaign_id, number, added_ms, added_by) VALUES (?1, ?2, ?3, ?4)",
                        params![campaign_id, n, ms(now), actor],
                    )
                    .map_err(sql("add dnc"))? as u32;
            }
            tx.commit().map_err(sql("commit"))?;
            Ok(added)
        })
        .await
    }

    async fn remove_dnc(&self, campaign_id: &str, numbers: &[String]) -> Result<u32> {
        let (campaign_id, numbers) = (campaign_id.to_string(), numbers.to_vec());
        self.run(move |c| {
            let tx = c.transaction().map_err(sql("begin"))?;
            let mut removed = 0;
            for n in &numbers {
                removed += tx
                    .execute("DELETE FROM dnc WHERE campaign_id = ?1 AND number = ?2", params![campaign_id, n])
                    .map_err(sql("remove dnc"))? as u32;
            }
            tx.commit().map_err(sql("commit"))?;
            Ok(removed)
        })
        .await
    }

    async fn list_dnc(&self, campaign_id: &str, after: &str, limit: usize) -> Result<Vec<DncEntry>> {
        let (campaign_id, after) = (campaign_id.to_string(), after.to_string());
        self.run(move |c| {
            let mut st = c
                .prepare(
                    "SELECT number, campaign_id, added_ms, added_by FROM dnc WHERE campaign_id = ?1 AND number > ?2 \
                     ORDER BY number LIMIT ?3",
                )
                .map_err(sql("list dnc"))?;
            let rows = st
                .query_map(params![campaign_id, after, limit as i64], |r| {
                    Ok(DncEntry {
                        number: r.get(0)?,
                        campaign_id: r.get(1)?,
                        added_at: from_ms(r.get(2)?),
                        added_by: r.get(3)?,
                    })
                })
                .map_err(sql("list dnc"))?;
            rows.collect::<std::result::Result<Vec<_>, _>>().map_err(sql("list dnc"))
        })
        .await
    }

    async fn blocked_numbers(&self, campaign_id: &str, numbers: &[String]) -> Result<Vec<String>> {
        let (campaign_id, numbers) = (campaign_id.to_string(), numbers.to_vec());
        self.run(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT 1 FROM dnc WHERE number = ?1 AND (campaign_id = '' OR campaign_id = ?2) LIMIT 1",
                )
                .map_err(sql("check dnc"))?;
            let mut blocked = Vec::new();
            for n in numbers {
                if st.exists(params![n, campaign_id]).map_err(sql("check dnc"))? {
                    blocked.push(n);
                }
            }
            Ok(blocked)
        })
        .await
    }
}
