//! The abandon ledger's reads (`vox_store::AbandonLedgerStore`): one aggregation per
//! period over the campaign's calls answered in it (index `call_by_answer`), and the
//! abandoned ones in pages. `answered_at` and `ended_at` are BSON dates, so the server
//! compares them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::FindOptions;
use vox_domain::Result;
use vox_domain::call::{Call, CallState};
use vox_store::{AbandonLedgerStore, AnswerTally};

use crate::codec::{date, decode, int_field};
use crate::db::{MongoStore, during, find_all};

#[async_trait]
impl AbandonLedgerStore for MongoStore {
    async fn answer_tally(&self, campaign_id: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<AnswerTally> {
        let period = doc! { "$gte": date(from), "$lt": date(to) };
        let machine = CallState::Machine.as_str();
        let abandoned = CallState::Abandoned.as_str();
        let live = doc! { "campaign_id": campaign_id, "answered_at": period.clone(), "state": { "$ne": machine } };
        let pipeline = [
            doc! { "$match": live },
            doc! { "$group": {
                "_id": Bson::Null,
                "live": { "$sum": 1 },
                "abandons": { "$sum": { "$cond": [{ "$eq": ["$state", abandoned] }, 1, 0] } },
            } },
        ];
        let groups: Vec<Document> = self
            .calls
            .aggregate(pipeline)
            .await
            .map_err(during("count live answers"))?
            .try_collect()
            .await
            .map_err(during("count live answers"))?;
        let mut tally = AnswerTally::default();
        if let Some(g) = groups.first() {
            tally.live_answers = u64::try_from(int_field(g, "live")?).unwrap_or(0);
            tally.abandons = u64::try_from(int_field(g, "abandons")?).unwrap_or(0);
        }
        tally.machine_answers = self
            .calls
            .count_documents(doc! { "campaign_id": campaign_id, "state": machine, "ended_at": period })
            .await
            .map_err(during("count machine answers"))?;
        Ok(tally)
    }

    async fn abandoned_calls(
        &self,
        campaign_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<(DateTime<Utc>, String)>,
        limit: usize,
    ) -> Result<Vec<Call>> {
        let mut filter = doc! {
            "campaign_id": campaign_id,
            "state": CallState::Abandoned.as_str(),
            "answered_at": { "$gte": date(from), "$lt": date(to) },
        };
        if let Some((t, id)) = after {
            filter.insert(
                "$or",
                vec![
                    Bson::Document(doc! { "answered_at": { "$gt": date(t) } }),
                    Bson::Document(doc! { "answered_at": date(t), "_id": { "$gt": id } }),
                ],
            );
        }
        let oldest_first = FindOptions::builder()
            .sort(doc! { "answered_at": 1, "_id": 1 })
            .limit(i64::try_from(limit.max(1)).unwrap_or(i64::MAX))
            .build();
        let docs = find_all(&self.calls, filter, oldest_first, None, "list abandoned calls").await?;
        docs.into_iter().map(decode).collect()
    }
}
