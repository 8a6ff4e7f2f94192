//! Leasing batches of due calls and reaping stuck ones, correct however many diallers and
//! reapers race.
//!
//! A lease batch is one transaction that
//! 1. fences: bumps `lease_batches` on the leadership document, on condition that the
//!    requester holds the unexpired lease at exactly its term. The condition is the
//!    fencing check; the write makes it atomic with the batch, since any leadership change
//!    committed meanwhile is a write to the same document and conflicts with it, so one of
//!    the two runs again (a stale leaser then finds the new term and is refused). Batches
//!    serialise on it too, as they would anyway on the oldest due calls they all want;
//! 2. reads the campaign (it must be running) and the oldest due pending calls;
//! 3. moves each call with `apply_lease` and writes it back conditionally on its version
//!    and appends the events in one insert.
//!
//! A call another transaction changed after this one's snapshot is a write conflict, so no
//! call is leased twice and none is lost: the conflicting batch runs again from a fresh
//! snapshot. Batches of one process take turns before they start (`lease_turn`), so only
//! batches of different instances ever conflict.
//!
//! The reaper moves each stuck call in its own transaction, re-checking after reading it
//! that it is still stuck, so of two racing reapers only one moves it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use mongodb::ClientSession;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::FindOptions;
use vox_domain::call::{self, Call, CallState, StaleDeadlines, Transition};
use vox_domain::campaign::{Campaign, CampaignStatus};
use vox_domain::{Error, Result};
use vox_store::LeaseRequest;

use crate::calls::{Loaded, apply_and_store, event_doc, load_call, replace_call};
use crate::codec::{date, decode, int, stored};
use crate::db::{MongoStore, Outcome, during, find_all, find_by_id};
use crate::leadership::{self, read_leadership};

/// Fails unless `owner` holds the unexpired leadership lease at `term`,
/// and writes the leadership document so a concurrent leadership change conflicts.
pub(crate) async fn fence(
    db: &MongoStore,
    s: &mut ClientSession,
    owner: &str,
    term: u64,
    now: DateTime<Utc>,
) -> Outcome<()> {
    let held = doc! {
        "_id": leadership::NAME,
        "holder_id": owner,
        "term": int(term),
        "expires_at": { "$gt": date(now) },
    };
    let fenced = db
        .leadership
        .update_one(held, doc! { "$inc": { "lease_batches": 1_i64 } })
        .session(&mut *s)
        .await
        .map_err(during("check fencing term"))?;
    if fenced.matched_count == 1 {
        return Ok(());
    }
    let (lead, _) = read_leadership(db, Some(s)).await?;
    // A lease that is held after all (it changed between the two reads) still refuses:
    // this transaction saw it not held.
    lead.fence(owner, term, now)?;
    Err(Error::precondition(format!("the leadership lease changed while {owner} was checked; try again")).into())
}

/// Leases up to `req.max` due calls of the campaign inside `s`; see the module doc.
pub(crate) async fn lease_batch(
    db: &MongoStore,
    s: &mut ClientSession,
    req: &LeaseRequest,
    now: DateTime<Utc>,
) -> Outcome<Vec<Call>> {
    fence(db, s, &req.owner, req.fencing_term, now).await?;
    let campaign = find_by_id(&db.campaigns, &req.campaign_id, Some(&mut *s), "load campaign")
        .await?
        .ok_or_else(|| Error::not_found("campaign", &req.campaign_id))?;
    let campaign: Campaign = decode(campaign)?;
    if campaign.status != CampaignStatus::Running {
        return Err(Error::precondition(format!(
            "campaign {} is {}; only running campaigns lease calls",
            campaign.id,
            campaign.status.as_str()
        ))
        .into());
    }
    if req.max == 0 {
        return Ok(Vec::new());
    }
    let due =
        doc! { "campaign_id": &req.campaign_id, "state": CallState::Pending.as_str(), "due_at": { "$lte": date(now) } };
    let oldest_due_first = FindOptions::builder()
        .sort(doc! { "due_at": 1, "created_at": 1, "_id": 1 })
        .limit(i64::try_from(req.max).unwrap_or(i64::MAX))
        .build();
    let candidates = find_all(&db.calls, due, oldest_due_first, Some(&mut *s), "find due calls").await?;

    let mut leased = Vec::with_capacity(candidates.len());
    let mut events: Vec<Document> = Vec::with_capacity(candidates.len());
    for doc in candidates {
        let before = Loaded::from_doc(doc)?;
        let applied = call::apply_lease(&before.call, &req.owner, req.fencing_term, req.ttl, before.last_seq + 1, now)?;
        let (_, call) = stored(&applied.call)?;
        if replace_call(db, s, &before, &call, applied.event.seq).await? {
            events.push(event_doc(&call.id, &applied.event)?);
            leased.push(call);
        }
    }
    if !events.is_empty() {
        db.call_events.insert_many(events).session(s).await.map_err(during("append call events"))?;
    }
    Ok(leased)
}

/// Which calls may be stuck at `now`: a pre-filter on the indexed state and the times;
/// `StaleDeadlines::reap` decides.
fn maybe_stuck(d: &StaleDeadlines, now: DateTime<Utc>) -> Document {
    let older = |state: CallState, limit: chrono::Duration| {
        Bson::Document(doc! { "state": state.as_str(), "state_since": { "$lte": date(now - limit) } })
    };
    let expired = Bson::Document(doc! {
        "state": CallState::Leased.as_str(),
        "$or": [ { "lease": Bson::Null }, { "lease.expires_at": { "$lte": date(now) } } ],
    });
    doc! { "$or": [
        expired,
        older(CallState::Dialing, d.dialing),
        older(CallState::Ringing, d.ringing),
        older(CallState::Answered, d.answered),
        older(CallState::Attaching, d.attaching),
        older(CallState::InProgress, d.in_progress),
    ] }
}

/// Moves the call on inside `s` if it is still stuck; returns the state it was stuck in.
async fn reap_one(
    db: &MongoStore,
    s: &mut ClientSession,
    id: &str,
    d: &StaleDeadlines,
    now: DateTime<Utc>,
) -> Outcome<Option<CallState>> {
    let before = load_call(db, s, id).await?;
    let Some((to, reason)) = d.reap(&before.call, now) else { return Ok(None) };
    let was = before.call.state;
    let t = Transition { call_id: id.to_string(), to: Some(to), actor: "system".into(), reason, ..Default::default() };
    apply_and_store(db, s, before, &t, now).await?;
    Ok(Some(was))
}

/// Moves every stuck call on, each in its own transaction, and counts by the state each
/// was stuck in the calls this reaper moved.
pub(crate) async fn reap_stale(
    db: &MongoStore,
    d: &StaleDeadlines,
    now: DateTime<Utc>,
) -> Result<Vec<(CallState, u64)>> {
    let ids_only = FindOptions::builder().projection(doc! { "_id": 1 }).build();
    let stuck = find_all(&db.calls, maybe_stuck(d, now), ids_only, None, "find stuck calls").await?;
    let mut reaped = Vec::new();
    for doc in stuck {
        let Ok(id) = doc.get_str("_id") else { continue };
        let moved = db
            .transaction("reap call", (db, id, d, now), |s, &mut (db, id, d, now)| reap_one(db, s, id, d, now).boxed())
            .await?;
        reaped.extend(moved);
    }
    let mut by_state: BTreeMap<CallState, u64> = BTreeMap::new();
    for state in reaped {
        *by_state.entry(state).or_default() += 1;
    }
    Ok(by_state.into_iter().collect())
}
