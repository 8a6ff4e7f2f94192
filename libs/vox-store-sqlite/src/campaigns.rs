use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};
use vox_domain::call::{Call, CallState, Transition};
use vox_domain::campaign::{Campaign, CampaignCounts, CampaignSpec, CampaignStatus};
use vox_domain::feed::FeedEvent;
use vox_domain::phone::E164;
use vox_domain::{Error, Result};
use vox_store::CampaignStore;

use crate::calls::{insert_call_tx, transition_tx};
use crate::db::{SqliteStore, doc, docs, ms, sql, to_doc};
use crate::feed;

fn load(tx: &Transaction<'_>, id: &str) -> Result<Campaign> {
    doc(tx, "SELECT doc FROM campaigns WHERE id = ?1", [id])?.ok_or_else(|| Error::not_found("campaign", id))
}

fn write(tx: &Transaction<'_>, c: &Campaign) -> Result<()> {
    tx.execute(
        "UPDATE campaigns SET status = ?2, region_id = ?3, doc = ?4 WHERE id = ?1",
        params![c.id, c.status.as_str(), c.spec.region_id, to_doc(c)?],
    )
    .map_err(sql("update campaign"))?;
    Ok(())
}

#[async_trait]
impl CampaignStore for SqliteStore {
    async fn insert_campaign(&self, campaign: &Campaign) -> Result<()> {
        let c = campaign.clone();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO campaigns (id, status, region_id, created_ms, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![c.id, c.status.as_str(), c.spec.region_id, ms(c.created_at), to_doc(&c)?],
            )
            .map_err(sql("insert campaign"))?;
            Ok(())
        })
        .await
    }

    async fn get_campaign(&self, id: &str) -> Result<Option<Campaign>> {
        let id = id.to_string();
        self.run(move |c| doc(c, "SELECT doc FROM campaigns WHERE id = ?1", [id])).await
    }

    async fn list_campaigns(&self, status: Option<CampaignStatus>) -> Result<Vec<Campaign>> {
        let status = status.map(|s| s.as_str().to_string());
        self.run(move |c| {
            docs(c, "SELECT doc FROM campaigns WHERE (?1 IS NULL OR status = ?1) ORDER BY created_ms, rowid", [status])
        })
        .await
    }

    async fn update_campaign_spec(&self, id: &str, spec: &CampaignSpec, now: DateTime<Utc>) -> Result<Campaign> {
        let (id, spec) = (id.to_string(), spec.clone());
        self.tx(move |tx| {
            let mut c = load(tx, &id)?;
            if c.status == CampaignStatus::Completed {
                return Err(Error::precondition(format!(
                    "campaign {id} is completed; completed campaigns cannot change"
                )));
            }
            c.spec = spec;
            c.updated_at = now;
            write(tx, &c)?;
            Ok(c)
        })
        .await
    }

    async fn set_campaign_status(
        &self,
        id: &str,
        to: CampaignStatus,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Campaign> {
        let (id, actor) = (id.to_string(), actor.to_string());
        self.tx(move |tx| {
            let mut c = load(tx, &id)?;
            if !CampaignStatus::allowed_from(to).contains(&c.status) {
                return Err(Error::precondition(format!(
                    "campaign {id} is {}; it cannot become {}",
                    c.status.as_str(),
                    to.as_str()
                )));
            }
            let from = c.status;
            c.status = to;
            c.updated_at = now;
            write(tx, &c)?;
            if from != to {
                feed::append_tx(tx, &FeedEvent::campaign_status(&id, from, to, &actor, now))?;
            }
            if to == CampaignStatus::Completed {
                let pending: Vec<Call> =
                    docs(tx, "SELECT doc FROM calls WHERE campaign_id = ?1 AND state = 'pending'", [&id])?;
                for call in pending {
                    let t = Transition {
                        call_id: call.id,
                        to: Some(CallState::Canceled),
                        actor: actor.clone(),
                        reason: "campaign_completed".into(),
                        ..Default::default()
                    };
                    transition_tx(tx, &t, now)?;
                }
            }
            Ok(c)
        })
        .await
    }

    async fn campaign_counts(&self, id: &str) -> Result<CampaignCounts> {
        let id = id.to_string();
        self.run(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT state, COUNT(*) FROM calls WHERE campaign_id = ?1 GROUP BY state")
                .map_err(sql("prepare counts"))?;
            let rows = stmt
                .query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql("count calls"))?;
            let mut counts = CampaignCounts::default();
            for row in rows {
                let (state, n) = row.map_err(sql("read counts"))?;
                let state =
                    CallState::parse(&state).ok_or_else(|| Error::internal(format!("stored call state {state:?}")))?;
                counts.add(state, n as u64);
            }
            Ok(counts)
        })
        .await
    }

    async fn add_numbers(&self, campaign_id: &str, numbers: &[(u32, E164)], now: DateTime<Utc>) -> Result<Vec<u32>> {
        let (id, numbers) = (campaign_id.to_string(), numbers.to_vec());
        self.tx(move |tx| {
            let c = load(tx, &id)?;
            if c.status == CampaignStatus::Completed {
                return Err(Error::precondition(format!("campaign {id} is completed; it takes no more numbers")));
            }
            let mut exists = tx
                .prepare_cached("SELECT 1 FROM calls WHERE campaign_id = ?1 AND first_number = ?2")
                .map_err(sql("prepare duplicate check"))?;
            let mut already = Vec::new();
            for (row, number) in numbers {
                if exists.exists(params![id, number.as_str()]).map_err(sql("check duplicate"))? {
                    already.push(row);
                    continue;
                }
                let call = Call::outbound(&id, &c.spec.region_id, number.as_str(), c.spec.caller_id.as_str(), now);
                insert_call_tx(tx, &call, &call.created_event("system"))?;
            }
            Ok(already)
        })
        .await
    }
}
