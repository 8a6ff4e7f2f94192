//! The work queue on SQLite, for the embedded family: one table of jobs, every call
//! answered only once its change is committed, so an enqueue, ack or nack that returned
//! survives a crash or power cut (WAL with `synchronous=FULL`, as the rest of the store).
//! Calls are committed in groups by one writer thread ([`SqliteWorkQueue`]).
//!
//! A job's `state` says where it is and `due_ms` when that ends: ready since, delayed
//! until, in flight until (the visibility deadline), dead since. Overdue timeouts, due
//! delays and expiries are applied by [`maintain`] at the start of each reserve and stats
//! call, inside its transaction, so there is no background task to keep alive.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use vox_domain::{Error, Result};
use vox_store::queue::*;

use crate::db::{from_ms, ms, sql};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS queue_jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    -- ready | delayed | inflight | dead
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    -- ready: since; delayed: due; inflight: visibility deadline; dead: failed at
    due_ms INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    backoff_ms INTEGER NOT NULL,
    jitter INTEGER NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    ttl_ms INTEGER,
    expires_ms INTEGER,
    dedup_id TEXT,
    token TEXT,
    consumer TEXT,
    last_error TEXT,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_jobs_next ON queue_jobs(queue, state, priority DESC, due_ms, seq);
CREATE INDEX IF NOT EXISTS queue_jobs_due ON queue_jobs(queue, state, due_ms);
CREATE INDEX IF NOT EXISTS queue_jobs_expiry ON queue_jobs(queue, expires_ms) WHERE expires_ms IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS queue_jobs_dedup ON queue_jobs(queue, dedup_id) WHERE dedup_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    expired INTEGER NOT NULL DEFAULT 0
);
"#;

const COLUMNS: &str = "seq, queue, state, priority, due_ms, attempt, max_attempts, backoff_ms, jitter, enqueued_ms, \
                       expires_ms, dedup_id, token, consumer, last_error, payload";

/// The durable work queue in a SQLite file, on a connection of its own.
///
/// Every call is a request to one writer thread, which owns the connection and commits
/// whatever requests are waiting together in one transaction (group commit), each in a
/// savepoint of its own so a failing one changes nothing. A caller is answered only once
/// its transaction is committed (and fsynced), so the guarantee is the same as one
/// transaction per call, while concurrent producers and consumers share the cost of
/// each fsync.
#[derive(Debug, Clone)]
pub struct SqliteWorkQueue {
    requests: std::sync::mpsc::Sender<Request>,
}

/// Runs on the writer's connection inside a savepoint; says whether it succeeded, and
/// how to answer its caller once the commit's outcome is known.
/// Given no connection, it does not run (the transaction could not begin).
type Request = Box<dyn FnOnce(Option<&Connection>) -> (bool, Answer) + Send>;
type Answer = Box<dyn FnOnce(Option<Error>) + Send>;

/// The most requests one transaction carries.
const GROUP: usize = 256;
/// How long the writer waits for more requests while callers are concurrent.
const GROUP_LINGER: std::time::Duration = std::time::Duration::from_micros(200);

impl SqliteWorkQueue {
    /// The queue in the SQLite file at `path` (creating it and its tables if needed):
    /// voxbridge's own database file is fine, beside the document tables.
    pub async fn open(path: &std::path::Path) -> Result<Self> {
        let path = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || {
            let conn = Connection::open(&path)
                .map_err(|e| Error::unavailable(format!("open sqlite database {}: {e}", path.display())))?;
            conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql("set busy timeout"))?;
            conn.pragma_update(None, "journal_mode", "WAL").map_err(sql("enable WAL"))?;
            conn.pragma_update(None, "synchronous", "FULL").map_err(sql("set synchronous"))?;
            conn.execute_batch(SCHEMA).map_err(sql("create queue schema"))?;
            Ok::<_, Error>(conn)
        })
        .await
        .map_err(|e| Error::internal(format!("sqlite queue: open: {e}")))??;
        let (requests, incoming) = std::sync::mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("vox-queue-sqlite".into())
            .spawn(move || write_loop(&conn, &incoming))
            .map_err(|e| Error::internal(format!("sqlite queue: start its writer thread: {e}")))?;
        Ok(SqliteWorkQueue { requests })
    }

    /// Runs `f` in the next group transaction; answers once that is committed.
    async fn tx<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request: Request = Box::new(move |conn: Option<&Connection>| {
            let result = match conn {
                Some(conn) => f(conn),
                None => Err(Error::unavailable("sqlite queue: no transaction")),
            };
            let ok = result.is_ok();
            let answer: Answer = Box::new(move |commit_failed: Option<Error>| {
                let _ = reply.send(match commit_failed {
                    Some(e) => Err(e),
                    None => result,
                });
            });
            (ok, answer)
        });
        self.requests.send(request).map_err(|_| Error::unavailable("sqlite queue: its writer thread stopped"))?;
        answer.await.map_err(|_| Error::internal("sqlite queue: the writer thread dropped a request"))?
    }
}

/// The writer thread: takes the waiting requests (up to [`GROUP`]), runs each in its own
/// savepoint inside one transaction, commits, then answers them all. Ends when every
/// handle of the queue is gone.
fn write_loop(conn: &Connection, incoming: &std::sync::mpsc::Receiver<Request>) {
    let mut last_group = 1;
    while let Ok(first) = incoming.recv() {
        let mut group = vec![first];
        // With several callers, the others are usually a few microseconds behind (they
        // were answered together by the last commit): waiting briefly for them saves an
        // fsync each. A lone caller never waits.
        let linger = if last_group > 1 { GROUP_LINGER } else { std::time::Duration::ZERO };
        while group.len() < GROUP {
            match incoming.recv_timeout(linger) {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        last_group = group.len();
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE").map_err(sql("begin")) {
            for request in group {
                let (_, answer) = request(None);
                answer(Some(e.clone()));
            }
            continue;
        }
        let mut answers = Vec::with_capacity(group.len());
        for request in group {
            let _ = conn.execute_batch("SAVEPOINT request");
            let (ok, answer) = request(Some(conn));
            let end = if ok { "RELEASE request" } else { "ROLLBACK TO request; RELEASE request" };
            let _ = conn.execute_batch(end);
            answers.push(answer);
        }
        let committed = conn.execute_batch("COMMIT").map_err(sql("commit"));
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for answer in answers {
            answer(committed.as_ref().err().cloned());
        }
    }
}

/// One stored job, as read by [`COLUMNS`].
struct Stored {
    seq: i64,
    queue: String,
    state: String,
    priority: i64,
    due_ms: i64,
    attempt: i64,
    max_attempts: i64,
    backoff_ms: i64,
    jitter: bool,
    enqueued_ms: i64,
    expires_ms: Option<i64>,
    dedup_id: Option<String>,
    token: Option<String>,
    consumer: Option<String>,
    last_error: Option<String>,
    payload: Vec<u8>,
}

fn read(r: &Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        seq: r.get(0)?,
        queue: r.get(1)?,
        state: r.get(2)?,
        priority: r.get(3)?,
        due_ms: r.get(4)?,
        attempt: r.get(5)?,
        max_attempts: r.get(6)?,
        backoff_ms: r.get(7)?,
        jitter: r.get(8)?,
        enqueued_ms: r.get(9)?,
        expires_ms: r.get(10)?,
        dedup_id: r.get(11)?,
        token: r.get(12)?,
        consumer: r.get(13)?,
        last_error: r.get(14)?,
        payload: r.get(15)?,
    })
}

impl Stored {
    fn info(self) -> Result<JobInfo> {
        Ok(JobInfo {
            id: self.seq.to_string(),
            state: JobState::parse(&self.state)?,
            queue: self.queue,
            payload: self.payload,
            attempts: self.attempt as u32,
            max_attempts: self.max_attempts as u32,
            priority: self.priority as i8,
            enqueued_at: from_ms(self.enqueued_ms),
            at: from_ms(self.due_ms),
            expires_at: self.expires_ms.map(from_ms),
            dedup_id: self.dedup_id,
            consumer: self.consumer,
            last_error: self.last_error,
        })
    }

    fn job(self) -> Job {
        let id = self.seq.to_string();
        let receipt = Receipt {
            queue: self.queue.clone(),
            job_id: id.clone(),
            token: self.token.unwrap_or_default(),
            attempt: self.attempt as u32,
            max_attempts: self.max_attempts as u32,
            backoff: Backoff { base: Duration::milliseconds(self.backoff_ms), jitter: self.jitter },
        };
        Job {
            id,
            queue: self.queue,
            payload: self.payload,
            attempt: self.attempt as u32,
            max_attempts: self.max_attempts as u32,
            priority: self.priority as i8,
            enqueued_at: from_ms(self.enqueued_ms),
            expires_at: self.expires_ms.map(from_ms),
            deadline: from_ms(self.due_ms),
            last_error: self.last_error,
            receipt,
        }
    }
}

/// Job ids are the row's sequence number; anything else names no job.
fn seq_of(id: &str) -> Option<i64> {
    id.parse().ok()
}

fn get(c: &Connection, queue: &str, seq: i64) -> Result<Option<Stored>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM queue_jobs WHERE seq = ?1 AND queue = ?2"))
        .and_then(|mut s| s.query_row(params![seq, queue], read).optional())
        .map_err(sql("read job"))
}

/// Applies what time did to `queue` by `now`: lapsed visibility timeouts (back to ready,
/// or dead on the last attempt), due delays, expiries (dropped and counted).
fn maintain(c: &Connection, queue: &str, now: i64) -> Result<()> {
    let timeout = timeout_error("\u{0}");
    let (before, after) = timeout.split_once('\u{0}').unwrap_or((&timeout, ""));
    c.prepare_cached(
        "UPDATE queue_jobs SET state = CASE WHEN attempt >= max_attempts THEN 'dead' ELSE 'ready' END,
             token = NULL, last_error = ?3 || consumer || ?4
         WHERE queue = ?1 AND state = 'inflight' AND due_ms <= ?2",
    )
    .and_then(|mut s| s.execute(params![queue, now, before, after]))
    .map_err(sql("recover timed-out jobs"))?;
    c.prepare_cached("UPDATE queue_jobs SET state = 'ready' WHERE queue = ?1 AND state = 'delayed' AND due_ms <= ?2")
        .and_then(|mut s| s.execute(params![queue, now]))
        .map_err(sql("promote due jobs"))?;
    let expired = c
        .prepare_cached(
            "DELETE FROM queue_jobs WHERE queue = ?1 AND expires_ms <= ?2 AND state IN ('ready', 'delayed')",
        )
        .and_then(|mut s| s.execute(params![queue, now]))
        .map_err(sql("drop expired jobs"))?;
    if expired > 0 {
        c.prepare_cached("UPDATE queues SET expired = expired + ?2 WHERE name = ?1")
            .and_then(|mut s| s.execute(params![queue, expired as i64]))
            .map_err(sql("count expired jobs"))?;
    }
    Ok(())
}

/// The in-flight job `receipt` names, if the receipt is still current; else the error
/// saying why not.
fn current(c: &Connection, receipt: &Receipt) -> Result<Stored> {
    let stored = seq_of(&receipt.job_id).map(|seq| get(c, &receipt.queue, seq)).transpose()?.flatten();
    match stored {
        Some(s) if s.state == "inflight" && s.token.as_deref() == Some(receipt.token.as_str()) => Ok(s),
        Some(s) => Err(stale_receipt(receipt, JobState::parse(&s.state).ok())),
        None => Err(stale_receipt(receipt, None)),
    }
}

#[async_trait]
impl WorkQueue for SqliteWorkQueue {
    async fn enqueue(&self, queue: &str, payload: &[u8], o: &EnqueueOptions, now: DateTime<Utc>) -> Result<Enqueued> {
        validate_enqueue(queue, payload, o)?;
        let (queue, payload, o) = (queue.to_string(), payload.to_vec(), o.clone());
        self.tx(move |tx| {
            if let Some(d) = &o.dedup_id {
                let existing: Option<i64> = tx
                    .prepare_cached("SELECT seq FROM queue_jobs WHERE queue = ?1 AND dedup_id = ?2")
                    .and_then(|mut s| s.query_row(params![queue, d], |r| r.get(0)).optional())
                    .map_err(sql("look up dedup id"))?;
                if let Some(seq) = existing {
                    return Ok(Enqueued { id: seq.to_string(), duplicate: true });
                }
            }
            tx.prepare_cached("INSERT OR IGNORE INTO queues (name) VALUES (?1)")
                .and_then(|mut s| s.execute([&queue]))
                .map_err(sql("record queue"))?;
            let due = now + o.delay;
            let state = if due > now { JobState::Delayed } else { JobState::Ready };
            let ttl = o.ttl.map(|t| t.num_milliseconds());
            tx.prepare_cached(
                "INSERT INTO queue_jobs (queue, state, priority, due_ms, attempt, max_attempts, backoff_ms,
                         jitter, enqueued_ms, ttl_ms, expires_ms, dedup_id, payload)
                     VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    queue,
                    state.as_str(),
                    o.priority,
                    ms(due),
                    o.max_attempts,
                    o.backoff.base.num_milliseconds(),
                    o.backoff.jitter,
                    ms(now),
                    ttl,
                    ttl.map(|t| ms(now) + t),
                    o.dedup_id,
                    payload
                ])
            })
            .map_err(sql("insert job"))?;
            Ok(Enqueued { id: tx.last_insert_rowid().to_string(), duplicate: false })
        })
        .await
    }

    async fn reserve_batch(
        &self,
        queue: &str,
        consumer: &str,
        visibility: Duration,
        max: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Job>> {
        validate_reserve(queue, consumer, visibility, max)?;
        let (queue, consumer) = (queue.to_string(), consumer.to_string());
        let deadline = ms(now + visibility);
        self.tx(move |tx| {
            maintain(tx, &queue, ms(now))?;
            let seqs: Vec<i64> = tx
                .prepare_cached(
                    "SELECT seq FROM queue_jobs WHERE queue = ?1 AND state = 'ready'
                         ORDER BY priority DESC, due_ms, seq LIMIT ?2",
                )
                .and_then(|mut s| s.query_map(params![queue, max as i64], |r| r.get(0))?.collect())
                .map_err(sql("pick ready jobs"))?;
            let mut jobs = Vec::with_capacity(seqs.len());
            for seq in seqs {
                let token = vox_domain::ids::random_token(20);
                let stored = tx
                    .prepare_cached(&format!(
                        "UPDATE queue_jobs SET state = 'inflight', attempt = attempt + 1, token = ?2,
                                 consumer = ?3, due_ms = ?4
                             WHERE seq = ?1 RETURNING {COLUMNS}"
                    ))
                    .and_then(|mut s| s.query_row(params![seq, token, consumer, deadline], read))
                    .map_err(sql("reserve job"))?;
                jobs.push(stored.job());
            }
            Ok(jobs)
        })
        .await
    }

    async fn ack(&self, receipt: &Receipt, _now: DateTime<Utc>) -> Result<()> {
        let receipt = receipt.clone();
        self.tx(move |tx| {
            let s = current(tx, &receipt)?;
            tx.prepare_cached("DELETE FROM queue_jobs WHERE seq = ?1")
                .and_then(|mut st| st.execute([s.seq]))
                .map_err(sql("delete acked job"))?;
            Ok(())
        })
        .await
    }

    async fn nack(&self, receipt: &Receipt, error: &str, retry: Retry, now: DateTime<Utc>) -> Result<Nacked> {
        let at = retry_at(receipt, retry, now)?;
        let (receipt, error) = (receipt.clone(), clip_error(error).to_string());
        self.tx(move |tx| {
            let s = current(tx, &receipt)?;
            let (state, due, outcome) = match at {
                None => (JobState::Dead, now, Nacked::DeadLettered),
                Some(at) if s.expires_ms.is_some_and(|e| e <= ms(at)) => {
                    tx.prepare_cached("DELETE FROM queue_jobs WHERE seq = ?1")
                        .and_then(|mut st| st.execute([s.seq]))
                        .map_err(sql("drop expired job"))?;
                    tx.prepare_cached("UPDATE queues SET expired = expired + 1 WHERE name = ?1")
                        .and_then(|mut st| st.execute([&s.queue]))
                        .map_err(sql("count expired job"))?;
                    return Ok(Nacked::Expired);
                }
                Some(at) => {
                    let state = if at > now { JobState::Delayed } else { JobState::Ready };
                    (state, at, Nacked::Retrying { attempt: s.attempt as u32 + 1, at })
                }
            };
            tx.prepare_cached(
                "UPDATE queue_jobs SET state = ?2, due_ms = ?3, token = NULL, last_error = ?4 WHERE seq = ?1",
            )
            .and_then(|mut st| st.execute(params![s.seq, state.as_str(), ms(due), error]))
            .map_err(sql("record failed attempt"))?;
            Ok(outcome)
        })
        .await
    }

    async fn extend(&self, receipt: &Receipt, visibility: Duration, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        validate_visibility(visibility)?;
        let receipt = receipt.clone();
        let deadline = now + visibility;
        self.tx(move |tx| {
            let s = current(tx, &receipt)?;
            tx.prepare_cached("UPDATE queue_jobs SET due_ms = ?2 WHERE seq = ?1")
                .and_then(|mut st| st.execute(params![s.seq, ms(deadline)]))
                .map_err(sql("extend visibility"))?;
            Ok(deadline)
        })
        .await
    }

    async fn get_job(&self, queue: &str, id: &str) -> Result<Option<JobInfo>> {
        validate_queue_name(queue)?;
        let Some(seq) = seq_of(id) else { return Ok(None) };
        let queue = queue.to_string();
        self.tx(move |c| get(c, &queue, seq)?.map(Stored::info).transpose()).await
    }

    async fn list_dead(&self, queue: &str, offset: usize, limit: usize) -> Result<Vec<JobInfo>> {
        validate_queue_name(queue)?;
        let (queue, limit) = (queue.to_string(), limit.min(MAX_BATCH));
        self.tx(move |c| {
            let rows: Vec<Stored> = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM queue_jobs WHERE queue = ?1 AND state = 'dead'
                         ORDER BY due_ms DESC, seq DESC LIMIT ?2 OFFSET ?3"
                ))
                .and_then(|mut s| s.query_map(params![queue, limit as i64, offset as i64], read)?.collect())
                .map_err(sql("list dead letters"))?;
            rows.into_iter().map(Stored::info).collect()
        })
        .await
    }

    async fn requeue_dead(&self, queue: &str, which: DeadLetters<'_>, now: DateTime<Utc>) -> Result<u64> {
        validate_queue_name(queue)?;
        let (queue, one) = (queue.to_string(), one_of(which));
        self.tx(move |tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE queue_jobs SET state = 'ready', attempt = 0, due_ms = ?2, token = NULL,
                             expires_ms = CASE WHEN ttl_ms IS NULL THEN NULL ELSE ?2 + ttl_ms END
                         WHERE queue = ?1 AND state = 'dead' AND (?3 IS NULL OR seq = ?3)",
                )
                .and_then(|mut s| s.execute(params![queue, ms(now), one.as_ref().map(|o| o.1)]))
                .map_err(sql("requeue dead letters"))?;
            found(n as u64, &queue, one)
        })
        .await
    }

    async fn purge_dead(&self, queue: &str, which: DeadLetters<'_>) -> Result<u64> {
        validate_queue_name(queue)?;
        let (queue, one) = (queue.to_string(), one_of(which));
        self.tx(move |tx| {
            let n = tx
                .prepare_cached(
                    "DELETE FROM queue_jobs WHERE queue = ?1 AND state = 'dead' AND (?2 IS NULL OR seq = ?2)",
                )
                .and_then(|mut s| s.execute(params![queue, one.as_ref().map(|o| o.1)]))
                .map_err(sql("purge dead letters"))?;
            found(n as u64, &queue, one)
        })
        .await
    }

    async fn stats(&self, queue: &str, now: DateTime<Utc>) -> Result<QueueStats> {
        validate_queue_name(queue)?;
        let queue = queue.to_string();
        self.tx(move |tx| {
            maintain(tx, &queue, ms(now))?;
            let mut stats = QueueStats::default();
            let counts: Vec<(String, i64, i64)> = tx
                .prepare_cached("SELECT state, COUNT(*), MIN(due_ms) FROM queue_jobs WHERE queue = ?1 GROUP BY state")
                .and_then(|mut s| s.query_map([&queue], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect())
                .map_err(sql("count jobs"))?;
            for (state, n, oldest) in counts {
                match JobState::parse(&state)? {
                    JobState::Ready => {
                        stats.ready = n as u64;
                        stats.oldest_ready_age = Some(now - from_ms(oldest));
                    }
                    JobState::Delayed => stats.delayed = n as u64,
                    JobState::InFlight => stats.in_flight = n as u64,
                    JobState::Dead => stats.dead = n as u64,
                }
            }
            stats.expired = tx
                .prepare_cached("SELECT expired FROM queues WHERE name = ?1")
                .and_then(|mut s| s.query_row([&queue], |r| r.get::<_, i64>(0)).optional())
                .map_err(sql("read expired count"))?
                .unwrap_or(0) as u64;
            Ok(stats)
        })
        .await
    }

    async fn queues(&self) -> Result<Vec<String>> {
        self.tx(|c| {
            c.prepare_cached("SELECT name FROM queues ORDER BY name")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(sql("list queues"))
        })
        .await
    }
}

/// The one dead letter asked for, as (id, row sequence); an id that is no row's
/// sequence still names it, for the NotFound.
fn one_of(which: DeadLetters<'_>) -> Option<(String, i64)> {
    match which {
        DeadLetters::All => None,
        DeadLetters::One(id) => Some((id.to_string(), seq_of(id).unwrap_or(-1))),
    }
}

fn found(n: u64, queue: &str, one: Option<(String, i64)>) -> Result<u64> {
    match one {
        Some((id, _)) if n == 0 => Err(Error::not_found(&format!("dead letter of queue {queue:?}"), &id)),
        _ => Ok(n),
    }
}
