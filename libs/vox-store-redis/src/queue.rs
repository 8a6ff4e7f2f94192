//! The work queue on Redis, for production: every operation is one Lua script, so it is
//! atomic however many voxbridge instances share the queue, and one round trip.
//!
//! Per queue (`<prefix>queue:{<name>}:…`): a hash per job (`job:<id>`, ids zero-padded so they sort as they were
//! made), and sorted sets of ids: `ready` (by priority band, then ready-since), `since`
//! (ready-since alone, for the oldest ready age), `delayed` (by due time), `inflight`
//! (by visibility deadline), `dead` (by failure time), `expiry` (ready or delayed jobs by
//! expiry time), plus `dedup` (dedup id → job id) and `meta` (id sequence, expired count).
//! Scripts that hand out work first apply lapsed timeouts, due delays and expiries, at
//! most [`SWEEP`] of each per call so one call never stalls Redis. Every script also
//! touches the global `<prefix>queues` index, so Redis Cluster is not supported.
//!
//! Durability is the server's: jobs survive a restart only on a Redis with persistence
//! (`appendonly yes`; `appendfsync everysec` may lose the last second on a power cut), and
//! only one that never evicts (`maxmemory-policy noeviction`). [`RedisWorkQueue::new`]
//! warns when the server says otherwise.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bb8_redis::bb8::{ManageConnection, Pool, PooledConnection};
use bb8_redis::redis::{self, AsyncCommands, FromRedisValue, ToRedisArgs};
use chrono::{DateTime, Duration, TimeZone, Utc};
use vox_domain::{Error, Result};
use vox_store::queue::*;

use crate::Redis;

/// Redis connections for the queue's pool, each remembering whether a call on it failed.
#[derive(Debug)]
struct Connections {
    client: redis::Client,
}

#[derive(Debug)]
struct Connection {
    conn: redis::aio::MultiplexedConnection,
    /// A call failed on the connection itself: the pool drops it instead of reusing it.
    broken: bool,
}

impl ManageConnection for Connections {
    type Connection = Connection;
    type Error = redis::RedisError;

    async fn connect(&self) -> std::result::Result<Connection, redis::RedisError> {
        Ok(Connection { conn: self.client.get_multiplexed_async_connection().await?, broken: false })
    }

    async fn is_valid(&self, c: &mut Connection) -> std::result::Result<(), redis::RedisError> {
        redis::cmd("PING").query_async(&mut c.conn).await
    }

    fn has_broken(&self, c: &mut Connection) -> bool {
        c.broken
    }
}

impl Connection {
    /// The error for a failed `op`; a failure of the connection itself (not of the
    /// command) marks it broken.
    fn failed(&mut self, op: &str, e: redis::RedisError) -> Error {
        self.broken |= e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() || e.is_timeout();
        Error::unavailable(format!("redis: {op}: {e}"))
    }
}

/// At most this many lapsed timeouts, due delays and expiries are applied per call.
pub const SWEEP: usize = 1000;

const PRELUDE: &str = r#"
local ready, since, delayed, inflight, dead, expiry, dedup, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local jobs = ARGV[1]
local function n(x) return string.format('%.0f', x) end
local function to_ready(id, pri, at, expires)
  redis.call('ZADD', ready, n((127 - tonumber(pri)) * 17592186044416 + tonumber(at)), id)
  redis.call('ZADD', since, at, id)
  if expires then redis.call('ZADD', expiry, expires, id) end
end
local function drop(id)
  local key = jobs .. id
  local d = redis.call('HGET', key, 'dedup')
  if d and redis.call('HGET', dedup, d) == id then redis.call('HDEL', dedup, d) end
  redis.call('DEL', key)
end
local function maintain(now, before, after)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', inflight, '-inf', now, 'LIMIT', 0, SWEEP)) do
    local key = jobs .. id
    local f = redis.call('HMGET', key, 'attempt', 'max', 'priority', 'consumer', 'due', 'expires')
    redis.call('ZREM', inflight, id)
    local err = before .. (f[4] or '') .. after
    if tonumber(f[1]) >= tonumber(f[2]) then
      redis.call('HSET', key, 'state', 'dead', 'error', err)
      redis.call('HDEL', key, 'token')
      redis.call('ZADD', dead, f[5], id)
    else
      redis.call('HSET', key, 'state', 'ready', 'error', err)
      redis.call('HDEL', key, 'token')
      to_ready(id, f[3], f[5], f[6])
    end
  end
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'WITHSCORES', 'LIMIT', 0, SWEEP)
  for i = 1, #due, 2 do
    local id = due[i]
    redis.call('ZREM', delayed, id)
    redis.call('HSET', jobs .. id, 'state', 'ready')
    to_ready(id, redis.call('HGET', jobs .. id, 'priority'), due[i + 1], false)
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, SWEEP)) do
    redis.call('ZREM', expiry, id)
    local state = redis.call('HGET', jobs .. id, 'state')
    if state == 'ready' or state == 'delayed' then
      redis.call('ZREM', ready, id)
      redis.call('ZREM', since, id)
      redis.call('ZREM', delayed, id)
      drop(id)
      redis.call('HINCRBY', meta, 'expired', 1)
    end
  end
end
-- The job `id` if `token` is its current delivery's: else a status saying why not.
local function held(id, token)
  local f = redis.call('HMGET', jobs .. id, 'state', 'token')
  if not f[1] then return 'gone' end
  if f[1] ~= 'inflight' or f[2] ~= token then return 'stale:' .. f[1] end
  return nil
end
"#;

const ENQUEUE: &str = r#"
local now, payload, pri, due, max, backoff, jitter, ttl, expires, dd, name, queues =
  ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], KEYS[9]
if dd ~= '' then
  local existing = redis.call('HGET', dedup, dd)
  if existing and redis.call('EXISTS', jobs .. existing) == 1 then return {existing, 1} end
end
redis.call('SADD', queues, name)
local id = string.format('%012d', redis.call('HINCRBY', meta, 'seq', 1))
local key = jobs .. id
redis.call('HSET', key, 'payload', payload, 'priority', pri, 'attempt', 0, 'max', max, 'backoff', backoff,
  'jitter', jitter, 'enqueued', now, 'due', due)
local exp = false
if ttl ~= '' then
  redis.call('HSET', key, 'ttl', ttl, 'expires', expires)
  exp = expires
end
if dd ~= '' then
  redis.call('HSET', key, 'dedup', dd)
  redis.call('HSET', dedup, dd, id)
end
if tonumber(due) > tonumber(now) then
  redis.call('HSET', key, 'state', 'delayed')
  redis.call('ZADD', delayed, due, id)
  if exp then redis.call('ZADD', expiry, exp, id) end
else
  redis.call('HSET', key, 'state', 'ready')
  to_ready(id, pri, now, exp)
end
return {id, 0}
"#;

const RESERVE: &str = r#"
local now, consumer, deadline, max, token = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
maintain(now, ARGV[7], ARGV[8])
local out = {}
for i = 1, max do
  local top = redis.call('ZPOPMIN', ready)
  if #top == 0 then break end
  local id = top[1]
  local key = jobs .. id
  redis.call('ZREM', since, id)
  redis.call('ZREM', expiry, id)
  redis.call('HINCRBY', key, 'attempt', 1)
  redis.call('HSET', key, 'state', 'inflight', 'token', token .. '-' .. i, 'consumer', consumer, 'due', deadline)
  redis.call('ZADD', inflight, deadline, id)
  local job = redis.call('HGETALL', key)
  table.insert(job, 1, id)
  out[#out + 1] = job
end
return out
"#;

const ACK: &str = r#"
local id, token = ARGV[2], ARGV[3]
local why = held(id, token)
if why then return why end
redis.call('ZREM', inflight, id)
drop(id)
return 'ok'
"#;

const NACK: &str = r#"
local id, token, now, err, retry = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local why = held(id, token)
if why then return why end
local key = jobs .. id
local f = redis.call('HMGET', key, 'priority', 'expires')
redis.call('ZREM', inflight, id)
redis.call('HDEL', key, 'token')
if retry == '' then
  redis.call('HSET', key, 'state', 'dead', 'due', now, 'error', err)
  redis.call('ZADD', dead, now, id)
  return 'dead'
end
if f[2] and tonumber(f[2]) <= tonumber(retry) then
  drop(id)
  redis.call('HINCRBY', meta, 'expired', 1)
  return 'expired'
end
redis.call('HSET', key, 'error', err, 'due', retry)
if tonumber(retry) > tonumber(now) then
  redis.call('HSET', key, 'state', 'delayed')
  redis.call('ZADD', delayed, retry, id)
  if f[2] then redis.call('ZADD', expiry, f[2], id) end
else
  redis.call('HSET', key, 'state', 'ready')
  to_ready(id, f[1], retry, f[2])
end
return 'retry'
"#;

const EXTEND: &str = r#"
local id, token, deadline = ARGV[2], ARGV[3], ARGV[4]
local why = held(id, token)
if why then return why end
redis.call('HSET', jobs .. id, 'due', deadline)
redis.call('ZADD', inflight, deadline, id)
return 'ok'
"#;

/// Requeue (`ARGV[5]` = 'requeue') or purge dead letters: the one named by `ARGV[3]`, or
/// up to `ARGV[4]` of them.
const DEAD: &str = r#"
local now, one, limit, action = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local ids
if one ~= '' then
  if not redis.call('ZSCORE', dead, one) then return 0 end
  ids = {one}
else
  ids = redis.call('ZRANGE', dead, 0, limit - 1)
end
for _, id in ipairs(ids) do
  redis.call('ZREM', dead, id)
  if action == 'requeue' then
    local key = jobs .. id
    local f = redis.call('HMGET', key, 'priority', 'ttl')
    local exp = false
    if f[2] then
      exp = n(tonumber(now) + tonumber(f[2]))
      redis.call('HSET', key, 'expires', exp)
    end
    redis.call('HSET', key, 'state', 'ready', 'attempt', 0, 'due', now)
    to_ready(id, f[1], now, exp)
  else
    drop(id)
  end
end
return #ids
"#;

const STATS: &str = r#"
maintain(ARGV[2], ARGV[3], ARGV[4])
local oldest = redis.call('ZRANGE', since, 0, 0, 'WITHSCORES')
return {redis.call('ZCARD', ready), redis.call('ZCARD', delayed), redis.call('ZCARD', inflight),
  redis.call('ZCARD', dead), tonumber(redis.call('HGET', meta, 'expired') or '0'), oldest[2] or ''}
"#;

/// One Lua script and the hash Redis knows it by (loaded on first use, and again after a
/// server restart or `SCRIPT FLUSH`).
#[derive(Debug)]
struct Script {
    source: String,
    sha: Mutex<Option<String>>,
}

impl Script {
    fn new(body: &str) -> Self {
        let prelude = PRELUDE.replace("SWEEP", &SWEEP.to_string());
        Script { source: format!("{prelude}\n{body}"), sha: Mutex::new(None) }
    }

    fn sha(&self) -> Option<String> {
        self.sha.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[derive(Debug)]
struct Scripts {
    enqueue: Script,
    reserve: Script,
    ack: Script,
    nack: Script,
    extend: Script,
    dead: Script,
    stats: Script,
}

/// The durable work queue on a Redis server.
#[derive(Debug, Clone)]
pub struct RedisWorkQueue {
    pool: Pool<Connections>,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
}

/// One script argument, as Redis receives it.
fn arg<T: ToRedisArgs>(v: T) -> Vec<u8> {
    v.to_redis_args().concat()
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

impl RedisWorkQueue {
    /// The queue on `redis`. Warns (once, here) when the server would lose jobs: no
    /// persistence, or a policy that evicts keys when memory runs out.
    ///
    /// The queue keeps a pool of its own ([`Connections`]) that does not ping each
    /// connection as it is taken (that doubles the round trips of a busy queue); a
    /// connection that fails a call is dropped instead, so after a Redis restart one call
    /// per pooled connection fails with Unavailable, and the next ones work.
    pub async fn new(redis: Redis) -> Self {
        let pool = Pool::builder()
            .max_size(16)
            .connection_timeout(std::time::Duration::from_secs(2))
            .test_on_check_out(false)
            .build_unchecked(Connections { client: redis.client.clone() });
        let queue = RedisWorkQueue {
            pool,
            prefix: redis.prefix.clone(),
            scripts: std::sync::Arc::new(Scripts {
                enqueue: Script::new(ENQUEUE),
                reserve: Script::new(RESERVE),
                ack: Script::new(ACK),
                nack: Script::new(NACK),
                extend: Script::new(EXTEND),
                dead: Script::new(DEAD),
                stats: Script::new(STATS),
            }),
        };
        queue.check_durability().await;
        queue
    }

    async fn conn(&self) -> Result<PooledConnection<'_, Connections>> {
        self.pool.get().await.map_err(|e| Error::unavailable(format!("redis: connect: {e}")))
    }

    fn key(&self, part: &str) -> String {
        format!("{}{part}", self.prefix)
    }

    async fn check_durability(&self) {
        let Ok(mut c) = self.conn().await else { return };
        let config = |name: &'static str| redis::cmd("CONFIG").arg("GET").arg(name).to_owned();
        // Managed servers may refuse CONFIG: then there is nothing to say.
        let policy: redis::RedisResult<Vec<String>> = config("maxmemory-policy").query_async(&mut c.conn).await;
        if let Ok(v) = policy
            && let Some(p) = v.get(1)
            && p != "noeviction"
        {
            tracing::warn!(policy = %p, "redis: maxmemory-policy is not noeviction: queued jobs may be evicted");
        }
        let aof: redis::RedisResult<Vec<String>> = config("appendonly").query_async(&mut c.conn).await;
        let save: redis::RedisResult<Vec<String>> = config("save").query_async(&mut c.conn).await;
        if let (Ok(aof), Ok(save)) = (aof, save)
            && aof.get(1).is_some_and(|v| v == "no")
            && save.get(1).is_none_or(|v| v.is_empty())
        {
            tracing::warn!("redis: no persistence (appendonly no, no save points): a restart loses queued jobs");
        }
    }

    /// The queue's keys, in the order every script reads them.
    fn keys(&self, queue: &str) -> (Vec<String>, String) {
        let base = self.key(&format!("queue:{{{queue}}}:"));
        let keys = ["ready", "since", "delayed", "inflight", "dead", "expiry", "dedup", "meta"]
            .iter()
            .map(|k| format!("{base}{k}"))
            .chain(std::iter::once(self.key("queues")))
            .collect();
        (keys, format!("{base}job:"))
    }

    /// Runs `script` for `queue` with `args` after the job-key prefix.
    async fn run<T: FromRedisValue>(&self, script: &Script, queue: &str, args: Vec<Vec<u8>>) -> Result<T> {
        let (keys, jobs) = self.keys(queue);
        let mut c = self.conn().await?;
        for _ in 0..2 {
            let sha = match script.sha() {
                Some(sha) => sha,
                None => {
                    let sha: String = redis::cmd("SCRIPT")
                        .arg("LOAD")
                        .arg(&script.source)
                        .query_async(&mut c.conn)
                        .await
                        .map_err(|e| c.failed("load queue script", e))?;
                    *script.sha.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sha.clone());
                    sha
                }
            };
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(&sha).arg(keys.len()).arg(&keys).arg(&jobs);
            for a in &args {
                cmd.arg(a.as_slice());
            }
            match cmd.query_async(&mut c.conn).await {
                Ok(v) => return Ok(v),
                Err(e) if e.code() == Some("NOSCRIPT") => {
                    *script.sha.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                }
                Err(e) => return Err(c.failed(&format!("queue {queue:?}"), e)),
            }
        }
        Err(Error::unavailable(format!("redis: queue {queue:?}: the server keeps forgetting its scripts")))
    }

    /// Turns a script's refusal of a receipt into the error saying why.
    fn settle(receipt: &Receipt, status: &str) -> Result<()> {
        match status {
            "ok" => Ok(()),
            "gone" => Err(stale_receipt(receipt, None)),
            other => Err(stale_receipt(receipt, other.strip_prefix("stale:").and_then(|s| JobState::parse(s).ok()))),
        }
    }

    fn timeout_parts() -> (String, String) {
        let t = timeout_error("\u{0}");
        let (a, b) = t.split_once('\u{0}').unwrap_or((&t, ""));
        (a.to_string(), b.to_string())
    }

    /// Requeues or purges dead letters, [`SWEEP`] per script call.
    async fn dead(&self, queue: &str, which: DeadLetters<'_>, action: &str, now: DateTime<Utc>) -> Result<u64> {
        validate_queue_name(queue)?;
        let one = match which {
            DeadLetters::One(id) => id,
            DeadLetters::All => "",
        };
        let mut total = 0u64;
        loop {
            let args = vec![arg(ms(now)), arg(one), arg(SWEEP), arg(action)];
            let n: u64 = self.run(&self.scripts.dead, queue, args).await?;
            total += n;
            if !one.is_empty() || n < SWEEP as u64 {
                break;
            }
        }
        if !one.is_empty() && total == 0 {
            return Err(Error::not_found(&format!("dead letter of queue {queue:?}"), one));
        }
        Ok(total)
    }
}

/// A job hash's fields.
type Fields = HashMap<String, Vec<u8>>;

fn fields(flat: Vec<Vec<u8>>) -> Fields {
    let mut out = HashMap::new();
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.insert(String::from_utf8_lossy(&k).into_owned(), v);
    }
    out
}

fn text(f: &Fields, name: &str) -> Option<String> {
    f.get(name).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn number(f: &Fields, name: &str) -> Result<i64> {
    text(f, name)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::internal(format!("redis: stored job has no number in field {name:?}")))
}

fn optional_number(f: &Fields, name: &str) -> Result<Option<i64>> {
    f.contains_key(name).then(|| number(f, name)).transpose()
}

fn info(queue: &str, id: String, f: &Fields) -> Result<JobInfo> {
    Ok(JobInfo {
        id,
        queue: queue.to_string(),
        state: JobState::parse(&text(f, "state").unwrap_or_default())?,
        payload: f.get("payload").cloned().unwrap_or_default(),
        attempts: number(f, "attempt")? as u32,
        max_attempts: number(f, "max")? as u32,
        priority: number(f, "priority")? as i8,
        enqueued_at: from_ms(number(f, "enqueued")?),
        at: from_ms(number(f, "due")?),
        expires_at: optional_number(f, "expires")?.map(from_ms),
        dedup_id: text(f, "dedup"),
        consumer: text(f, "consumer"),
        last_error: text(f, "error"),
    })
}

fn job(queue: &str, mut flat: Vec<Vec<u8>>) -> Result<Job> {
    if flat.is_empty() {
        return Err(Error::internal("redis: reserve returned an empty job"));
    }
    let id = String::from_utf8_lossy(&flat.remove(0)).into_owned();
    let f = fields(flat);
    let i = info(queue, id, &f)?;
    let receipt = Receipt {
        queue: queue.to_string(),
        job_id: i.id.clone(),
        token: text(&f, "token").unwrap_or_default(),
        attempt: i.attempts,
        max_attempts: i.max_attempts,
        backoff: Backoff {
            base: Duration::milliseconds(number(&f, "backoff")?),
            jitter: text(&f, "jitter").as_deref() == Some("1"),
        },
    };
    Ok(Job {
        id: i.id,
        queue: i.queue,
        payload: i.payload,
        attempt: i.attempts,
        max_attempts: i.max_attempts,
        priority: i.priority,
        enqueued_at: i.enqueued_at,
        expires_at: i.expires_at,
        deadline: i.at,
        last_error: i.last_error,
        receipt,
    })
}

#[async_trait]
impl WorkQueue for RedisWorkQueue {
    async fn enqueue(&self, queue: &str, payload: &[u8], o: &EnqueueOptions, now: DateTime<Utc>) -> Result<Enqueued> {
        validate_enqueue(queue, payload, o)?;
        let ttl = o.ttl.map(|t| t.num_milliseconds());
        let args = vec![
            arg(ms(now)),
            payload.to_vec(),
            arg(o.priority as i64),
            arg(ms(now + o.delay)),
            arg(o.max_attempts),
            arg(o.backoff.base.num_milliseconds()),
            arg(if o.backoff.jitter { "1" } else { "0" }),
            ttl.map(arg).unwrap_or_default(),
            ttl.map(|t| arg(ms(now) + t)).unwrap_or_default(),
            o.dedup_id.as_deref().map(arg).unwrap_or_default(),
            arg(queue),
        ];
        let (id, duplicate): (String, i64) = self.run(&self.scripts.enqueue, queue, args).await?;
        Ok(Enqueued { id, duplicate: duplicate == 1 })
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
        let (before, after) = Self::timeout_parts();
        let args = vec![
            arg(ms(now)),
            arg(consumer),
            arg(ms(now + visibility)),
            arg(max),
            arg(vox_domain::ids::random_token(20)),
            arg(before),
            arg(after),
        ];
        let raw: Vec<Vec<Vec<u8>>> = self.run(&self.scripts.reserve, queue, args).await?;
        raw.into_iter().map(|flat| job(queue, flat)).collect()
    }

    async fn ack(&self, receipt: &Receipt, _now: DateTime<Utc>) -> Result<()> {
        let args = vec![arg(&receipt.job_id), arg(&receipt.token)];
        let status: String = self.run(&self.scripts.ack, &receipt.queue, args).await?;
        Self::settle(receipt, &status)
    }

    async fn nack(&self, receipt: &Receipt, error: &str, retry: Retry, now: DateTime<Utc>) -> Result<Nacked> {
        let at = retry_at(receipt, retry, now)?;
        let args = vec![
            arg(&receipt.job_id),
            arg(&receipt.token),
            arg(ms(now)),
            arg(clip_error(error)),
            at.map(|t| arg(ms(t))).unwrap_or_default(),
        ];
        let status: String = self.run(&self.scripts.nack, &receipt.queue, args).await?;
        match (status.as_str(), at) {
            ("dead", _) => Ok(Nacked::DeadLettered),
            ("expired", _) => Ok(Nacked::Expired),
            ("retry", Some(at)) => Ok(Nacked::Retrying { attempt: receipt.attempt + 1, at }),
            (other, _) => Self::settle(receipt, other)
                .and(Err(Error::internal(format!("redis: nack answered {other:?}, which this queue never sends")))),
        }
    }

    async fn extend(&self, receipt: &Receipt, visibility: Duration, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        validate_visibility(visibility)?;
        let deadline = now + visibility;
        let args = vec![arg(&receipt.job_id), arg(&receipt.token), arg(ms(deadline))];
        let status: String = self.run(&self.scripts.extend, &receipt.queue, args).await?;
        Self::settle(receipt, &status).map(|()| deadline)
    }

    async fn get_job(&self, queue: &str, id: &str) -> Result<Option<JobInfo>> {
        validate_queue_name(queue)?;
        let (_, jobs) = self.keys(queue);
        let mut c = self.conn().await?;
        let flat: Vec<Vec<u8>> = c.conn.hgetall(format!("{jobs}{id}")).await.map_err(|e| c.failed("read job", e))?;
        if flat.is_empty() {
            return Ok(None);
        }
        info(queue, id.to_string(), &fields(flat)).map(Some)
    }

    async fn list_dead(&self, queue: &str, offset: usize, limit: usize) -> Result<Vec<JobInfo>> {
        validate_queue_name(queue)?;
        let limit = limit.min(MAX_BATCH);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (keys, jobs) = self.keys(queue);
        let mut c = self.conn().await?;
        let stop = (offset + limit - 1) as isize;
        let ids: Vec<String> =
            c.conn.zrevrange(&keys[4], offset as isize, stop).await.map_err(|e| c.failed("list dead letters", e))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(format!("{jobs}{id}"));
        }
        let hashes: Vec<Vec<Vec<u8>>> =
            pipe.query_async(&mut c.conn).await.map_err(|e| c.failed("read dead letters", e))?;
        ids.into_iter().zip(hashes).filter(|(_, h)| !h.is_empty()).map(|(id, h)| info(queue, id, &fields(h))).collect()
    }

    async fn requeue_dead(&self, queue: &str, which: DeadLetters<'_>, now: DateTime<Utc>) -> Result<u64> {
        self.dead(queue, which, "requeue", now).await
    }

    async fn purge_dead(&self, queue: &str, which: DeadLetters<'_>) -> Result<u64> {
        // Purging reads no time.
        self.dead(queue, which, "purge", DateTime::<Utc>::UNIX_EPOCH).await
    }

    async fn stats(&self, queue: &str, now: DateTime<Utc>) -> Result<QueueStats> {
        validate_queue_name(queue)?;
        let (before, after) = Self::timeout_parts();
        let args = vec![arg(ms(now)), arg(before), arg(after)];
        let (ready, delayed, in_flight, dead, expired, oldest): (u64, u64, u64, u64, u64, String) =
            self.run(&self.scripts.stats, queue, args).await?;
        let oldest_ready_age = oldest.parse::<i64>().ok().map(|since| now - from_ms(since));
        Ok(QueueStats { ready, delayed, in_flight, dead, expired, oldest_ready_age })
    }

    async fn queues(&self) -> Result<Vec<String>> {
        let mut c = self.conn().await?;
        let mut names: Vec<String> =
            c.conn.smembers(self.key("queues")).await.map_err(|e| c.failed("list queues", e))?;
        names.sort();
        Ok(names)
    }
}
