use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params, params_from_iter, types::Value};
use vox_domain::call::{
    self, Applied, Call, CallEvent, CallState, Channel, Direction, Recording, StaleDeadlines, Transition,
};
use vox_domain::campaign::{Campaign, CampaignStatus};
use vox_domain::feed::FeedEvent;
use vox_domain::{Error, Result};
use vox_store::{CallQuery, CallStore, CallTotals, LeaseRequest};

use crate::db::{SqliteStore, doc, docs, is_unique_violation, ms, sql, to_doc};
use crate::feed;
use crate::leadership::read_leadership;

fn first_number(c: &Call) -> Option<&str> {
    (c.direction == Direction::Outbound && c.attempt == 1 && c.campaign_id.is_some()).then_some(c.to_number.as_str())
}

fn channel_str(c: Channel) -> &'static str {
    match c {
        Channel::Phone => "phone",
        Channel::Web => "web",
    }
}

/// Inserts a call and its first event. AlreadyExists for a known id or a number the
/// campaign already has.
pub(crate) fn insert_call_tx(tx: &Transaction<'_>, c: &Call, event: &CallEvent) -> Result<()> {
    // Cached: an upload inserts up to 200,000 calls in one transaction.
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO calls (id, campaign_id, state, channel, due_ms, created_ms, first_number, version, doc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(sql("prepare insert call"))?;
    insert
        .execute(params![
            c.id,
            c.campaign_id,
            c.state.as_str(),
            channel_str(c.channel),
            ms(c.due_at),
            ms(c.created_at),
            first_number(c),
            c.version as i64,
            to_doc(c)?
        ])
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::already_exists(format!("call {} or number {} already exists in its campaign", c.id, c.to_number))
            } else {
                sql("insert call")(e)
            }
        })?;
    insert_event(tx, c, event)
}

/// Appends `e` to `call`'s timeline (the call as it stands after the move) and, when the
/// move is one integrations hear about, to the activity feed.
fn insert_event(tx: &Transaction<'_>, call: &Call, e: &CallEvent) -> Result<()> {
    tx.prepare_cached("INSERT INTO call_events (call_id, seq, doc) VALUES (?1, ?2, ?3)")
        .map_err(sql("prepare append call event"))?
        .execute(params![call.id, e.seq, to_doc(e)?])
        .map_err(sql("append call event"))?;
    if let Some(entry) = FeedEvent::for_call_change(call, e) {
        feed::append_tx(tx, &entry)?;
    }
    Ok(())
}

fn next_seq(tx: &Transaction<'_>, call_id: &str) -> Result<u32> {
    let max: Option<u32> = tx
        .query_row("SELECT MAX(seq) FROM call_events WHERE call_id = ?1", [call_id], |r| r.get(0))
        .map_err(sql("read timeline"))?;
    Ok(max.unwrap_or(0) + 1)
}

pub(crate) fn load_call(tx: &Transaction<'_>, id: &str) -> Result<Call> {
    doc(tx, "SELECT doc FROM calls WHERE id = ?1", [id])?.ok_or_else(|| Error::not_found("call", id))
}

/// Stores an applied change: the call (only if still at the version it was read at), its
/// event and its retry.
fn store_applied(tx: &Transaction<'_>, before: &Call, a: &Applied) -> Result<()> {
    let c = &a.call;
    let n = tx
        .execute(
            "UPDATE calls SET state = ?2, due_ms = ?3, version = ?4, doc = ?5 WHERE id = ?1 AND version = ?6",
            params![c.id, c.state.as_str(), ms(c.due_at), c.version as i64, to_doc(c)?, before.version as i64],
        )
        .map_err(sql("update call"))?;
    if n == 0 {
        return Err(Error::precondition(format!("call {} changed meanwhile; read it again", c.id)));
    }
    insert_event(tx, c, &a.event)?;
    if let Some(retry) = &a.retry {
        let mut created = retry.created_event("system");
        created.reason = format!("retry of {}", c.id);
        insert_call_tx(tx, retry, &created)?;
    }
    Ok(())
}

/// Applies one transition inside `tx` with the current term and the campaign's policy.
pub(crate) fn transition_tx(tx: &Transaction<'_>, t: &Transition, now: DateTime<Utc>) -> Result<Call> {
    let before = load_call(tx, &t.call_id)?;
    let term = read_leadership(tx)?.term;
    let campaign: Option<Campaign> = match &before.campaign_id {
        Some(id) => doc(tx, "SELECT doc FROM campaigns WHERE id = ?1", [id])?,
        None => None,
    };
    // A completed campaign starts no new attempts.
    let policy = campaign.as_ref().filter(|c| c.status != CampaignStatus::Completed).map(|c| &c.spec.retry);
    let applied = call::apply_transition(&before, t, term, next_seq(tx, &before.id)?, policy, now)?;
    store_applied(tx, &before, &applied)?;
    Ok(applied.call)
}

/// Campaign `?1`'s first `?3` pending calls due by `?2` (epoch ms), in lease order.
pub(crate) const DUE_CALL_IDS: &str =
    "SELECT id FROM calls WHERE campaign_id = ?1 AND state = 'pending' AND due_ms <= ?2
     ORDER BY due_ms, created_ms, id LIMIT ?3";

/// The ids of `campaign_id`'s first `max` pending calls due by `now`, in lease order
/// (due, then created, then id). Read from the `calls_due_in_order` index alone, which
/// holds that order: no pending call is sorted and no document is read but those leased.
fn due_call_ids(tx: &Transaction<'_>, campaign_id: &str, now: DateTime<Utc>, max: usize) -> Result<Vec<String>> {
    let mut stmt = tx.prepare_cached(DUE_CALL_IDS).map_err(sql("prepare due calls"))?;
    let rows = stmt
        .query_map(params![campaign_id, ms(now), max as i64], |r| r.get::<_, String>(0))
        .map_err(sql("find due calls"))?;
    rows.collect::<rusqlite::Result<Vec<String>>>().map_err(sql("read due call id"))
}

const LIVE_STATES: &str = "'leased', 'dialing', 'ringing', 'answered', 'attaching', 'in_progress'";

#[async_trait]
impl CallStore for SqliteStore {
    async fn insert_call(&self, call: &Call, actor: &str) -> Result<()> {
        let (c, actor) = (call.clone(), actor.to_string());
        self.tx(move |tx| insert_call_tx(tx, &c, &c.created_event(&actor))).await
    }

    async fn get_call(&self, id: &str) -> Result<Option<Call>> {
        let id = id.to_string();
        self.run(move |c| doc(c, "SELECT doc FROM calls WHERE id = ?1", [id])).await
    }

    async fn list_calls(&self, q: &CallQuery) -> Result<Vec<Call>> {
        let q = q.clone();
        self.run(move |c| {
            let mut sql_text = String::from("SELECT doc FROM calls WHERE 1 = 1");
            let mut args: Vec<Value> = Vec::new();
            if let Some(id) = &q.campaign_id {
                args.push(Value::Text(id.clone()));
                sql_text += &format!(" AND campaign_id = ?{}", args.len());
            }
            if !q.states.is_empty() {
                let mut marks = Vec::new();
                for s in &q.states {
                    args.push(Value::Text(s.as_str().into()));
                    marks.push(format!("?{}", args.len()));
                }
                sql_text += &format!(" AND state IN ({})", marks.join(", "));
            }
            if let Some(t) = q.created_after {
                args.push(Value::Integer(ms(t)));
                sql_text += &format!(" AND created_ms >= ?{}", args.len());
            }
            if let Some(t) = q.created_before {
                args.push(Value::Integer(ms(t)));
                sql_text += &format!(" AND created_ms < ?{}", args.len());
            }
            if let Some((t, id)) = &q.after {
                args.push(Value::Integer(ms(*t)));
                let t_arg = args.len();
                args.push(Value::Text(id.clone()));
                sql_text +=
                    &format!(" AND (created_ms < ?{t_arg} OR (created_ms = ?{t_arg} AND id < ?{}))", args.len());
            }
            args.push(Value::Integer(q.limit.max(1) as i64));
            sql_text += &format!(" ORDER BY created_ms DESC, id DESC LIMIT ?{}", args.len());
            docs(c, &sql_text, params_from_iter(args))
        })
        .await
    }

    async fn list_call_events(&self, call_id: &str) -> Result<Vec<CallEvent>> {
        let id = call_id.to_string();
        self.run(move |c| docs(c, "SELECT doc FROM call_events WHERE call_id = ?1 ORDER BY seq", [id])).await
    }

    async fn transition_call(&self, t: &Transition, now: DateTime<Utc>) -> Result<Call> {
        let t = t.clone();
        self.tx(move |tx| transition_tx(tx, &t, now)).await
    }

    async fn lease_calls(&self, req: &LeaseRequest, now: DateTime<Utc>) -> Result<Vec<Call>> {
        let req = req.clone();
        // A dialler leases from several loops at once: their leases share a commit.
        self.tx_grouped(move |tx| {
            read_leadership(tx)?.fence(&req.owner, req.fencing_term, now)?;
            let campaign: Campaign = doc(tx, "SELECT doc FROM campaigns WHERE id = ?1", [&req.campaign_id])?
                .ok_or_else(|| Error::not_found("campaign", &req.campaign_id))?;
            if campaign.status != CampaignStatus::Running {
                return Err(Error::precondition(format!(
                    "campaign {} is {}; only running campaigns lease calls",
                    campaign.id,
                    campaign.status.as_str()
                )));
            }
            let due = due_call_ids(tx, &req.campaign_id, now, req.max)?;
            let mut leased = Vec::with_capacity(due.len());
            for id in due {
                let c = load_call(tx, &id)?;
                let applied = call::apply_lease(&c, &req.owner, req.fencing_term, req.ttl, next_seq(tx, &c.id)?, now)?;
                store_applied(tx, &c, &applied)?;
                leased.push(applied.call);
            }
            Ok(leased)
        })
        .await
    }

    async fn reap_stale(&self, deadlines: &StaleDeadlines, now: DateTime<Utc>) -> Result<Vec<(CallState, u64)>> {
        let d = *deadlines;
        self.tx(move |tx| {
            let live: Vec<Call> = docs(tx, &format!("SELECT doc FROM calls WHERE state IN ({LIVE_STATES})"), [])?;
            let mut reaped: BTreeMap<CallState, u64> = BTreeMap::new();
            for c in live {
                let Some((to, reason)) = d.reap(&c, now) else { continue };
                let t = Transition {
                    call_id: c.id.clone(),
                    to: Some(to),
                    actor: "system".into(),
                    reason,
                    ..Default::default()
                };
                transition_tx(tx, &t, now)?;
                *reaped.entry(c.state).or_default() += 1;
            }
            Ok(reaped.into_iter().collect())
        })
        .await
    }

    async fn set_recording(&self, call_id: &str, recording: &Recording, now: DateTime<Utc>) -> Result<Call> {
        let (id, rec) = (call_id.to_string(), recording.clone());
        self.tx(move |tx| {
            let mut c = load_call(tx, &id)?;
            let before = c.version;
            c.recording = Some(rec);
            c.updated_at = now;
            c.version += 1;
            tx.execute(
                "UPDATE calls SET version = ?2, doc = ?3 WHERE id = ?1 AND version = ?4",
                params![c.id, c.version as i64, to_doc(&c)?, before as i64],
            )
            .map_err(sql("set recording"))?;
            feed::append_tx(tx, &FeedEvent::recording_ready(&c, now))?;
            Ok(c)
        })
        .await
    }

    async fn call_totals(&self, now: DateTime<Utc>) -> Result<CallTotals> {
        self.run(move |c| {
            let mut totals = CallTotals::default();
            let mut stmt = c
                .prepare_cached("SELECT state, channel, COUNT(*) FROM calls WHERE state IN ('leased', 'dialing', 'ringing', 'answered', 'attaching', 'in_progress') GROUP BY state, channel")
                .map_err(sql("prepare totals"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))
                .map_err(sql("count live calls"))?;
            for row in rows {
                let (state, channel, n) = row.map_err(sql("read totals"))?;
                let state = CallState::parse(&state).ok_or_else(|| Error::internal(format!("stored call state {state:?}")))?;
                let n = n as u64;
                if state.is_conversation() {
                    if channel == "web" { totals.live_web += n } else { totals.live_phone += n }
                }
                if state.is_processing() {
                    totals.processing += n;
                }
            }
            totals.pending_due = c
                .query_row(
                    "SELECT COUNT(*) FROM calls JOIN campaigns ON campaigns.id = calls.campaign_id
                     WHERE calls.state = 'pending' AND calls.due_ms <= ?1 AND campaigns.status = 'running'",
                    [ms(now)],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(sql("count pending calls"))? as u64;
            Ok(totals)
        })
        .await
    }
}
