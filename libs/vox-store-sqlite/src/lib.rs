//! The embedded storage family: every document trait of `vox-store` on one SQLite file
//! under the data dir, plus in-process presence and events. Zero setup: the file and its
//! schema are created on first open.
//!
//! Each table keeps the columns it is queried by and the whole record as JSON (`doc`), so
//! the domain types stay the single description of a record. One connection behind a
//! mutex serialises writers; every multi-row change is one transaction, and WAL with
//! `synchronous=FULL` means a committed change survives a crash or power loss.

mod api_keys;
mod calls;
mod campaigns;
mod db;
mod dnc;
mod feed;
mod leadership;
mod ledger;
mod nodes;
mod queue;
mod regions;
mod users;
mod webhooks;

use std::path::Path;
use std::sync::Arc;

use vox_store::Stores;

pub use db::SqliteStore;
pub use queue::SqliteWorkQueue;

/// The whole embedded family on the SQLite file at `path`.
pub fn open_stores(path: &Path) -> vox_domain::Result<Stores> {
    Ok(Stores::with_local_presence(Arc::new(SqliteStore::open(path)?)))
}
