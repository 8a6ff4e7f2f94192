//! The production document family: every document trait of `vox-store` on MongoDB, with
//! the official driver, for control planes of several voxbridge instances.
//!
//! Each collection holds the domain types in their own serde shape (instants as BSON
//! dates, `_id` = the id) plus the few denormalised fields a query or a unique index needs,
//! as the SQLite store keeps columns. Indexes are created at start, idempotently, under
//! fixed names. Reads and writes use majority concerns; retryable writes stay on.
//! Transactions are used only where one change spans documents (a call move with its
//! event and retry, a lifecycle change with its audit line, completing a campaign, adding
//! numbers, a lease batch with its fence); single-document changes are conditional updates.
//! Uploads too large for one transaction are written ahead and added in chunks (`imports`).
//! See `leasing` for how batches stay disjoint and fenced under concurrency.
//!
//! Presence and the event bus stay in process here ([`open_stores`]); Redis takes them over
//! when several instances share a cluster.

mod api_keys;
mod calls;
mod campaigns;
mod codec;
mod db;
mod dnc;
mod feed;
pub mod imports;
mod leadership;
mod leasing;
mod ledger;
mod nodes;
mod regions;
mod users;
mod webhooks;

use std::sync::Arc;

use vox_store::Stores;

pub use db::MongoStore;

/// Every document store on the MongoDB deployment at `uri` (database `database`), with
/// in-process presence and events.
pub async fn open_stores(uri: &str, database: &str) -> vox_domain::Result<Stores> {
    Ok(Stores::with_local_presence(Arc::new(MongoStore::connect(uri, database).await?)))
}
