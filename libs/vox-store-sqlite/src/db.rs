//! The connection, the schema and the helpers every table module shares.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, ErrorCode as SqlCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use vox_domain::{Error, Result};
use vox_store::StoreHealth;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS regions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    region_id TEXT,
    created_ms INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS nodes_one_singleton ON nodes(kind) WHERE kind IN ('console', 'background');
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    target_id TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_target ON audit(target_id, seq);
CREATE TABLE IF NOT EXISTS campaigns (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    region_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY,
    campaign_id TEXT,
    state TEXT NOT NULL,
    channel TEXT NOT NULL,
    due_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    -- the number of a first outbound attempt: one per campaign
    first_number TEXT,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS calls_one_first_attempt ON calls(campaign_id, first_number) WHERE first_number IS NOT NULL;
-- A lease takes a campaign's pending calls in (due_ms, created_ms, id) order: the index
-- holds that whole order (and the id), so a lease reads its first `max` entries instead
-- of sorting every pending call. It supersedes `calls_due (campaign_id, state, due_ms)`,
-- which files made before it still carry until this drops it.
CREATE INDEX IF NOT EXISTS calls_due_in_order ON calls(campaign_id, state, due_ms, created_ms, id);
DROP INDEX IF EXISTS calls_due;
CREATE INDEX IF NOT EXISTS calls_by_state ON calls(state);
CREATE INDEX IF NOT EXISTS calls_by_created ON calls(created_ms, id);
-- the abandon ledger's periods: answered_at in epoch ms (the ledger module's ANSWERED_MS)
CREATE INDEX IF NOT EXISTS calls_by_answer ON calls(campaign_id,
    CAST(ROUND((julianday(json_extract(doc, '$.answered_at')) - 2440587.5) * 86400000.0) AS INTEGER));
CREATE TABLE IF NOT EXISTS call_events (
    call_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);
CREATE TABLE IF NOT EXISTS leadership (
    name TEXT PRIMARY KEY,
    holder TEXT,
    term INTEGER NOT NULL,
    expires_ms INTEGER
);
CREATE TABLE IF NOT EXISTS dnc (
    campaign_id TEXT NOT NULL,
    number TEXT NOT NULL,
    added_ms INTEGER NOT NULL,
    added_by TEXT NOT NULL,
    PRIMARY KEY (campaign_id, number)
);
CREATE INDEX IF NOT EXISTS dnc_by_number ON dnc (number);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    doc TEXT NOT NULL
);
-- The activity feed (vox_domain::feed): ids in commit order, never reused.
CREATE TABLE IF NOT EXISTS feed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    campaign_id TEXT,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feed_by_campaign ON feed(campaign_id, id);
CREATE INDEX IF NOT EXISTS feed_by_time ON feed(at_ms);
CREATE TABLE IF NOT EXISTS feed_meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_endpoint ON webhook_deliveries(endpoint_id, seq);
"#;

/// One SQLite database holding every document store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Changes waiting for the next group transaction ([`SqliteStore::tx_grouped`]).
    grouped: Arc<Mutex<Waiting>>,
    /// Group transactions committed so far: how many fsyncs the grouped changes cost.
    group_commits: Arc<std::sync::atomic::AtomicU64>,
    /// Every node as last read, kept between changes ([`crate::nodes`]). Read and
    /// written only while holding `conn`, so it changes with the table it mirrors.
    pub(crate) node_list: Arc<Mutex<Option<crate::nodes::NodeList>>>,
}

/// A change waiting for a group transaction: runs inside its own savepoint, says whether
/// it succeeded and how to answer its caller once the commit's outcome is known. Given no
/// transaction (it could not begin), it does not run.
type Grouped = Box<dyn FnOnce(Option<&rusqlite::Transaction<'_>>) -> (bool, GroupAnswer) + Send>;
type GroupAnswer = Box<dyn FnOnce(Option<Error>) + Send>;

/// The changes waiting for a group transaction, in arrival order.
#[derive(Default)]
struct Waiting(Vec<Grouped>);

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} grouped changes waiting", self.0.len())
    }
}

/// The most changes one group transaction carries; the rest wait for the next.
const GROUP: usize = 64;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and its schema.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)
            .map_err(|e| Error::unavailable(format!("open sqlite database {}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql("set busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(sql("set synchronous"))?;
        conn.execute_batch(SCHEMA).map_err(sql("create schema"))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            grouped: Arc::default(),
            group_commits: Arc::default(),
            node_list: Arc::default(),
        })
    }

    /// Runs `f` on the connection off the async runtime.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| Error::internal(format!("sqlite worker: {e}")))?
    }

    /// Runs `f` inside one transaction: all of it is committed, or none.
    pub(crate) async fn tx<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
    {
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql("begin"))?;
            let out = f(&tx)?;
            tx.commit().map_err(sql("commit"))?;
            Ok(out)
        })
        .await
    }

    /// [`SqliteStore::tx`] for a change many callers make at once (leases: a dialler's
    /// loops): the changes waiting when the connection comes free are committed together
    /// in one transaction, each in a savepoint of its own so a failing one changes
    /// nothing, and every caller is answered only once that transaction is committed (and
    /// fsynced). The guarantee is the one of a transaction per call, while concurrent
    /// callers share an fsync (about 4.5 ms on the test machine's disk with
    /// `synchronous=FULL`) instead of queueing for one each.
    ///
    /// No caller waits for company: a change queues, then takes the connection like any
    /// other; whoever holds it next runs every queued change (up to [`GROUP`]), so a lone
    /// caller commits alone and callers that arrive during a commit share the next one.
    pub(crate) async fn tx_grouped<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let change: Grouped = Box::new(move |tx: Option<&rusqlite::Transaction<'_>>| {
            let result = match tx {
                Some(tx) => f(tx),
                None => Err(Error::unavailable("sqlite: no transaction for a grouped change")),
            };
            let ok = result.is_ok();
            let answer: GroupAnswer = Box::new(move |commit_failed: Option<Error>| {
                let _ = reply.send(match commit_failed {
                    Some(e) => Err(e),
                    None => result,
                });
            });
            (ok, answer)
        });
        self.grouped.lock().unwrap_or_else(|p| p.into_inner()).0.push(change);
        let (grouped, commits) = (Arc::clone(&self.grouped), Arc::clone(&self.group_commits));
        self.run(move |conn| {
            let group: Vec<Grouped> = {
                let mut waiting = grouped.lock().unwrap_or_else(|p| p.into_inner());
                let n = waiting.0.len().min(GROUP);
                waiting.0.drain(..n).collect()
            };
            if commit_group(conn, group) {
                commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        })
        .await?;
        answer.await.map_err(|_| Error::internal("sqlite: a grouped change was dropped unanswered"))?
    }
}

/// Runs `group` in one transaction, each change in its own savepoint, commits, then
/// answers every caller with its result or the commit's error. True when it committed.
fn commit_group(conn: &mut Connection, group: Vec<Grouped>) -> bool {
    if group.is_empty() {
        return false;
    }
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql("begin")) {
        Ok(tx) => tx,
        Err(e) => {
            for change in group {
                let (_, answer) = change(None);
                answer(Some(e.clone()));
            }
            return false;
        }
    };
    let mut answers = Vec::with_capacity(group.len());
    let mut broken = None;
    for change in group {
        if let Err(e) = tx.execute_batch("SAVEPOINT grouped_change").map_err(sql("begin a grouped change")) {
            broken.get_or_insert(e);
        }
        let (ok, answer) = change(Some(&tx));
        let end = if ok { "RELEASE grouped_change" } else { "ROLLBACK TO grouped_change; RELEASE grouped_change" };
        if let Err(e) = tx.execute_batch(end).map_err(sql("end a grouped change")) {
            broken.get_or_insert(e);
        }
        answers.push(answer);
    }
    // A savepoint that could not be set or undone leaves the transaction in doubt: none
    // of it is kept.
    let outcome = match broken {
        Some(e) => Err(e),
        None => tx.commit().map_err(sql("commit")),
    };
    for answer in answers {
        answer(outcome.as_ref().err().cloned());
    }
    outcome.is_ok()
}

#[async_trait]
impl StoreHealth for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.run(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(sql("ping"))).await
    }
}

/// Maps a SQLite error to an internal error naming the operation.
pub(crate) fn sql(op: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::internal(format!("sqlite: {op}: {e}"))
}

/// True when `e` is a UNIQUE constraint violation.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == SqlCode::ConstraintViolation)
}

pub(crate) fn to_doc<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::internal(format!("encode record: {e}")))
}

pub(crate) fn from_doc<T: DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::internal(format!("decode stored record: {e}")))
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Reads every `doc` a query returns.
pub(crate) fn docs<T: DeserializeOwned>(
    conn: &Connection,
    query: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(query).map_err(sql("prepare query"))?;
    let rows = stmt.query_map(params, |r| r.get::<_, String>(0)).map_err(sql("query"))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(from_doc(&row.map_err(sql("read row"))?)?);
    }
    Ok(out)
}

/// Reads the one `doc` a query returns, if any.
pub(crate) fn doc<T: DeserializeOwned>(
    conn: &Connection,
    query: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>> {
    Ok(docs(conn, query, params)?.into_iter().next())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests stop on failure")]
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("vox.db")).unwrap();
        (dir, store)
    }

    fn index_names(store: &SqliteStore) -> Vec<String> {
        let conn = store.conn.lock().unwrap();
        let mut stmt =
            conn.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'calls'").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn a_lease_finds_due_calls_in_the_index_without_sorting_or_reading_documents() {
        let (_dir, store) = open();
        let conn = store.conn.lock().unwrap();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", crate::calls::DUE_CALL_IDS)).unwrap();
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params!["cp_1", 0, 10], |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let plan = plan.join("; ");
        assert!(plan.contains("COVERING INDEX calls_due_in_order"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "the lease query sorts: {plan}");
    }

    #[test]
    fn a_database_made_before_the_lease_index_gets_it_and_drops_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vox.db");
        let store = SqliteStore::open(&path).unwrap();
        // As files made before the index were.
        store
            .conn
            .lock()
            .unwrap()
            .execute_batch(
                "DROP INDEX calls_due_in_order; CREATE INDEX calls_due ON calls(campaign_id, state, due_ms);",
            )
            .unwrap();
        drop(store);
        let names = index_names(&SqliteStore::open(&path).unwrap());
        assert!(names.iter().any(|n| n == "calls_due_in_order"), "{names:?}");
        assert!(!names.iter().any(|n| n == "calls_due"), "{names:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_waiting_for_the_connection_share_one_commit_and_a_failing_one_changes_nothing() {
        let (_dir, store) = open();
        // Someone holds the connection (an fsync in progress, say) while 16 changes arrive.
        let (held, release) = (tokio::sync::oneshot::channel(), std::sync::mpsc::channel::<()>());
        let (held_tx, held_rx) = held;
        let (release_tx, release_rx) = release;
        let holder = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .run(move |_| {
                        let _ = held_tx.send(());
                        let _ = release_rx.recv();
                        Ok(())
                    })
                    .await
            }
        });
        held_rx.await.unwrap();
        let mut changes = Vec::new();
        for i in 0..16 {
            let store = store.clone();
            changes.push(tokio::spawn(async move {
                store
                    .tx_grouped(move |tx| {
                        let id = format!("rg_{i}");
                        tx.execute("INSERT INTO regions (id, name, doc) VALUES (?1, ?1, '{}')", [&id])
                            .map_err(sql("insert region"))?;
                        if i == 5 {
                            return Err(Error::invalid("name", "rg_5 is refused after its insert"));
                        }
                        Ok(id)
                    })
                    .await
            }));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.grouped.lock().unwrap().0.len() < 16 {
            assert!(std::time::Instant::now() < deadline, "the changes did not queue");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        release_tx.send(()).unwrap();
        holder.await.unwrap().unwrap();
        let mut answered = Vec::new();
        for c in changes {
            answered.push(c.await.unwrap());
        }
        assert_eq!(answered.iter().filter(|a| a.is_ok()).count(), 15);
        assert!(answered[5].as_ref().unwrap_err().message.contains("rg_5 is refused"), "{:?}", answered[5]);
        assert_eq!(store.group_commits.load(Ordering::Relaxed), 1, "16 waiting changes, one commit");
        let kept: Vec<String> = {
            let conn = store.conn.lock().unwrap();
            let mut stmt = conn.prepare("SELECT id FROM regions ORDER BY id").unwrap();
            stmt.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
        };
        assert_eq!(kept.len(), 15, "{kept:?}");
        assert!(!kept.contains(&"rg_5".to_string()), "the failed change was undone: {kept:?}");
    }

    #[tokio::test]
    async fn a_lone_grouped_change_commits_at_once() {
        let (_dir, store) = open();
        let got = store.tx_grouped(|tx| tx.query_row("SELECT 41 + 1", [], |r| r.get::<_, i64>(0)).map_err(sql("add")));
        let got = tokio::time::timeout(Duration::from_secs(5), got).await.expect("no wait for company");
        assert_eq!(got.unwrap(), 42);
        assert_eq!(store.group_commits.load(Ordering::Relaxed), 1);
    }
}
