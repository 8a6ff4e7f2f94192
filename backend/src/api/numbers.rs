//! Adding numbers to a campaign: `AddNumbers` in one message, `ImportNumbers` in batches.
//!
//! Both end in one call of `CampaignStore::add_numbers`, whose contract is all or
//! nothing, so an upload lands whole or not at all. `ImportNumbers` first collects every
//! batch (a broken stream, a stalled one or a refused batch stores nothing), then
//! stores, reporting progress every few seconds. Storing runs in a task of its own: a
//! caller that leaves does not cut it short, and the answer's headers leave at once, so
//! voxbridge's request deadline never cuts a large upload in the middle.
//!
//! Limits: the caller is an operator (checked before the first batch is read); at most
//! [`MAX_IMPORT_BATCH`] rows a message, [`MAX_UPLOAD_ROWS`] in all, [`BATCH_WAIT`]
//! between messages; [`CONCURRENT_IMPORTS`] uploads at once per voxbridge, since each
//! is held in memory until it is stored.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::{Semaphore, mpsc};
use tonic::{Request, Status, Streaming};
use vox_domain::campaign::{MAX_IMPORT_BATCH, MAX_LISTED_REJECTIONS, MAX_UPLOAD_ROWS, NumberUpload, echo};
use vox_domain::user::Role;
use vox_domain::{Error, ErrorCode, Result};
use vox_proto::backend::v1 as pb;
use vox_store::ClusterEvent;

use super::required_id;
use crate::bridge::Bridge;

/// Longest wait for the next batch of an upload.
pub const BATCH_WAIT: Duration = Duration::from_secs(30);
/// How often an upload being stored reports progress.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Uploads this voxbridge takes at once; the next is refused with RESOURCE_EXHAUSTED.
pub const CONCURRENT_IMPORTS: usize = 4;

static IMPORTS: Semaphore = Semaphore::const_new(CONCURRENT_IMPORTS);

pub type ImportReplies = Pin<Box<dyn Stream<Item = std::result::Result<pb::ImportNumbersReply, Status>> + Send>>;

/// Validates the rows (the caller's row numbers, ascending), adds the valid ones in one
/// step and says what was added and what was not.
pub async fn store(bridge: &Bridge, campaign_id: &str, rows: &[(u32, String)]) -> Result<pb::AddNumbersResponse> {
    let numbered: Vec<(u32, &str)> = rows.iter().map(|(row, input)| (*row, input.as_str())).collect();
    let upload = NumberUpload::parse_numbered(&numbered)?;
    let already = bridge.stores.campaigns.add_numbers(campaign_id, &upload.valid, bridge.clock.now()).await?;
    let accepted = (upload.valid.len() - already.len()) as u32;
    let mut rejected = upload.rejected;
    for row in &already {
        let input = rows.binary_search_by_key(row, |(r, _)| *r).map(|i| echo(&rows[i].1)).unwrap_or_default();
        rejected.push((*row, input, "already in the campaign".into()));
    }
    rejected.sort_by_key(|r| r.0);
    let rejected_count = rejected.len() as u32;
    rejected.truncate(MAX_LISTED_REJECTIONS);
    bridge.publish(ClusterEvent::CampaignChanged(campaign_id.to_string()));
    Ok(pb::AddNumbersResponse {
        accepted,
        rejected: rejected.into_iter().map(|(row, input, reason)| pb::NumberRejection { row, input, reason }).collect(),
        rejected_count,
    })
}

/// `AddNumbers`: rows are the positions in the message.
pub async fn add(bridge: &Bridge, req: Request<pb::AddNumbersRequest>) -> Result<pb::AddNumbersResponse> {
    // A key limited to this campaign may add numbers to it.
    let (_, scope) = bridge.auth.user_in_scope(req.metadata(), Role::Operator).await?;
    let r = req.into_inner();
    let id = required_id("campaign_id", &r.campaign_id)?;
    scope.check(Some(&id), "campaign", &id)?;
    let rows: Vec<(u32, String)> = r.numbers.into_iter().enumerate().map(|(i, n)| (i as u32 + 1, n)).collect();
    store(bridge, &id, &rows).await
}

/// `ImportNumbers`: authenticates, then collects and stores in a task of its own.
pub async fn import(bridge: Arc<Bridge>, req: Request<Streaming<pb::ImportNumbersRequest>>) -> Result<ImportReplies> {
    let (_, scope) = bridge.auth.user_in_scope(req.metadata(), Role::Operator).await?;
    let permit = IMPORTS.try_acquire().map_err(|_| {
        Error::new(
            ErrorCode::ResourceExhausted,
            format!("{CONCURRENT_IMPORTS} uploads are being stored already; retry in a minute"),
        )
    })?;
    let mut batches = req.into_inner();
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let _permit = permit;
        let answer = match collect(&mut batches).await {
            Ok((campaign_id, rows)) => match scope.check(Some(&campaign_id), "campaign", &campaign_id) {
                Ok(()) => store_reporting(&bridge, &campaign_id, &rows, &tx).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let reply = answer
            .map(|done| pb::ImportNumbersReply { reply: Some(pb::import_numbers_reply::Reply::Done(done)) })
            .map_err(|e| super::status("ImportNumbers", e));
        // The caller may be gone; what was stored stays stored.
        let _ = tx.send(reply).await;
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

/// Every batch of the upload, checked as it comes: the campaign and the rows in order.
async fn collect(batches: &mut Streaming<pb::ImportNumbersRequest>) -> Result<(String, Vec<(u32, String)>)> {
    let mut campaign_id: Option<String> = None;
    let mut rows: Vec<(u32, String)> = Vec::new();
    let mut message = 0usize;
    loop {
        let next = tokio::time::timeout(BATCH_WAIT, batches.message()).await.map_err(|_| {
            Error::invalid(
                "numbers",
                format!(
                    "the upload stalled: no batch within {} s after row {}; nothing was stored",
                    BATCH_WAIT.as_secs(),
                    rows.len()
                ),
            )
        })?;
        let batch = match next {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(status) => {
                tracing::debug!(rows = rows.len(), error = %status.message(), "an upload broke off");
                return Err(Error::invalid(
                    "numbers",
                    format!("the upload broke off after {} rows; nothing was stored", rows.len()),
                ));
            }
        };
        message += 1;
        match &campaign_id {
            None => campaign_id = Some(required_id("campaign_id", &batch.campaign_id)?),
            Some(id) if batch.campaign_id.is_empty() || batch.campaign_id.trim() == id => {}
            Some(id) => {
                return Err(Error::invalid(
                    "campaign_id",
                    format!("message {message} names {:?}, but the upload is for {id:?}", batch.campaign_id),
                ));
            }
        }
        if batch.numbers.len() > MAX_IMPORT_BATCH {
            return Err(Error::invalid(
                "numbers",
                format!("message {message} has {} rows; at most {MAX_IMPORT_BATCH} a message", batch.numbers.len()),
            ));
        }
        if !batch.rows.is_empty() && batch.rows.len() != batch.numbers.len() {
            return Err(Error::invalid(
                "rows",
                format!(
                    "message {message} has {} rows for {} numbers; give one row per number, or none",
                    batch.rows.len(),
                    batch.numbers.len()
                ),
            ));
        }
        if rows.len() + batch.numbers.len() > MAX_UPLOAD_ROWS {
            return Err(Error::invalid(
                "numbers",
                format!("more than {MAX_UPLOAD_ROWS} rows; upload at most {MAX_UPLOAD_ROWS} at a time"),
            ));
        }
        for (i, number) in batch.numbers.into_iter().enumerate() {
            let last = rows.last().map_or(0, |r| r.0);
            let row = match batch.rows.get(i) {
                Some(&row) => row,
                None => last.checked_add(1).ok_or_else(|| Error::invalid("rows", "row numbers run out"))?,
            };
            if row <= last {
                return Err(Error::invalid(
                    "rows",
                    format!("row {row} comes after row {last} (message {message}); rows must ascend from 1"),
                ));
            }
            rows.push((row, number));
        }
    }
    let campaign_id = campaign_id.ok_or_else(|| Error::invalid("campaign_id", "required; the upload was empty"))?;
    Ok((campaign_id, rows))
}

/// [`store`], reporting progress while it runs. A full channel (a caller that does not
/// read) skips a report rather than holding up the store.
async fn store_reporting(
    bridge: &Bridge,
    campaign_id: &str,
    rows: &[(u32, String)],
    tx: &mpsc::Sender<std::result::Result<pb::ImportNumbersReply, Status>>,
) -> Result<pb::AddNumbersResponse> {
    let received = rows.len() as u32;
    let progress = || pb::ImportNumbersReply {
        reply: Some(pb::import_numbers_reply::Reply::Progress(pb::ImportNumbersProgress { received })),
    };
    let stored = store(bridge, campaign_id, rows);
    tokio::pin!(stored);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tokio::select! {
            r = &mut stored => return r,
            _ = tick.tick() => { let _ = tx.try_send(Ok(progress())); }
        }
    }
}
