//! Large number uploads, all or nothing, without one huge transaction.
//!
//! `add_numbers` promises all or nothing. Up to [`CHUNK`] numbers that is one
//! transaction. Beyond it one transaction will not do: 200,000 numbers are 400,000
//! documents (calls and their first events), and MongoDB refuses a transaction whose
//! writes do not fit in its cache (`TransactionTooLargeForCache`) and ends any that runs
//! over 60 s. So a large upload is written ahead:
//!
//! 1. **Commit point.** After the campaign is checked (it exists and takes numbers), the
//!    whole upload is written as one document in `number_imports`: every number and its
//!    row (200,000 numbers are about 6 MB, under the 16 MB document limit). Nothing
//!    refuses the upload after this point, except the campaign being completed meanwhile.
//! 2. **Apply.** The numbers are added [`CHUNK`] at a time, each chunk one transaction
//!    that also moves the import's `done` mark, on the condition that nobody else moved
//!    it. A chunk adds only numbers the campaign does not have yet, so running one twice
//!    (after a crash between commit and mark) adds nothing twice.
//! 3. **Done.** The import document is deleted and the caller gets the rows that were
//!    already in the campaign.
//!
//! An import whose voxbridge stopped (a crash, a database outage longer than the caller
//! waited) is finished by [`finish_idle_imports`] once it has been still for [`IDLE`]:
//! when any voxbridge on the database starts, and before any later upload. Until then
//! its first chunks are pending calls and the rest are not yet: an upload that was
//! committed always lands whole, only later.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use mongodb::ClientSession;
use mongodb::bson::{self, doc};
use serde::{Deserialize, Serialize};
use vox_domain::campaign::CampaignStatus;
use vox_domain::phone::E164;
use vox_domain::{Error, ErrorCode, Result, ids};

use crate::campaigns::{add, load};
use crate::db::{MongoStore, Outcome, during, find_all};

/// Numbers per transaction: 10,000 documents, a few MB, well inside any server's cache.
pub const CHUNK: usize = 5_000;
/// How long an import may sit untouched (no chunk applied) before another voxbridge, or
/// this one, takes it over. A chunk takes seconds even on a slow server.
pub const IDLE: Duration = Duration::from_secs(120);

/// The stored upload: the commit point and the progress mark.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Import {
    #[serde(rename = "_id")]
    id: String,
    campaign_id: String,
    /// When the upload was made: the calls' creation time.
    at: bson::DateTime,
    rows: Vec<i64>,
    numbers: Vec<String>,
    /// How many numbers (from the start) are added.
    done: i64,
    /// Rows whose number the campaign already had.
    already: Vec<i64>,
    /// Wall-clock time of the last progress, for [`IDLE`].
    touched: bson::DateTime,
}

fn wall_now() -> bson::DateTime {
    bson::DateTime::now()
}

/// Adds `numbers` to the campaign all or nothing; the rows already there come back.
pub(crate) async fn add_numbers(
    db: &MongoStore,
    campaign_id: &str,
    numbers: &[(u32, E164)],
    now: DateTime<Utc>,
) -> Result<Vec<u32>> {
    spawn_finish_idle_imports(db);
    if numbers.len() <= CHUNK {
        return db
            .transaction("add numbers", (db, campaign_id, numbers, now), |s, &mut (db, id, numbers, now)| {
                add(db, s, id, numbers, now).boxed()
            })
            .await;
    }
    let campaign = load(db, None, campaign_id).await?;
    if campaign.status == CampaignStatus::Completed {
        return Err(Error::precondition(format!("campaign {campaign_id} is completed; it takes no more numbers")));
    }
    let import = Import {
        id: format!("im_{}", ids::random_token(16)),
        campaign_id: campaign_id.to_string(),
        at: bson::DateTime::from_millis(now.timestamp_millis()),
        rows: numbers.iter().map(|(row, _)| i64::from(*row)).collect(),
        numbers: numbers.iter().map(|(_, n)| n.as_str().to_string()).collect(),
        done: 0,
        already: Vec::new(),
        touched: wall_now(),
    };
    let document = bson::to_document(&import).map_err(|e| Error::internal(format!("encode number import: {e}")))?;
    db.number_imports.insert_one(document).await.map_err(|e| Error::from(during("commit number import")(e)))?;
    apply(db, import).await
}

/// Adds what is left of `import`, chunk by chunk, then deletes it.
async fn apply(db: &MongoStore, mut import: Import) -> Result<Vec<u32>> {
    let total = import.numbers.len();
    let numbers: Vec<(u32, E164)> = import
        .rows
        .iter()
        .zip(&import.numbers)
        .map(|(row, n)| Ok((u32::try_from(*row).unwrap_or(0), E164::parse(n).map_err(Error::internal)?)))
        .collect::<Result<_>>()?;
    let now = crate::codec::instant(import.at);
    while (import.done as usize) < total {
        let from = import.done as usize;
        let to = (from + CHUNK).min(total);
        let chunk = &numbers[from..to];
        let ctx = (db, &import, chunk, now, to);
        let applied = db
            .transaction("add numbers", ctx, |s, &mut (db, import, chunk, now, to)| {
                apply_chunk(db, s, import, chunk, now, to).boxed()
            })
            .await;
        match applied {
            Ok(found) => {
                import.already.extend(found.iter().map(|r| i64::from(*r)));
                import.done = to as i64;
            }
            Err(e) if e.code == ErrorCode::FailedPrecondition && e.message.starts_with(TAKEN_OVER) => {
                return Err(Error::unavailable(format!(
                    "mongodb: add numbers: another voxbridge took over this upload ({} of {total} numbers were \
                     added); it adds the rest",
                    import.done
                )));
            }
            Err(e) if e.code == ErrorCode::FailedPrecondition || e.code == ErrorCode::NotFound => {
                forget(db, &import.id).await;
                return Err(Error::new(
                    e.code,
                    format!(
                        "{}; {} of {total} numbers were added before that, the rest were not",
                        e.message, import.done
                    ),
                ));
            }
            Err(e) => {
                return Err(Error::new(
                    e.code,
                    format!(
                        "{}; {} of {total} numbers are added, and the rest are added once the database answers \
                         again (the upload is recorded as {})",
                        e.message, import.done, import.id
                    ),
                ));
            }
        }
    }
    forget(db, &import.id).await;
    Ok(import.already.iter().map(|r| u32::try_from(*r).unwrap_or(0)).collect())
}

const TAKEN_OVER: &str = "number import taken over";

/// One chunk and the mark after it, in one transaction: the mark moves only from where
/// this process saw it, so two voxbridges never both apply a chunk.
async fn apply_chunk(
    db: &MongoStore,
    s: &mut ClientSession,
    import: &Import,
    chunk: &[(u32, E164)],
    now: DateTime<Utc>,
    to: usize,
) -> Outcome<Vec<u32>> {
    let found = add(db, s, &import.campaign_id, chunk, now).await?;
    let already: Vec<i64> = found.iter().map(|r| i64::from(*r)).collect();
    let moved = db
        .number_imports
        .update_one(
            doc! { "_id": &import.id, "done": import.done },
            doc! {
                "$set": { "done": to as i64, "touched": wall_now() },
                "$push": { "already": { "$each": already } },
            },
        )
        .session(s)
        .await
        .map_err(during("mark number import progress"))?;
    if moved.matched_count == 0 {
        return Err(Error::precondition(format!("{TAKEN_OVER}: {}", import.id)).into());
    }
    Ok(found)
}

/// Deletes a finished or abandoned import. A failure leaves it for
/// [`finish_idle_imports`], which finds nothing left to add and deletes it.
async fn forget(db: &MongoStore, id: &str) {
    if let Err(e) = db.number_imports.delete_one(doc! { "_id": id }).await {
        tracing::warn!(import = id, error = %e, "could not delete a finished number import; it is deleted later");
    }
}

/// Starts [`finish_idle_imports`] in the background unless this process is at it already.
pub(crate) fn spawn_finish_idle_imports(db: &MongoStore) {
    let Ok(turn) = std::sync::Arc::clone(&db.import_turn).try_lock_owned() else { return };
    let db = db.clone();
    tokio::spawn(async move {
        let _turn = turn;
        match finish_idle_imports(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(imports = n, "finished number uploads an earlier voxbridge left unfinished"),
            Err(e) => tracing::warn!(error = %e, "could not finish number uploads left unfinished; trying again later"),
        }
    });
}

/// Finishes every import nobody has touched for [`IDLE`]: each is claimed (so only one
/// process finishes it), then applied. Returns how many were finished.
pub async fn finish_idle_imports(db: &MongoStore) -> Result<usize> {
    let cutoff = bson::DateTime::from_millis(wall_now().timestamp_millis() - IDLE.as_millis() as i64);
    let idle = find_all(
        &db.number_imports,
        doc! { "touched": { "$lt": cutoff } },
        mongodb::options::FindOptions::builder().projection(doc! { "_id": 1, "touched": 1 }).build(),
        None,
        "find idle number imports",
    )
    .await?;
    let mut finished = 0;
    for found in idle {
        let (Ok(id), Ok(touched)) = (found.get_str("_id"), found.get_datetime("touched")) else { continue };
        let claimed = db
            .number_imports
            .find_one_and_update(doc! { "_id": id, "touched": touched }, doc! { "$set": { "touched": wall_now() } })
            .return_document(mongodb::options::ReturnDocument::After)
            .await
            .map_err(|e| Error::from(during("claim an idle number import")(e)))?;
        let Some(claimed) = claimed else { continue };
        let import: Import =
            bson::from_document(claimed).map_err(|e| Error::internal(format!("decode number import {id}: {e}")))?;
        let (id, campaign_id) = (import.id.clone(), import.campaign_id.clone());
        match apply(db, import).await {
            Ok(_) => {
                tracing::info!(import = %id, campaign_id, "finished a number upload left unfinished");
                finished += 1;
            }
            Err(e) => {
                tracing::warn!(import = %id, campaign_id, error = %e, "a number upload left unfinished still fails")
            }
        }
    }
    Ok(finished)
}
