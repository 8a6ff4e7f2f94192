//! The connection, the collections and their indexes, and what every store module shares:
//! how driver errors become domain errors, and the transaction loop.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use mongodb::bson::{Document, doc};
use mongodb::error::{ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT, WriteFailure};
use mongodb::options::{ClientOptions, FindOptions, IndexOptions, ReadConcern, WriteConcern};
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use rand::Rng;
use vox_domain::{Error, Result};
use vox_store::StoreHealth;

/// How long a transaction that keeps meeting concurrent writers is tried again before the
/// caller is told to try later: the driver's own `with_transaction` limit. Lease batches of
/// several instances can queue this long behind each other on a slow server.
const CONFLICT_BUDGET: Duration = Duration::from_secs(120);
/// How many times a commit whose outcome is unknown (a network error) is sent again.
const COMMIT_ATTEMPTS: u32 = 3;

/// Every document store of the control plane in one MongoDB database.
///
/// All reads and writes use majority read and write concern (set on the client), so an
/// acknowledged lease, leadership change or call move survives a failover; retryable
/// writes stay on (the driver default).
#[derive(Debug, Clone)]
pub struct MongoStore {
    client: Client,
    db: Database,
    pub(crate) regions: Collection<Document>,
    pub(crate) nodes: Collection<Document>,
    pub(crate) audit: Collection<Document>,
    pub(crate) campaigns: Collection<Document>,
    pub(crate) calls: Collection<Document>,
    pub(crate) call_events: Collection<Document>,
    /// The activity feed (see `feed`).
    pub(crate) feed: Collection<Document>,
    pub(crate) webhooks: Collection<Document>,
    pub(crate) webhook_deliveries: Collection<Document>,
    pub(crate) leadership: Collection<Document>,
    pub(crate) users: Collection<Document>,
    pub(crate) api_keys: Collection<Document>,
    /// The do-not-call list.
    pub(crate) dnc: Collection<Document>,
    /// Sequence numbers and guard documents (`audit`, `admins`).
    pub(crate) counters: Collection<Document>,
    /// This process's lease batches take turns here before they meet other processes' in
    /// the database: batches serialise on the fence anyway (see `leasing`), and waiting in
    /// a fair queue costs less than conflicting and trying again.
    pub(crate) lease_turn: Arc<tokio::sync::Mutex<()>>,
    /// Large number uploads written ahead, until they are added (see `imports`).
    pub(crate) number_imports: Collection<Document>,
    /// Held while this process finishes uploads left unfinished, so it runs once at a time.
    pub(crate) import_turn: Arc<tokio::sync::Mutex<()>>,
}

/// One index, created at start with a fixed name so creating it again is a no-op.
struct Index {
    collection: &'static str,
    name: &'static str,
    keys: fn() -> Document,
    unique: bool,
    /// Only documents matching this are indexed.
    partial: Option<fn() -> Document>,
}

const INDEXES: &[Index] = &[
    Index {
        collection: "regions",
        name: "region_name_unique",
        keys: || doc! { "name": 1 },
        unique: true,
        partial: None,
    },
    // Only console and background nodes carry `singleton_kind`: one of each per cluster.
    Index {
        collection: "nodes",
        name: "node_one_singleton",
        keys: || doc! { "singleton_kind": 1 },
        unique: true,
        partial: Some(|| doc! { "singleton_kind": { "$exists": true } }),
    },
    Index { collection: "users", name: "user_email_unique", keys: || doc! { "email": 1 }, unique: true, partial: None },
    // Only first outbound attempts carry `first_number`: a campaign dials a number once.
    Index {
        collection: "calls",
        name: "call_one_first_attempt",
        keys: || doc! { "campaign_id": 1, "first_number": 1 },
        unique: true,
        partial: Some(|| doc! { "first_number": { "$exists": true } }),
    },
    Index {
        collection: "calls",
        name: "call_due",
        keys: || doc! { "campaign_id": 1, "state": 1, "due_at": 1 },
        unique: false,
        partial: None,
    },
    Index { collection: "calls", name: "call_by_state", keys: || doc! { "state": 1 }, unique: false, partial: None },
    Index {
        collection: "calls",
        name: "call_by_created",
        keys: || doc! { "created_at": 1, "_id": 1 },
        unique: false,
        partial: None,
    },
    // The abandon ledger's periods.
    Index {
        collection: "calls",
        name: "call_by_answer",
        keys: || doc! { "campaign_id": 1, "answered_at": 1 },
        unique: false,
        partial: None,
    },
    Index {
        collection: "call_events",
        name: "call_event_seq",
        keys: || doc! { "call_id": 1, "seq": 1 },
        unique: true,
        partial: None,
    },
    Index {
        collection: "audit",
        name: "audit_by_target",
        keys: || doc! { "target_id": 1, "seq": 1 },
        unique: false,
        partial: None,
    },
    Index { collection: "audit", name: "audit_seq", keys: || doc! { "seq": 1 }, unique: true, partial: None },
    Index {
        collection: "feed",
        name: "feed_by_campaign",
        keys: || doc! { "campaign_id": 1, "_id": 1 },
        unique: false,
        partial: None,
    },
    Index {
        collection: "webhook_deliveries",
        name: "webhook_delivery_by_endpoint",
        keys: || doc! { "endpoint_id": 1, "_id": -1 },
        unique: false,
        partial: None,
    },
    Index { collection: "feed", name: "feed_by_time", keys: || doc! { "at": 1 }, unique: false, partial: None },
    Index { collection: "dnc", name: "dnc_by_number", keys: || doc! { "number": 1 }, unique: false, partial: None },
];

const COLLECTIONS: &[&str] = &[
    "regions",
    "nodes",
    "audit",
    "campaigns",
    "calls",
    "call_events",
    "feed",
    "webhooks",
    "webhook_deliveries",
    "leadership",
    "users",
    "api_keys",
    "dnc",
    "counters",
    "number_imports",
];

impl MongoStore {
    /// Connects to the deployment at `uri`, uses `database`, and creates the collections and
    /// indexes that are missing. Safe to run from several processes at once.
    pub async fn connect(uri: &str, database: &str) -> Result<Self> {
        let mut options = ClientOptions::parse(uri).await.map_err(|e| driver_error("parse connection string", &e))?;
        options.read_concern = Some(ReadConcern::majority());
        options.write_concern = Some(WriteConcern::majority());
        let client = Client::with_options(options).map_err(|e| driver_error("create client", &e))?;
        let db = client.database(database);
        let store = MongoStore {
            regions: db.collection("regions"),
            nodes: db.collection("nodes"),
            audit: db.collection("audit"),
            campaigns: db.collection("campaigns"),
            calls: db.collection("calls"),
            call_events: db.collection("call_events"),
            feed: db.collection("feed"),
            webhooks: db.collection("webhooks"),
            webhook_deliveries: db.collection("webhook_deliveries"),
            leadership: db.collection("leadership"),
            users: db.collection("users"),
            api_keys: db.collection("api_keys"),
            dnc: db.collection("dnc"),
            counters: db.collection("counters"),
            lease_turn: Arc::default(),
            number_imports: db.collection("number_imports"),
            import_turn: Arc::default(),
            client,
            db,
        };
        store.prepare().await?;
        crate::imports::spawn_finish_idle_imports(&store);
        Ok(store)
    }

    /// Creates the collections (transactions may not create them) and the indexes.
    async fn prepare(&self) -> Result<()> {
        for name in COLLECTIONS {
            match self.db.create_collection(*name).await {
                Ok(()) => {}
                Err(e) if server_code(&e) == Some(NAMESPACE_EXISTS) => {}
                Err(e) => return Err(driver_error("create collection", &e)),
            }
        }
        for index in INDEXES {
            let options = IndexOptions::builder()
                .name(index.name.to_string())
                .unique(index.unique.then_some(true))
                .partial_filter_expression(index.partial.map(|f| f()))
                .build();
            let model = IndexModel::builder().keys((index.keys)()).options(options).build();
            self.db
                .collection::<Document>(index.collection)
                .create_index(model)
                .await
                .map_err(|e| driver_error("create index", &e))?;
        }
        Ok(())
    }

    /// Runs `body` as one transaction and commits it, trying again from the start while it
    /// meets a concurrent writer (`TransientTransactionError`) and retrying the commit
    /// while its outcome is unknown. A domain error from `body` aborts it for good.
    ///
    /// `body` gets the session and `ctx` (what it works on, usually borrowed arguments) and
    /// is called again on every attempt.
    pub(crate) async fn transaction<C: Send, T>(
        &self,
        op: &'static str,
        mut ctx: C,
        mut body: impl for<'s> FnMut(&'s mut ClientSession, &'s mut C) -> BoxFuture<'s, Outcome<T>> + Send,
    ) -> Result<T> {
        let mut session = self.client.start_session().await.map_err(|e| driver_error(op, &e))?;
        let started = tokio::time::Instant::now();
        let mut attempt = 0;
        while attempt == 0 || started.elapsed() < CONFLICT_BUDGET {
            attempt += 1;
            session
                .start_transaction()
                .read_concern(ReadConcern::majority())
                .write_concern(WriteConcern::majority())
                .await
                .map_err(|e| driver_error(op, &e))?;
            let value = match body(&mut session, &mut ctx).await {
                Ok(value) => value,
                Err(failure) => {
                    // Aborting may fail when the server already ended it; either way it is over.
                    let _ = session.abort_transaction().await;
                    match failure {
                        Failure::Driver(step, e) if conflicted(&e) => {
                            tracing::debug!(op, step, attempt, "transaction met a concurrent writer; trying again");
                            backoff(attempt).await;
                            continue;
                        }
                        other => return Err(other.into()),
                    }
                }
            };
            let mut commits = 0;
            loop {
                commits += 1;
                match session.commit_transaction().await {
                    Ok(()) => return Ok(value),
                    // Committing again is safe: the server commits a transaction once.
                    Err(e) if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) && commits < COMMIT_ATTEMPTS => {}
                    Err(e) if conflicted(&e) => break,
                    Err(e) => return Err(driver_error(op, &e)),
                }
            }
            backoff(attempt).await;
        }
        Err(Error::unavailable(format!(
            "mongodb: {op}: still conflicting with concurrent writers after {attempt} attempts in {:?}; try again",
            started.elapsed()
        )))
    }
}

/// Waits a little before a conflicting transaction runs again: up to 2, 4, 8 … 128 ms,
/// at random, so racing writers stop colliding.
async fn backoff(attempt: u32) {
    let ceiling = 1u64 << attempt.min(7);
    let wait = rand::rng().random_range(0..=ceiling * 1000);
    tokio::time::sleep(Duration::from_micros(wait)).await;
}

#[async_trait]
impl StoreHealth for MongoStore {
    async fn ping(&self) -> Result<()> {
        self.db.run_command(doc! { "ping": 1 }).await.map_err(|e| driver_error("ping", &e))?;
        Ok(())
    }
}

// ---- errors ----------------------------------------------------------------------------

/// Why a storage step failed: the domain refused it, or the driver failed. Driver errors
/// are kept whole until the edge so the transaction loop can tell a transient conflict
/// from a real failure.
#[derive(Debug)]
pub(crate) enum Failure {
    Domain(Error),
    Driver(&'static str, mongodb::error::Error),
}

pub(crate) type Outcome<T> = std::result::Result<T, Failure>;

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Domain(e)
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Domain(e) => e,
            Failure::Driver(op, e) => driver_error(op, &e),
        }
    }
}

/// Names the operation a driver error came from.
pub(crate) fn during(op: &'static str) -> impl FnOnce(mongodb::error::Error) -> Failure {
    move |e| Failure::Driver(op, e)
}

/// Like [`during`], but a duplicate key becomes the domain's AlreadyExists from `taken`.
pub(crate) fn unique(op: &'static str, taken: impl FnOnce() -> Error) -> impl FnOnce(mongodb::error::Error) -> Failure {
    move |e| if is_duplicate_key(&e) { Failure::Domain(taken()) } else { Failure::Driver(op, e) }
}

/// Unavailable when the server cannot be reached, else Internal; both name the operation.
pub(crate) fn driver_error(op: &str, e: &mongodb::error::Error) -> Error {
    let message = format!("mongodb: {op}: {}", e.kind);
    if unreachable(e) { Error::unavailable(message) } else { Error::internal(message) }
}

fn unreachable(e: &mongodb::error::Error) -> bool {
    matches!(
        *e.kind,
        ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. }
            | ErrorKind::Shutdown
    )
}

/// A transaction lost a race with a concurrent writer and may run again. The driver labels
/// network errors inside a transaction transient too; those fail fast instead of being
/// retried against a server that is gone.
fn conflicted(e: &mongodb::error::Error) -> bool {
    e.contains_label(TRANSIENT_TRANSACTION_ERROR) && !unreachable(e)
}

const DUPLICATE_KEY: i32 = 11000;
const NAMESPACE_EXISTS: i32 = 48;

fn server_code(e: &mongodb::error::Error) -> Option<i32> {
    match &*e.kind {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::InsertMany(m) => m.write_errors.as_ref().and_then(|w| w.first()).map(|w| w.code),
        _ => None,
    }
}

pub(crate) fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    server_code(e) == Some(DUPLICATE_KEY)
}

// ---- reads shared by the store modules --------------------------------------------------

/// Every document `filter` matches, in the given order, inside `session` when given.
pub(crate) async fn find_all(
    coll: &Collection<Document>,
    filter: Document,
    options: FindOptions,
    session: Option<&mut ClientSession>,
    op: &'static str,
) -> Outcome<Vec<Document>> {
    match session {
        Some(s) => {
            let mut cursor = coll.find(filter).with_options(options).session(&mut *s).await.map_err(during(op))?;
            cursor.stream(s).try_collect().await.map_err(during(op))
        }
        None => {
            coll.find(filter).with_options(options).await.map_err(during(op))?.try_collect().await.map_err(during(op))
        }
    }
}

/// The document with `_id` = `id`, inside `session` when given.
pub(crate) async fn find_by_id(
    coll: &Collection<Document>,
    id: &str,
    session: Option<&mut ClientSession>,
    op: &'static str,
) -> Outcome<Option<Document>> {
    let mut find = coll.find_one(doc! { "_id": id });
    if let Some(s) = session {
        find = find.session(s);
    }
    find.await.map_err(during(op))
}

#[cfg(test)]
mod tests {
    use vox_domain::ErrorCode;

    use super::*;

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_and_named() {
        // Nothing listens on port 9 (discard) here; give up quickly.
        let uri = "mongodb://127.0.0.1:9/?directConnection=true&serverSelectionTimeoutMS=300";
        let Err(err) = MongoStore::connect(uri, "vox_unreachable").await else { panic!("connected to nothing") };
        assert_eq!(err.code, ErrorCode::Unavailable, "{err}");
        assert!(err.message.starts_with("mongodb: create collection: "), "{err}");
    }
}
