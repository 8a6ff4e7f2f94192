use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use vox_domain::Result;
use vox_store::{Leadership, LeadershipStore};

use crate::db::{SqliteStore, from_ms, ms, sql};

const NAME: &str = "dialler";

pub(crate) fn read_leadership(c: &Connection) -> Result<Leadership> {
    let row: Option<(Option<String>, i64, Option<i64>)> = c
        .query_row("SELECT holder, term, expires_ms FROM leadership WHERE name = ?1", [NAME], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
        .map_err(sql("read leadership"))?;
    Ok(match row {
        Some((holder_id, term, expires)) => {
            Leadership { holder_id, term: term as u64, expires_at: expires.map(from_ms) }
        }
        None => Leadership::default(),
    })
}

fn write(c: &Connection, l: &Leadership) -> Result<()> {
    c.execute(
        "INSERT INTO leadership (name, holder, term, expires_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, term = excluded.term, expires_ms = excluded.expires_ms",
        params![NAME, l.holder_id, l.term as i64, l.expires_at.map(ms)],
    )
    .map_err(sql("write leadership"))?;
    Ok(())
}

#[async_trait]
impl LeadershipStore for SqliteStore {
    async fn acquire_leadership(&self, holder: &str, ttl: Duration, now: DateTime<Utc>) -> Result<Leadership> {
        let holder = holder.to_string();
        self.tx(move |tx| {
            let current = read_leadership(tx)?;
            let live = current.expires_at.is_some_and(|e| e > now) && current.holder_id.is_some();
            let next = if current.held_by(&holder, now) {
                Leadership { expires_at: Some(now + ttl), ..current }
            } else if live {
                return Ok(current);
            } else {
                Leadership { holder_id: Some(holder), term: current.term + 1, expires_at: Some(now + ttl) }
            };
            write(tx, &next)?;
            Ok(next)
        })
        .await
    }

    async fn release_leadership(&self, holder: &str, term: u64, _now: DateTime<Utc>) -> Result<Leadership> {
        let holder = holder.to_string();
        self.tx(move |tx| {
            let current = read_leadership(tx)?;
            if current.holder_id.as_deref() != Some(holder.as_str()) || current.term != term {
                return Ok(current);
            }
            let next = Leadership { holder_id: None, term: current.term, expires_at: None };
            write(tx, &next)?;
            Ok(next)
        })
        .await
    }

    async fn leadership(&self) -> Result<Leadership> {
        self.run(|c| read_leadership(c)).await
    }
}
