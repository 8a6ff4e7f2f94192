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
CREATE INDEX IF NOT EXISTS calls_due ON calls(campaign_id, state, due_ms);
CREATE INDEX IF NOT EXISTS calls_by_state ON calls(state);
CREATE INDEX IF NOT EXISTS calls_by_created ON calls(created_ms, id);
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
"#;

/// One SQLite database holding every document store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and its schema.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)
            .map_err(|e| Error::unavailable(format!("open sqlite database {}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql("set busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(sql("set synchronous"))?;
        conn.execute_batch(SCHEMA).map_err(sql("create schema"))?;
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)) })
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
