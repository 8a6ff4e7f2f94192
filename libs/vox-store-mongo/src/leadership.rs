//! The dialler's leadership lease: one document, changed by compare-and-set on its
//! `revision`, so no transaction is needed and terms never repeat.
//!
//! ```text
//! { _id: "dialler", holder_id, term, expires_at, revision, lease_batches }
//! ```
//! `lease_batches` is bumped by every lease batch (see `leasing`), which is what makes a
//! batch conflict with a concurrent leadership change; it never moves the revision.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use mongodb::ClientSession;
use mongodb::bson::{Bson, Document, doc};
use vox_domain::{Error, Result};
use vox_store::{Leadership, LeadershipStore};

use crate::codec::{date, instant, int, int_field, to_millis};
use crate::db::{MongoStore, Outcome, driver_error, find_by_id, is_duplicate_key};

pub(crate) const NAME: &str = "dialler";

/// How many times a leadership change is tried while others change it concurrently.
const CAS_ATTEMPTS: u32 = 32;

fn from_doc(doc: &Document) -> Result<(Leadership, i64)> {
    let holder_id = match doc.get("holder_id") {
        Some(Bson::String(h)) => Some(h.clone()),
        _ => None,
    };
    let expires_at = match doc.get("expires_at") {
        Some(Bson::DateTime(d)) => Some(instant(*d)),
        _ => None,
    };
    let term = u64::try_from(int_field(doc, "term")?).unwrap_or(0);
    Ok((Leadership { holder_id, term, expires_at }, int_field(doc, "revision")?))
}

/// The current lease and the revision it was read at (0 when there never was one).
pub(crate) async fn read_leadership(db: &MongoStore, s: Option<&mut ClientSession>) -> Outcome<(Leadership, i64)> {
    match find_by_id(&db.leadership, NAME, s, "read leadership").await? {
        Some(doc) => Ok(from_doc(&doc)?),
        None => Ok((Leadership::default(), 0)),
    }
}

impl MongoStore {
    /// Replaces the lease read at `revision` with `next`. False when it changed meanwhile.
    async fn swap_leadership(&self, revision: i64, next: &Leadership) -> Result<bool> {
        let set = doc! { "$set": {
            "holder_id": next.holder_id.clone().map_or(Bson::Null, Bson::String),
            "term": int(next.term),
            "expires_at": next.expires_at.map_or(Bson::Null, date),
            "revision": revision + 1,
        } };
        // Upsert covers the first lease ever; when the document exists at another revision
        // the upsert collides on `_id`, which is the same news as no match.
        match self.leadership.update_one(doc! { "_id": NAME, "revision": revision }, set).upsert(true).await {
            Ok(r) => Ok(r.matched_count == 1 || r.upserted_id.is_some()),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(driver_error("write leadership", &e)),
        }
    }

    /// Reads the lease, lets `decide` say what it becomes (None: leave it), and writes that
    /// if nobody changed it meanwhile; tries again otherwise.
    async fn change_leadership(
        &self,
        op: &str,
        decide: impl Fn(Leadership) -> std::result::Result<Leadership, Leadership>,
    ) -> Result<Leadership> {
        for _ in 0..CAS_ATTEMPTS {
            let (current, revision) = read_leadership(self, None).await?;
            let next = match decide(current) {
                Ok(next) => next,
                Err(unchanged) => return Ok(unchanged),
            };
            if self.swap_leadership(revision, &next).await? {
                return Ok(next);
            }
        }
        Err(Error::unavailable(format!("mongodb: {op}: the lease kept changing meanwhile; try again")))
    }
}

#[async_trait]
impl LeadershipStore for MongoStore {
    async fn acquire_leadership(&self, holder: &str, ttl: Duration, now: DateTime<Utc>) -> Result<Leadership> {
        let expires_at = Some(to_millis(now + ttl));
        self.change_leadership("acquire leadership", |current| {
            if current.held_by(holder, now) {
                return Ok(Leadership { expires_at, ..current });
            }
            if current.holder_id.is_some() && current.expires_at.is_some_and(|e| e > now) {
                return Err(current);
            }
            Ok(Leadership { holder_id: Some(holder.to_string()), term: current.term + 1, expires_at })
        })
        .await
    }

    async fn release_leadership(&self, holder: &str, term: u64, _now: DateTime<Utc>) -> Result<Leadership> {
        self.change_leadership("release leadership", |current| {
            if current.holder_id.as_deref() != Some(holder) || current.term != term {
                return Err(current);
            }
            Ok(Leadership { holder_id: None, term: current.term, expires_at: None })
        })
        .await
    }

    async fn leadership(&self) -> Result<Leadership> {
        Ok(read_leadership(self, None).await?.0)
    }
}
