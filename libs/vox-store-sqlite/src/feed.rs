//! The activity feed on SQLite. Entries are numbered by `AUTOINCREMENT` inside the
//! transaction of the change they report; the one connection serialises writers, so ids
//! are handed out in commit order and a reader never sees entry `n + 1` before `n`.
//! `AUTOINCREMENT` (not a plain rowid) keeps ids from being reused after a prune.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};
use vox_domain::Result;
use vox_domain::feed::{FeedEvent, FeedQuery};
use vox_store::FeedStore;

use crate::db::{SqliteStore, from_doc, ms, sql, to_doc};
use crate::leadership::read_leadership;

/// Appends `event` inside `tx`; the store numbers it.
pub(crate) fn append_tx(tx: &Transaction<'_>, event: &FeedEvent) -> Result<()> {
    tx.prepare_cached("INSERT INTO feed (at_ms, campaign_id, doc) VALUES (?1, ?2, ?3)")
        .map_err(sql("prepare append feed entry"))?
        .execute(params![ms(event.at), event.campaign_id, to_doc(event)?])
        .map_err(sql("append feed entry"))?;
    Ok(())
}

#[async_trait]
impl FeedStore for SqliteStore {
    async fn list_feed(&self, q: &FeedQuery) -> Result<Vec<FeedEvent>> {
        let q = q.clone();
        self.run(move |c| {
            let limit = q.limit.max(1) as i64;
            let after = i64::try_from(q.after).unwrap_or(i64::MAX);
            let mut stmt = match &q.campaign_id {
                Some(_) => {
                    c.prepare_cached("SELECT id, doc FROM feed WHERE id > ?1 AND campaign_id = ?3 ORDER BY id LIMIT ?2")
                }
                None => c.prepare_cached("SELECT id, doc FROM feed WHERE id > ?1 ORDER BY id LIMIT ?2"),
            }
            .map_err(sql("prepare read feed"))?;
            let read = |r: &rusqlite::Row<'_>| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?));
            let rows: Vec<(i64, String)> = match &q.campaign_id {
                Some(id) => stmt.query_map(params![after, limit, id], read),
                None => stmt.query_map(params![after, limit], read),
            }
            .map_err(sql("read feed"))?
            .collect::<std::result::Result<_, _>>()
            .map_err(sql("read feed entry"))?;
            rows.into_iter()
                .map(|(id, doc)| {
                    let mut e: FeedEvent = from_doc(&doc)?;
                    e.id = id as u64;
                    Ok(e)
                })
                .collect()
        })
        .await
    }

    async fn feed_head(&self) -> Result<u64> {
        self.run(|c| {
            c.query_row("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'feed'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(sql("read feed head"))
        })
        .await
    }

    async fn prune_feed(&self, before: DateTime<Utc>) -> Result<u64> {
        self.tx(move |tx| {
            let highest: Option<i64> = tx
                .query_row("SELECT MAX(id) FROM feed WHERE at_ms < ?1", [ms(before)], |r| r.get(0))
                .map_err(sql("find prunable feed entries"))?;
            let Some(highest) = highest else { return Ok(0) };
            let n = tx.execute("DELETE FROM feed WHERE id <= ?1", [highest]).map_err(sql("prune feed"))?;
            tx.execute(
                "INSERT INTO feed_meta (name, value) VALUES ('pruned_through', ?1)
                 ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)",
                [highest],
            )
            .map_err(sql("record feed prune"))?;
            Ok(n as u64)
        })
        .await
    }

    async fn feed_pruned_through(&self) -> Result<u64> {
        self.run(|c| {
            c.query_row("SELECT COALESCE(MAX(value), 0) FROM feed_meta WHERE name = 'pruned_through'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(sql("read feed prune mark"))
        })
        .await
    }

    async fn append_feed(&self, events: &[FeedEvent]) -> Result<()> {
        let events = events.to_vec();
        self.tx(move |tx| events.iter().try_for_each(|e| append_tx(tx, e))).await
    }

    async fn append_as_leader(&self, holder: &str, term: u64, events: &[FeedEvent], now: DateTime<Utc>) -> Result<()> {
        let (holder, events) = (holder.to_string(), events.to_vec());
        self.tx(move |tx| {
            read_leadership(tx)?.fence(&holder, term, now)?;
            events.iter().try_for_each(|e| append_tx(tx, e))
        })
        .await
    }
}
