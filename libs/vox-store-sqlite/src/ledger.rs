//! The abandon ledger's reads (`vox_store::AbandonLedgerStore`). Calls keep `answered_at`
//! and `ended_at` only in their JSON document, so the period is matched on those instants
//! turned into epoch milliseconds by the same expression the `calls_by_answer` index is
//! built on (SQLite's `julianday` reads chrono's RFC 3339 with any fraction and `Z`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;
use vox_domain::Result;
use vox_domain::call::Call;
use vox_store::{AbandonLedgerStore, AnswerTally};

use crate::db::{SqliteStore, docs, ms, sql};

/// `answered_at` in epoch milliseconds; NULL when the call was never answered. Keep it
/// identical to the expression of the `calls_by_answer` index, or the index goes unused.
pub(crate) const ANSWERED_MS: &str =
    "CAST(ROUND((julianday(json_extract(doc, '$.answered_at')) - 2440587.5) * 86400000.0) AS INTEGER)";
const ENDED_MS: &str = "CAST(ROUND((julianday(json_extract(doc, '$.ended_at')) - 2440587.5) * 86400000.0) AS INTEGER)";

#[async_trait]
impl AbandonLedgerStore for SqliteStore {
    async fn answer_tally(&self, campaign_id: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<AnswerTally> {
        let campaign_id = campaign_id.to_string();
        self.run(move |c| {
            let (live, abandons): (i64, Option<i64>) = c
                .query_row(
                    &format!(
                        "SELECT COUNT(*), SUM(state = 'abandoned') FROM calls
                         WHERE campaign_id = ?1 AND {ANSWERED_MS} >= ?2 AND {ANSWERED_MS} < ?3
                           AND state <> 'machine'"
                    ),
                    params![campaign_id, ms(from), ms(to)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(sql("count live answers"))?;
            let machines: i64 = c
                .query_row(
                    &format!(
                        "SELECT COUNT(*) FROM calls
                         WHERE campaign_id = ?1 AND state = 'machine' AND {ENDED_MS} >= ?2 AND {ENDED_MS} < ?3"
                    ),
                    params![campaign_id, ms(from), ms(to)],
                    |r| r.get(0),
                )
                .map_err(sql("count machine answers"))?;
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            Ok(AnswerTally {
                live_answers: count(live),
                abandons: count(abandons.unwrap_or(0)),
                machine_answers: count(machines),
            })
        })
        .await
    }

    async fn abandoned_calls(
        &self,
        campaign_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<(DateTime<Utc>, String)>,
        limit: usize,
    ) -> Result<Vec<Call>> {
        let campaign_id = campaign_id.to_string();
        let (after_ms, after_id) = after.map_or((i64::MIN, String::new()), |(t, id)| (ms(t), id));
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        self.run(move |c| {
            docs(
                c,
                &format!(
                    "SELECT doc FROM calls
                     WHERE campaign_id = ?1 AND state = 'abandoned' AND {ANSWERED_MS} >= ?2 AND {ANSWERED_MS} < ?3
                       AND ({ANSWERED_MS} > ?4 OR ({ANSWERED_MS} = ?4 AND id > ?5))
                     ORDER BY {ANSWERED_MS}, id LIMIT ?6"
                ),
                params![campaign_id, ms(from), ms(to), after_ms, after_id, limit],
            )
        })
        .await
    }
}
