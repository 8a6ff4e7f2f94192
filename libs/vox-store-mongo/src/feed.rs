//! The activity feed on MongoDB: collection `feed`, `_id` = the entry's number.
//!
//! Entries are numbered inside the transaction of the change they report by `$inc` on the
//! counter document `feed`. Two transactions that both append conflict on that document
//! and one of them runs again, so numbers are handed out in commit order: a reader never
//! sees entry `n + 1` before `n`, and "everything after the last id I saw" is exact. Moves
//! that are not reported (leases, cancelling never-dialled numbers) do not touch the
//! counter, so lease batches do not queue behind it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use mongodb::ClientSession;
use mongodb::bson::{Document, doc};
use mongodb::options::{FindOptions, ReturnDocument};
use vox_domain::feed::{FeedEvent, FeedQuery};
use vox_domain::{Error, Result};
use vox_store::FeedStore;

use crate::codec::{date, decode, encode, int_field};
use crate::db::{MongoStore, Outcome, during, find_all, find_by_id};

/// Appends `entries`, numbered in order, inside `s`.
pub(crate) async fn append(db: &MongoStore, s: &mut ClientSession, entries: Vec<FeedEvent>) -> Outcome<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let n = entries.len() as i64;
    let counter = db
        .counters
        .find_one_and_update(doc! { "_id": "feed" }, doc! { "$inc": { "seq": n } })
        .upsert(true)
        .return_document(ReturnDocument::After)
        .session(&mut *s)
        .await
        .map_err(during("number feed entries"))?
        .ok_or_else(|| Error::internal("mongodb: number feed entries: the counter vanished"))?;
    let last = int_field(&counter, "seq")?;
    let mut docs: Vec<Document> = Vec::with_capacity(entries.len());
    for (i, mut entry) in entries.into_iter().enumerate() {
        let id = last - n + 1 + i as i64;
        entry.id = id as u64;
        docs.push(encode(&entry)?);
    }
    db.feed.insert_many(docs).session(s).await.map_err(during("append feed entries"))?;
    Ok(())
}

/// The fencing check (which writes the leadership document, so a concurrent leadership
/// change conflicts) and the append, inside `s`.
async fn append_as_leader(
    db: &MongoStore,
    s: &mut ClientSession,
    holder: &str,
    term: u64,
    events: Vec<FeedEvent>,
    now: DateTime<Utc>,
) -> Outcome<()> {
    crate::leasing::fence(db, s, holder, term, now).await?;
    append(db, s, events).await
}

#[async_trait]
impl FeedStore for MongoStore {
    async fn list_feed(&self, q: &FeedQuery) -> Result<Vec<FeedEvent>> {
        let mut filter = doc! { "_id": { "$gt": i64::try_from(q.after).unwrap_or(i64::MAX) } };
        if let Some(id) = &q.campaign_id {
            filter.insert("campaign_id", id);
        }
        let oldest_first = FindOptions::builder()
            .sort(doc! { "_id": 1 })
            .limit(i64::try_from(q.limit.max(1)).unwrap_or(i64::MAX))
            .build();
        let docs = find_all(&self.feed, filter, oldest_first, None, "read feed").await?;
        docs.into_iter().map(decode).collect()
    }

    async fn feed_head(&self) -> Result<u64> {
        let counter = find_by_id(&self.counters, "feed", None, "read feed head").await?;
        Ok(match counter {
            Some(c) => u64::try_from(int_field(&c, "seq")?).unwrap_or(0),
            None => 0,
        })
    }

    async fn prune_feed(&self, before: DateTime<Utc>) -> Result<u64> {
        let newest_old = FindOptions::builder().sort(doc! { "_id": -1 }).limit(1).build();
        let old =
            find_all(&self.feed, doc! { "at": { "$lt": date(before) } }, newest_old, None, "find old feed entries")
                .await?;
        let Some(highest) = old.first() else { return Ok(0) };
        let highest = int_field(highest, "_id")?;
        // The mark first: a reader between the two steps is told of a gap slightly early,
        // never missing entries silently.
        self.counters
            .update_one(doc! { "_id": "feed_pruned" }, doc! { "$max": { "seq": highest } })
            .upsert(true)
            .await
            .map_err(during("record feed prune"))?;
        let deleted = self.feed.delete_many(doc! { "_id": { "$lte": highest } }).await.map_err(during("prune feed"))?;
        Ok(deleted.deleted_count)
    }

    async fn feed_pruned_through(&self) -> Result<u64> {
        let mark = find_by_id(&self.counters, "feed_pruned", None, "read feed prune mark").await?;
        Ok(match mark {
            Some(c) => u64::try_from(int_field(&c, "seq")?).unwrap_or(0),
            None => 0,
        })
    }

    async fn append_feed(&self, events: &[FeedEvent]) -> Result<()> {
        self.transaction("append feed entries", (self, events), |s, &mut (db, events)| {
            append(db, s, events.to_vec()).boxed()
        })
        .await
    }

    async fn append_as_leader(&self, holder: &str, term: u64, events: &[FeedEvent], now: DateTime<Utc>) -> Result<()> {
        self.transaction(
            "report as leader",
            (self, holder, term, events, now),
            |s, &mut (db, holder, term, events, now)| {
                append_as_leader(db, s, holder, term, events.to_vec(), now).boxed()
            },
        )
        .await
    }
}
