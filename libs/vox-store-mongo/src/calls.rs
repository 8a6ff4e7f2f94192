//! Calls and their timelines. A call document is the domain `Call` plus two fields:
//! `first_number` (first outbound attempts only, kept unique per campaign by a partial
//! index) and `event_seq`, the number of its latest timeline event, so a move knows the
//! next event's number without reading the timeline. Every write of a call is conditional
//! on the version it was read at.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::{FutureExt, TryStreamExt};
use mongodb::ClientSession;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::{FindOptions, ReturnDocument};
use vox_domain::call::{self, Applied, Call, CallEvent, CallState, Direction, Recording, StaleDeadlines, Transition};
use vox_domain::campaign::{Campaign, CampaignStatus};
use vox_domain::feed::FeedEvent;
use vox_domain::{Error, Result};
use vox_store::{CallQuery, CallStore, CallTotals, LeaseRequest};

use crate::codec::{date, decode, encode, int, int_field, stored};
use crate::db::{MongoStore, Outcome, during, find_all, find_by_id, unique};
use crate::feed;
use crate::leadership::read_leadership;
use crate::leasing;

/// A call as read inside a transaction, with the number of its latest event.
pub(crate) struct Loaded {
    pub(crate) call: Call,
    pub(crate) last_seq: u32,
}

impl Loaded {
    pub(crate) fn from_doc(doc: Document) -> Result<Loaded> {
        let last_seq = u32::try_from(int_field(&doc, "event_seq")?)
            .map_err(|e| Error::internal(format!("decode stored call: event_seq: {e}")))?;
        Ok(Loaded { call: decode(doc)?, last_seq })
    }
}

fn first_number(c: &Call) -> Option<&str> {
    (c.direction == Direction::Outbound && c.attempt == 1 && c.campaign_id.is_some()).then_some(c.to_number.as_str())
}

/// The stored document of `call` whose latest event is number `last_seq`.
pub(crate) fn call_doc(call: &Call, last_seq: u32) -> Result<Document> {
    let mut doc = encode(call)?;
    if let Some(number) = first_number(call) {
        doc.insert("first_number", number);
    }
    doc.insert("event_seq", i64::from(last_seq));
    Ok(doc)
}

pub(crate) fn event_doc(call_id: &str, event: &CallEvent) -> Result<Document> {
    let mut doc = encode(event)?;
    doc.insert("call_id", call_id);
    Ok(doc)
}

/// Inserts new calls, each with its first event, inside `s`.
pub(crate) async fn insert_calls(db: &MongoStore, s: &mut ClientSession, new: &[(Call, CallEvent)]) -> Outcome<()> {
    let Some((first, _)) = new.first() else { return Ok(()) };
    let mut calls = Vec::with_capacity(new.len());
    let mut events = Vec::with_capacity(new.len());
    let mut reported = Vec::new();
    for (call, event) in new {
        calls.push(call_doc(call, event.seq)?);
        events.push(event_doc(&call.id, event)?);
        reported.extend(FeedEvent::for_call_change(call, event));
    }
    let taken = || {
        let what = if new.len() == 1 {
            format!("call {} or number {}", first.id, first.to_number)
        } else {
            "a call or number".into()
        };
        Error::already_exists(format!("{what} already exists in its campaign"))
    };
    db.calls.insert_many(calls).session(&mut *s).await.map_err(unique("insert call", taken))?;
    db.call_events.insert_many(events).session(&mut *s).await.map_err(during("append call event"))?;
    feed::append(db, s, reported).await
}

pub(crate) async fn load_call(db: &MongoStore, s: &mut ClientSession, id: &str) -> Outcome<Loaded> {
    let doc = find_by_id(&db.calls, id, Some(s), "load call").await?.ok_or_else(|| Error::not_found("call", id))?;
    Ok(Loaded::from_doc(doc)?)
}

/// Writes `after` over `before` if the stored call is still at `before`'s version. False
/// when it is not (a concurrent writer got there first); inside a transaction that shows
/// up as a write conflict instead, and the transaction runs again.
pub(crate) async fn replace_call(
    db: &MongoStore,
    s: &mut ClientSession,
    before: &Loaded,
    after: &Call,
    last_seq: u32,
) -> Outcome<bool> {
    let filter = doc! { "_id": &before.call.id, "version": int(before.call.version) };
    let replaced =
        db.calls.replace_one(filter, call_doc(after, last_seq)?).session(s).await.map_err(during("update call"))?;
    Ok(replaced.matched_count == 1)
}

/// Stores an applied change inside `s`: the call (only if unchanged since `before`), its
/// event and its retry. Returns the call as stored.
async fn store_applied(db: &MongoStore, s: &mut ClientSession, before: &Loaded, a: &Applied) -> Outcome<Call> {
    let (_, call) = stored(&a.call)?;
    if !replace_call(db, s, before, &call, a.event.seq).await? {
        return Err(Error::precondition(format!("call {} changed meanwhile; read it again", call.id)).into());
    }
    db.call_events
        .insert_one(event_doc(&call.id, &a.event)?)
        .session(&mut *s)
        .await
        .map_err(during("append call event"))?;
    feed::append(db, s, FeedEvent::for_call_change(&call, &a.event).into_iter().collect()).await?;
    if let Some(retry) = &a.retry {
        let mut created = retry.created_event("system");
        created.reason = format!("retry of {}", call.id);
        insert_calls(db, s, &[(retry.clone(), created)]).await?;
    }
    Ok(call)
}

/// The campaign `call` belongs to, if any, read inside `s`.
async fn campaign_of(db: &MongoStore, s: &mut ClientSession, call: &Call) -> Outcome<Option<Campaign>> {
    match &call.campaign_id {
        Some(id) => Ok(find_by_id(&db.campaigns, id, Some(s), "load campaign").await?.map(decode).transpose()?),
        None => Ok(None),
    }
}

/// Applies `t` to the loaded call inside `s`, against the current term and its campaign's
/// retry policy, and stores the result.
///
/// The term is read in the transaction's snapshot. A leadership change committing
/// meanwhile does not conflict with this write, and need not: it reads no call, so the
/// outcome is the one where this move came first.
pub(crate) async fn apply_and_store(
    db: &MongoStore,
    s: &mut ClientSession,
    before: Loaded,
    t: &Transition,
    now: DateTime<Utc>,
) -> Outcome<Call> {
    let term = read_leadership(db, Some(&mut *s)).await?.0.term;
    let campaign = campaign_of(db, s, &before.call).await?;
    // A completed campaign starts no new attempts.
    let policy = campaign.as_ref().filter(|c| c.status != CampaignStatus::Completed).map(|c| &c.spec.retry);
    let applied = call::apply_transition(&before.call, t, term, before.last_seq + 1, policy, now)?;
    store_applied(db, s, &before, &applied).await
}

async fn transition(db: &MongoStore, s: &mut ClientSession, t: &Transition, now: DateTime<Utc>) -> Outcome<Call> {
    let before = load_call(db, s, &t.call_id).await?;
    apply_and_store(db, s, before, t, now).await
}

const LIVE_STATES: [CallState; 6] = [
    CallState::Leased,
    CallState::Dialing,
    CallState::Ringing,
    CallState::Answered,
    CallState::Attaching,
    CallState::InProgress,
];

fn states(list: &[CallState]) -> Vec<&'static str> {
    list.iter().map(|s| s.as_str()).collect()
}

fn query_filter(q: &CallQuery) -> Document {
    let mut filter = doc! {};
    if let Some(id) = &q.campaign_id {
        filter.insert("campaign_id", id);
    }
    if !q.states.is_empty() {
        filter.insert("state", doc! { "$in": states(&q.states) });
    }
    let mut created = doc! {};
    if let Some(t) = q.created_after {
        created.insert("$gte", date(t));
    }
    if let Some(t) = q.created_before {
        created.insert("$lt", date(t));
    }
    if !created.is_empty() {
        filter.insert("created_at", created);
    }
    if let Some((t, id)) = &q.after {
        filter.insert(
            "$or",
            vec![
                Bson::Document(doc! { "created_at": { "$lt": date(*t) } }),
                Bson::Document(doc! { "created_at": date(*t), "_id": { "$lt": id } }),
            ],
        );
    }
    filter
}

#[async_trait]
impl CallStore for MongoStore {
    async fn insert_call(&self, call: &Call, actor: &str) -> Result<()> {
        let new = [(call.clone(), call.created_event(actor))];
        self.transaction("insert call", (self, &new[..]), |s, &mut (db, new)| insert_calls(db, s, new).boxed()).await
    }

    async fn get_call(&self, id: &str) -> Result<Option<Call>> {
        Ok(find_by_id(&self.calls, id, None, "get call").await?.map(decode).transpose()?)
    }

    async fn list_calls(&self, q: &CallQuery) -> Result<Vec<Call>> {
        let newest_first = FindOptions::builder()
            .sort(doc! { "created_at": -1, "_id": -1 })
            .limit(i64::try_from(q.limit.max(1)).unwrap_or(i64::MAX))
            .build();
        let docs = find_all(&self.calls, query_filter(q), newest_first, None, "list calls").await?;
        docs.into_iter().map(decode).collect()
    }

    async fn list_call_events(&self, call_id: &str) -> Result<Vec<CallEvent>> {
        let oldest_first = FindOptions::builder().sort(doc! { "seq": 1 }).build();
        let docs =
            find_all(&self.call_events, doc! { "call_id": call_id }, oldest_first, None, "list call events").await?;
        docs.into_iter().map(decode).collect()
    }

    async fn transition_call(&self, t: &Transition, now: DateTime<Utc>) -> Result<Call> {
        self.transaction("transition call", (self, t, now), |s, &mut (db, t, now)| transition(db, s, t, now).boxed())
            .await
    }

    async fn lease_calls(&self, req: &LeaseRequest, now: DateTime<Utc>) -> Result<Vec<Call>> {
        let _turn = self.lease_turn.lock().await;
        self.transaction("lease calls", (self, req, now), |s, &mut (db, req, now)| {
            leasing::lease_batch(db, s, req, now).boxed()
        })
        .await
    }

    async fn reap_stale(&self, deadlines: &StaleDeadlines, now: DateTime<Utc>) -> Result<Vec<(CallState, u64)>> {
        leasing::reap_stale(self, deadlines, now).await
    }

    async fn call_totals(&self, now: DateTime<Utc>) -> Result<CallTotals> {
        let pipeline = [
            doc! { "$match": { "state": { "$in": states(&LIVE_STATES) } } },
            doc! { "$group": { "_id": { "state": "$state", "channel": "$channel" }, "n": { "$sum": 1 } } },
        ];
        let groups: Vec<Document> = self
            .calls
            .aggregate(pipeline)
            .await
            .map_err(during("count live calls"))?
            .try_collect()
            .await
            .map_err(during("count live calls"))?;
        let mut totals = CallTotals::default();
        for group in groups {
            let key = group.get_document("_id").map_err(|e| Error::internal(format!("read call totals: {e}")))?;
            let state = key.get_str("state").ok().and_then(CallState::parse);
            let state = state.ok_or_else(|| Error::internal(format!("read call totals: stored call state {key:?}")))?;
            let n = u64::try_from(int_field(&group, "n")?).unwrap_or(0);
            if state.is_conversation() {
                // `Channel` as serde writes it.
                if key.get_str("channel") == Ok("web") { totals.live_web += n } else { totals.live_phone += n }
            }
            if state.is_processing() {
                totals.processing += n;
            }
        }
        let running = find_all(
            &self.campaigns,
            doc! { "status": CampaignStatus::Running.as_str() },
            FindOptions::builder().projection(doc! { "_id": 1 }).build(),
            None,
            "find running campaigns",
        )
        .await?;
        let running: Vec<Bson> = running.into_iter().filter_map(|d| d.get("_id").cloned()).collect();
        if !running.is_empty() {
            let due = doc! { "state": CallState::Pending.as_str(), "due_at": { "$lte": date(now) }, "campaign_id": { "$in": running } };
            totals.pending_due = self.calls.count_documents(due).await.map_err(during("count pending calls"))?;
        }
        Ok(totals)
    }

    /// The call and its `call.recording_ready` feed entry, in one transaction.
    async fn set_recording(&self, call_id: &str, recording: &Recording, now: DateTime<Utc>) -> Result<Call> {
        let recording = bson::to_bson(recording).map_err(|e| Error::internal(format!("encode recording: {e}")))?;
        self.transaction("set recording", (self, call_id, recording, now), |s, (db, call_id, recording, now)| {
            async move {
                let updated = db
                    .calls
                    .find_one_and_update(
                        doc! { "_id": *call_id },
                        doc! { "$set": { "recording": recording.clone(), "updated_at": date(*now) }, "$inc": { "version": 1_i64 } },
                    )
                    .return_document(ReturnDocument::After)
                    .session(&mut *s)
                    .await
                    .map_err(during("set recording"))?;
                let call: Call = decode(updated.ok_or_else(|| Error::not_found("call", call_id))?)?;
                feed::append(db, s, vec![FeedEvent::recording_ready(&call, *now)]).await?;
                Ok(call)
            }
            .boxed()
        })
        .await
    }
}
