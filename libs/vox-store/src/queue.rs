//! The durable work queue (seed 002's message queue): work that must happen even if the
//! process that asked for it, or the one doing it, dies on the way. Webhook delivery and
//! recording post-processing run on it.
//!
//! One trait, [`WorkQueue`], with the semantics a BullMQ or Sidekiq user expects:
//! - **at-least-once**: a job leaves the queue only when a consumer [acks](WorkQueue::ack)
//!   it. A consumer [reserves](WorkQueue::reserve) a job for a visibility timeout; if it
//!   neither acks nor nacks in time (it crashed, hung, lost its network) the job is
//!   delivered again, and that lapse counts as a failed attempt;
//! - **receipts**: each delivery carries a fresh [`Receipt`] token. Ack, nack and extend
//!   need the current one, so a consumer that comes back after its job was redelivered
//!   cannot ack (or fail) someone else's delivery;
//! - **retries** with exponential backoff ([`Backoff`]) until `max_attempts` (3 by
//!   default) deliveries have failed, then the **dead letters**, with the last error, to
//!   inspect, requeue or purge;
//! - **priorities** (higher first), then first-in first-out by the time a job became
//!   ready; **delayed** jobs become ready when due; a job past its **expiry** is never
//!   delivered and is counted instead; an optional **dedup id** makes enqueueing the same
//!   work twice return the first job;
//! - **stats**: depth by state and the age of the oldest ready job.
//!
//! Time comes in as `now`, as for every store; a backend never reads the wall clock, so
//! the conformance suite moves time without sleeping. Backends apply overdue timeouts,
//! due delays and expiries lazily, when a queue is next reserved from or its stats read,
//! in the same atomic step; nothing needs a background task.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use vox_domain::{Error, Result};

/// Deliveries a job gets unless told otherwise: the first and two retries.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The most deliveries a job may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// The first retry's delay unless told otherwise; each further one doubles it.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::seconds(1);
/// No retry waits longer than this, however many attempts came before.
pub const MAX_BACKOFF: Duration = Duration::hours(1);
/// The largest payload: a queue carries references and small documents, not recordings.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// The longest queue name; names are `[A-Za-z0-9._:-]`.
pub const MAX_QUEUE_NAME: usize = 64;
/// The longest visibility timeout: a job held longer should [extend](WorkQueue::extend).
pub const MAX_VISIBILITY: Duration = Duration::hours(12);
/// The longest delay or expiry a job may ask for.
pub const MAX_DELAY: Duration = Duration::days(366);
/// A failure's error text is kept up to this many bytes (cut at a character boundary).
pub const MAX_ERROR_BYTES: usize = 4096;
/// The most jobs one [`WorkQueue::reserve_batch`] hands out, and one page of dead letters.
pub const MAX_BATCH: usize = 1000;

/// How long a failed job waits before its next delivery: `base × 2^(failures − 1)`
/// (1 s, 2 s, 4 s … by default), at most [`MAX_BACKOFF`]. With `jitter`, each wait is
/// drawn from its upper half, `[d/2, d]`, so jobs that failed together (an endpoint that
/// was down) do not all come back in the same instant. The draw is a hash of the job id
/// and attempt: reproducible, and needs no random source inside a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: DEFAULT_BACKOFF_BASE, jitter: false }
    }
}

impl Backoff {
    /// The wait after the `failed_attempt`-th delivery (1-based) of `job_id` failed.
    pub fn delay(&self, failed_attempt: u32, job_id: &str) -> Duration {
        let base = self.base.num_milliseconds().max(0);
        let doublings = failed_attempt.saturating_sub(1).min(40);
        let full = base.saturating_mul(1i64 << doublings).min(MAX_BACKOFF.num_milliseconds());
        if !self.jitter || full < 2 {
            return Duration::milliseconds(full);
        }
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (job_id, failed_attempt).hash(&mut h);
        let half = full / 2;
        Duration::milliseconds(full - (h.finish() % (half as u64 + 1)) as i64)
    }
}

/// How a job is enqueued. `Default` is: priority 0, ready now, no expiry, 3 attempts,
/// 1 s backoff without jitter, no dedup id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnqueueOptions {
    /// Higher is delivered first; jobs of equal priority go first in, first out.
    pub priority: i8,
    /// Ready only this long after enqueueing.
    pub delay: Duration,
    /// Never delivered once this long has passed since enqueueing (and counted as
    /// expired). A job in a consumer's hands is not taken back; it expires if it fails.
    pub ttl: Option<Duration>,
    /// Deliveries before the job goes to the dead letters (1 = no retry).
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// While a job with this id is in the queue (ready, delayed, in flight or dead),
    /// enqueueing another with the same id returns the first one instead.
    pub dedup_id: Option<String>,
}

impl Default for EnqueueOptions {
    fn default() -> Self {
        EnqueueOptions {
            priority: 0,
            delay: Duration::zero(),
            ttl: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: Backoff::default(),
            dedup_id: None,
        }
    }
}

impl EnqueueOptions {
    /// Checks every field against the queue's limits; backends call it before writing.
    pub fn validate(&self) -> Result<()> {
        if self.delay < Duration::zero() || self.delay > MAX_DELAY {
            return Err(Error::invalid("delay", "between 0 and 366 days"));
        }
        if let Some(ttl) = self.ttl
            && (ttl <= Duration::zero() || ttl > MAX_DELAY)
        {
            return Err(Error::invalid("ttl", "more than 0 and at most 366 days"));
        }
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&self.max_attempts) {
            return Err(Error::invalid("max_attempts", format!("between 1 and {MAX_ATTEMPTS_LIMIT}")));
        }
        if self.backoff.base < Duration::zero() || self.backoff.base > MAX_BACKOFF {
            return Err(Error::invalid("backoff.base", "between 0 and 1 hour"));
        }
        if let Some(d) = &self.dedup_id
            && (d.is_empty() || d.len() > 256)
        {
            return Err(Error::invalid("dedup_id", "1 to 256 bytes"));
        }
        Ok(())
    }
}

/// What [`WorkQueue::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub id: String,
    /// A job with the same dedup id was already queued: `id` is that job's, and nothing
    /// new was added.
    pub duplicate: bool,
}

/// Proof of one delivery: ack, nack and extend need it. The queue makes it; build one
/// only from what [`WorkQueue::reserve`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub queue: String,
    pub job_id: String,
    /// Fresh for every delivery.
    pub token: String,
    /// The delivery this receipt is for (1 = first).
    pub attempt: u32,
    pub max_attempts: u32,
    pub backoff: Backoff,
}

/// A job in a consumer's hands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub queue: String,
    pub payload: Vec<u8>,
    /// This delivery's number: 1 on the first, 2 on the first retry or redelivery.
    pub attempt: u32,
    pub max_attempts: u32,
    pub priority: i8,
    pub enqueued_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Ack, nack or extend before this, or the job is delivered again.
    pub deadline: DateTime<Utc>,
    /// Why the previous delivery failed, if one did.
    pub last_error: Option<String>,
    pub receipt: Receipt,
}

impl Job {
    /// The payload as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.payload)
            .map_err(|e| Error::invalid("payload", format!("JSON of the expected shape ({e})")))
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Ready,
    Delayed,
    InFlight,
    Dead,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Delayed => "delayed",
            JobState::InFlight => "inflight",
            JobState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "ready" => JobState::Ready,
            "delayed" => JobState::Delayed,
            "inflight" => JobState::InFlight,
            "dead" => JobState::Dead,
            other => return Err(Error::internal(format!("stored job state {other:?} is not one this queue writes"))),
        })
    }
}

/// A job as an operator inspects it (a dead letter, or any job by id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    pub id: String,
    pub queue: String,
    pub state: JobState,
    pub payload: Vec<u8>,
    /// Deliveries so far.
    pub attempts: u32,
    pub max_attempts: u32,
    pub priority: i8,
    pub enqueued_at: DateTime<Utc>,
    /// Ready: since when; delayed: when due; in flight: the visibility deadline; dead:
    /// when it failed for good.
    pub at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub dedup_id: Option<String>,
    /// The consumer holding it, or that held it last.
    pub consumer: Option<String>,
    pub last_error: Option<String>,
}

/// What a nack asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The job's backoff (if attempts remain).
    Backoff,
    /// This wait instead (a server's `Retry-After`), if attempts remain.
    After(Duration),
    /// No retry: straight to the dead letters (a permanent failure).
    Never,
}

/// What a nack did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nacked {
    /// Delivered again (as attempt `attempt`) once `at` comes.
    Retrying { attempt: u32, at: DateTime<Utc> },
    /// Out of attempts (or `Retry::Never`): in the dead letters with the error.
    DeadLettered,
    /// Its retry would come after its expiry: dropped and counted as expired.
    Expired,
}

/// One dead letter by id, or all of a queue's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetters<'a> {
    One(&'a str),
    All,
}

/// A queue's depth and lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Deliverable now.
    pub ready: u64,
    /// Waiting for a delay or a retry backoff.
    pub delayed: u64,
    /// Reserved by a consumer, not yet acked or nacked.
    pub in_flight: u64,
    pub dead: u64,
    /// Dropped at their expiry without delivery, since the queue was first used.
    pub expired: u64,
    /// How long the oldest ready job has been ready: how far consumers lag.
    pub oldest_ready_age: Option<Duration>,
}

/// The durable work queue. Every method is one atomic step on the backend.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Adds a job to `queue` (created on first use). InvalidArgument for a bad name,
    /// payload or option.
    async fn enqueue(
        &self,
        queue: &str,
        payload: &[u8],
        options: &EnqueueOptions,
        now: DateTime<Utc>,
    ) -> Result<Enqueued>;

    /// Hands up to `max` ready jobs (highest priority, then longest ready, first) to
    /// `consumer` until `now + visibility`. Before that, in the same step: jobs whose
    /// visibility passed come back (or go to the dead letters when that was their last
    /// attempt), due delayed jobs become ready, and expired ones are dropped.
    async fn reserve_batch(
        &self,
        queue: &str,
        consumer: &str,
        visibility: Duration,
        max: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Job>>;

    /// [`reserve_batch`](Self::reserve_batch) of one.
    async fn reserve(
        &self,
        queue: &str,
        consumer: &str,
        visibility: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Job>> {
        Ok(self.reserve_batch(queue, consumer, visibility, 1, now).await?.into_iter().next())
    }

    /// The job is done: it leaves the queue (and frees its dedup id). FailedPrecondition
    /// when the receipt is no longer current: the job was redelivered after its timeout,
    /// dead-lettered, or already acked or nacked.
    async fn ack(&self, receipt: &Receipt, now: DateTime<Utc>) -> Result<()>;

    /// The delivery failed with `error`: retried per `retry` while attempts remain, else
    /// dead-lettered. FailedPrecondition as for [`ack`](Self::ack).
    async fn nack(&self, receipt: &Receipt, error: &str, retry: Retry, now: DateTime<Utc>) -> Result<Nacked>;

    /// Keeps the job for `visibility` more from `now` (long work); returns the new
    /// deadline. FailedPrecondition as for [`ack`](Self::ack).
    async fn extend(&self, receipt: &Receipt, visibility: Duration, now: DateTime<Utc>) -> Result<DateTime<Utc>>;

    /// Any job still in the queue, by id.
    async fn get_job(&self, queue: &str, id: &str) -> Result<Option<JobInfo>>;

    /// Dead letters, most recent failure first, `limit` (at most [`MAX_BATCH`]) from
    /// `offset`.
    async fn list_dead(&self, queue: &str, offset: usize, limit: usize) -> Result<Vec<JobInfo>>;

    /// Puts dead letters back as fresh ready jobs (attempts from zero, expiry counted
    /// from `now`); returns how many. NotFound for `One` naming no dead letter.
    async fn requeue_dead(&self, queue: &str, which: DeadLetters<'_>, now: DateTime<Utc>) -> Result<u64>;

    /// Deletes dead letters; returns how many. NotFound for `One` naming no dead letter.
    async fn purge_dead(&self, queue: &str, which: DeadLetters<'_>) -> Result<u64>;

    /// Depth and lag of `queue` at `now` (applying overdue timeouts, delays and expiries
    /// first, as a reserve would).
    async fn stats(&self, queue: &str, now: DateTime<Utc>) -> Result<QueueStats>;

    /// Every queue that was ever enqueued to, by name.
    async fn queues(&self) -> Result<Vec<String>>;
}

/// Checks a queue name: 1 to [`MAX_QUEUE_NAME`] of `[A-Za-z0-9._:-]`.
pub fn validate_queue_name(queue: &str) -> Result<()> {
    let ok = !queue.is_empty()
        && queue.len() <= MAX_QUEUE_NAME
        && queue.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok { Ok(()) } else { Err(Error::invalid("queue", format!("1 to {MAX_QUEUE_NAME} of A-Z a-z 0-9 . _ : -"))) }
}

/// Checks what every enqueue is given.
pub fn validate_enqueue(queue: &str, payload: &[u8], options: &EnqueueOptions) -> Result<()> {
    validate_queue_name(queue)?;
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Error::invalid("payload", format!("at most {MAX_PAYLOAD_BYTES} bytes, not {}", payload.len())));
    }
    options.validate()
}

/// Checks what every reserve is given.
pub fn validate_reserve(queue: &str, consumer: &str, visibility: Duration, max: usize) -> Result<()> {
    validate_queue_name(queue)?;
    if consumer.is_empty() || consumer.len() > 200 {
        return Err(Error::invalid("consumer", "1 to 200 bytes"));
    }
    validate_visibility(visibility)?;
    if !(1..=MAX_BATCH).contains(&max) {
        return Err(Error::invalid("max", format!("between 1 and {MAX_BATCH}")));
    }
    Ok(())
}

/// Checks a visibility timeout: more than 0, at most [`MAX_VISIBILITY`].
pub fn validate_visibility(visibility: Duration) -> Result<()> {
    if visibility <= Duration::zero() || visibility > MAX_VISIBILITY {
        return Err(Error::invalid("visibility", "more than 0 and at most 12 hours"));
    }
    Ok(())
}

/// When a nacked delivery comes back, or None when it goes to the dead letters.
pub fn retry_at(receipt: &Receipt, retry: Retry, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
    if receipt.attempt >= receipt.max_attempts {
        return Ok(None);
    }
    Ok(match retry {
        Retry::Never => None,
        Retry::Backoff => Some(now + receipt.backoff.delay(receipt.attempt, &receipt.job_id)),
        Retry::After(d) if d >= Duration::zero() && d <= MAX_DELAY => Some(now + d),
        Retry::After(_) => return Err(Error::invalid("retry", "a wait between 0 and 366 days")),
    })
}

/// `error` cut to [`MAX_ERROR_BYTES`] at a character boundary.
pub fn clip_error(error: &str) -> &str {
    if error.len() <= MAX_ERROR_BYTES {
        return error;
    }
    let mut end = MAX_ERROR_BYTES;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

/// What a lapsed visibility timeout records as the delivery's error.
pub fn timeout_error(consumer: &str) -> String {
    format!("no ack within the visibility timeout (consumer {consumer})")
}

/// The error for a receipt that is no longer current, naming why when known.
pub fn stale_receipt(receipt: &Receipt, state: Option<JobState>) -> Error {
    let why = match state {
        None => "it is no longer in the queue (acked, purged or expired)".to_string(),
        Some(JobState::Dead) => "it is in the dead letters".to_string(),
        Some(JobState::InFlight) => "its visibility timeout passed and it was delivered again".to_string(),
        Some(s) => format!("its visibility timeout passed or it was nacked, and it is now {}", s.as_str()),
    };
    Error::precondition(format!(
        "job {:?} of queue {:?}: delivery {} is no longer current: {why}",
        receipt.job_id, receipt.queue, receipt.attempt
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_its_base_up_to_the_cap() {
        let b = Backoff::default();
        let waits: Vec<i64> = (1..=4).map(|a| b.delay(a, "j").num_milliseconds()).collect();
        assert_eq!(waits, [1000, 2000, 4000, 8000]);
        assert_eq!(b.delay(60, "j"), MAX_BACKOFF);
        let jittered = Backoff { jitter: true, ..b };
        for attempt in 1..=5 {
            let full = b.delay(attempt, "j");
            let d = jittered.delay(attempt, "j");
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d} outside [{}, {full}]", full / 2);
            assert_eq!(d, jittered.delay(attempt, "j"), "the same job and attempt wait the same");
        }
        let spread: std::collections::HashSet<i64> =
            (0..20).map(|i| jittered.delay(3, &format!("job-{i}")).num_milliseconds()).collect();
        assert!(spread.len() > 10, "jitter spreads jobs that failed together: {spread:?}");
    }

    #[test]
    fn bad_names_and_options_are_refused_naming_the_field() {
        assert!(validate_queue_name("webhooks.delivery:v1").is_ok());
        for bad in ["", "a b", "ä", &"q".repeat(65)] {
            assert!(validate_queue_name(bad).unwrap_err().message.starts_with("queue:"), "{bad:?}");
        }
        let bad = EnqueueOptions { max_attempts: 0, ..Default::default() };
        assert!(bad.validate().unwrap_err().message.starts_with("max_attempts:"));
        let bad = EnqueueOptions { delay: Duration::seconds(-1), ..Default::default() };
        assert!(bad.validate().unwrap_err().message.starts_with("delay:"));
        let err = validate_enqueue("q", &vec![0; MAX_PAYLOAD_BYTES + 1], &EnqueueOptions::default()).unwrap_err();
        assert!(err.message.starts_with("payload:"), "{err}");
        assert!(validate_reserve("q", "c", Duration::zero(), 1).unwrap_err().message.starts_with("visibility:"));
    }

    #[test]
    fn long_errors_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR_BYTES);
        let cut = clip_error(&long);
        assert!(cut.len() <= MAX_ERROR_BYTES && cut.chars().all(|c| c == 'é'));
    }
}
