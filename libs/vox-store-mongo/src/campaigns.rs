use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::{FutureExt, TryStreamExt};
use mongodb::ClientSession;
use mongodb::bson::{self, Document, doc};
use mongodb::options::{FindOptions, ReturnDocument};
use vox_domain::call::{self, Call, CallState, Transition};
use vox_domain::campaign::{Campaign, CampaignCounts, CampaignSpec, CampaignStatus};
use vox_domain::feed::FeedEvent;
use vox_domain::phone::E164;
use vox_domain::{Error, Result};
use vox_store::CampaignStore;

use crate::calls::{Loaded, event_doc, insert_calls, replace_call};
use crate::codec::{date, decode, encode, int_field, stored};
use crate::db::{MongoStore, Outcome, during, find_all, find_by_id, unique};
use crate::feed;
use crate::leadership::read_leadership;

pub(crate) async fn load(db: &MongoStore, s: Option<&mut ClientSession>, id: &str) -> Outcome<Campaign> {
    let doc =
        find_by_id(&db.campaigns, id, s, "load campaign").await?.ok_or_else(|| Error::not_found("campaign", id))?;
    Ok(decode(doc)?)
}

fn refused(c: &Campaign, to: CampaignStatus) -> Error {
    Error::precondition(format!("campaign {} is {}; it cannot become {}", c.id, c.status.as_str(), to.as_str()))
}

fn completed(id: &str) -> Error {
    Error::precondition(format!("campaign {id} is completed; completed campaigns cannot change"))
}

/// Moves the campaign to `to` if its status allows it, with its feed entry, inside `s`.
/// Returns the campaign as stored.
async fn move_status(
    db: &MongoStore,
    s: &mut ClientSession,
    id: &str,
    to: CampaignStatus,
    actor: &str,
    now: DateTime<Utc>,
) -> Outcome<Campaign> {
    let before = load(db, Some(&mut *s), id).await?;
    if !CampaignStatus::allowed_from(to).contains(&before.status) {
        return Err(refused(&before, to).into());
    }
    // Conditional on the status read: a concurrent move conflicts and this runs again.
    let moved = db
        .campaigns
        .find_one_and_update(
            doc! { "_id": id, "status": before.status.as_str() },
            doc! { "$set": { "status": to.as_str(), "updated_at": date(now) } },
        )
        .return_document(ReturnDocument::After)
        .session(&mut *s)
        .await
        .map_err(during("set campaign status"))?;
    let Some(moved) = moved else { return Err(refused(&load(db, Some(s), id).await?, to).into()) };
    if before.status != to {
        feed::append(db, s, vec![FeedEvent::campaign_status(id, before.status, to, actor, now)]).await?;
    }
    Ok(decode(moved)?)
}

/// Cancels every pending call of the campaign inside `s`, each with its event by `actor`.
async fn cancel_pending(
    db: &MongoStore,
    s: &mut ClientSession,
    campaign_id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Outcome<()> {
    let term = read_leadership(db, Some(&mut *s)).await?.0.term;
    let pending = doc! { "campaign_id": campaign_id, "state": CallState::Pending.as_str() };
    let calls = find_all(&db.calls, pending, FindOptions::default(), Some(&mut *s), "find pending calls").await?;
    let mut events: Vec<Document> = Vec::with_capacity(calls.len());
    for doc in calls {
        let before = Loaded::from_doc(doc)?;
        let t = Transition {
            call_id: before.call.id.clone(),
            to: Some(CallState::Canceled),
            actor: actor.to_string(),
            reason: "campaign_completed".into(),
            ..Default::default()
        };
        // The campaign is completed: no retries.
        let applied = call::apply_transition(&before.call, &t, term, before.last_seq + 1, None, now)?;
        let (_, canceled) = stored(&applied.call)?;
        if !replace_call(db, s, &before, &canceled, applied.event.seq).await? {
            return Err(Error::precondition(format!("call {} changed meanwhile; try again", canceled.id)).into());
        }
        events.push(event_doc(&canceled.id, &applied.event)?);
    }
    if !events.is_empty() {
        db.call_events.insert_many(events).session(s).await.map_err(during("append call events"))?;
    }
    Ok(())
}

/// Completes the campaign and cancels its pending calls, inside `s`.
async fn complete(
    db: &MongoStore,
    s: &mut ClientSession,
    id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Outcome<Campaign> {
    let campaign = move_status(db, s, id, CampaignStatus::Completed, actor, now).await?;
    cancel_pending(db, s, id, actor, now).await?;
    Ok(campaign)
}

/// Adds the numbers the campaign does not have yet as first attempts; returns the rows of
/// the others. The unique index on first attempts settles a race with a concurrent upload.
pub(crate) async fn add(
    db: &MongoStore,
    s: &mut ClientSession,
    campaign_id: &str,
    numbers: &[(u32, E164)],
    now: DateTime<Utc>,
) -> Outcome<Vec<u32>> {
    let c = load(db, Some(&mut *s), campaign_id).await?;
    if c.status == CampaignStatus::Completed {
        return Err(
            Error::precondition(format!("campaign {campaign_id} is completed; it takes no more numbers")).into()
        );
    }
    // The campaign's numbers between the smallest and the largest asked, by a range scan
    // of the first-attempt index, then matched here: a plain index range on every
    // server, where `$in` with thousands of values may be planned as a collection scan.
    let asked: HashSet<&str> = numbers.iter().map(|(_, n)| n.as_str()).collect();
    let (Some(lowest), Some(highest)) = (asked.iter().min(), asked.iter().max()) else { return Ok(Vec::new()) };
    let there = find_all(
        &db.calls,
        doc! { "campaign_id": campaign_id, "first_number": { "$gte": *lowest, "$lte": *highest } },
        FindOptions::builder().projection(doc! { "_id": 0, "first_number": 1 }).build(),
        Some(&mut *s),
        "find numbers already there",
    )
    .await?;
    let mut seen: HashSet<String> = there
        .iter()
        .filter_map(|d| d.get_str("first_number").ok().filter(|n| asked.contains(n)).map(String::from))
        .collect();
    let mut already = Vec::new();
    let mut new = Vec::new();
    for (row, number) in numbers {
        if !seen.insert(number.as_str().to_string()) {
            already.push(*row);
            continue;
        }
        let call = Call::outbound(campaign_id, &c.spec.region_id, number.as_str(), c.spec.caller_id.as_str(), now);
        let created = call.created_event("system");
        new.push((call, created));
    }
    insert_calls(db, s, &new).await?;
    Ok(already)
}

#[async_trait]
impl CampaignStore for MongoStore {
    async fn insert_campaign(&self, campaign: &Campaign) -> Result<()> {
        let taken = || Error::already_exists(format!("campaign {} already exists", campaign.id));
        self.campaigns.insert_one(encode(campaign)?).await.map_err(unique("insert campaign", taken))?;
        Ok(())
    }

    async fn get_campaign(&self, id: &str) -> Result<Option<Campaign>> {
        Ok(find_by_id(&self.campaigns, id, None, "get campaign").await?.map(decode).transpose()?)
    }

    async fn list_campaigns(&self, status: Option<CampaignStatus>) -> Result<Vec<Campaign>> {
        let filter = status.map_or_else(|| doc! {}, |s| doc! { "status": s.as_str() });
        let oldest_first = FindOptions::builder().sort(doc! { "created_at": 1, "_id": 1 }).build();
        let docs = find_all(&self.campaigns, filter, oldest_first, None, "list campaigns").await?;
        docs.into_iter().map(decode).collect()
    }

    /// One document changes, conditionally on the campaign not being completed.
    async fn update_campaign_spec(&self, id: &str, spec: &CampaignSpec, now: DateTime<Utc>) -> Result<Campaign> {
        let spec = bson::to_bson(spec).map_err(|e| Error::internal(format!("encode campaign spec: {e}")))?;
        let updated = self
            .campaigns
            .find_one_and_update(
                doc! { "_id": id, "status": { "$ne": CampaignStatus::Completed.as_str() } },
                doc! { "$set": { "spec": spec, "updated_at": date(now) } },
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(during("update campaign"))?;
        match updated {
            Some(doc) => decode(doc),
            None => {
                load(self, None, id).await?;
                Err(completed(id))
            }
        }
    }

    async fn set_campaign_status(
        &self,
        id: &str,
        to: CampaignStatus,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Campaign> {
        if to != CampaignStatus::Completed {
            return self
                .transaction("set campaign status", (self, id, to, actor, now), |s, &mut (db, id, to, actor, now)| {
                    move_status(db, s, id, to, actor, now).boxed()
                })
                .await;
        }
        self.transaction("complete campaign", (self, id, actor, now), |s, &mut (db, id, actor, now)| {
            complete(db, s, id, actor, now).boxed()
        })
        .await
    }

    async fn campaign_counts(&self, id: &str) -> Result<CampaignCounts> {
        let pipeline =
            [doc! { "$match": { "campaign_id": id } }, doc! { "$group": { "_id": "$state", "n": { "$sum": 1 } } }];
        let groups: Vec<Document> = self
            .calls
            .aggregate(pipeline)
            .await
            .map_err(during("count calls"))?
            .try_collect()
            .await
            .map_err(during("count calls"))?;
        let mut counts = CampaignCounts::default();
        for group in groups {
            let state = group.get_str("_id").ok().and_then(CallState::parse);
            let state = state.ok_or_else(|| Error::internal(format!("count calls: stored call state {group:?}")))?;
            counts.add(state, u64::try_from(int_field(&group, "n")?).unwrap_or(0));
        }
        Ok(counts)
    }

    /// One transaction up to `imports::CHUNK` numbers; beyond, written ahead and added
    /// in chunks (see `imports`).
    async fn add_numbers(&self, campaign_id: &str, numbers: &[(u32, E164)], now: DateTime<Utc>) -> Result<Vec<u32>> {
        crate::imports::add_numbers(self, campaign_id, numbers, now).await
    }
}
