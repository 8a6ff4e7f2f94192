//! The work queue's conformance suite: what every [`WorkQueue`] must do, run unchanged on
//! SQLite and on a real Redis. A backend runs it with
//! [`queue_conformance_tests!`](crate::queue_conformance_tests), given an async factory
//! that returns a fresh, empty [`QueueHarness`]. Time moves by passing later instants.
//!
//! [`fill_before_restart`] and [`check_after_restart`] are for each backend's own restart
//! test: the first leaves jobs in every state, the second finds them all on a queue
//! reopened (or a server restarted) over the same data.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration, Utc};
use vox_domain::ErrorCode;

use crate::queue::*;

/// A fresh, empty queue backend and whatever must live as long as it (a temp dir).
pub struct QueueHarness {
    pub queue: Arc<dyn WorkQueue>,
    pub guard: Box<dyn std::any::Any + Send>,
}

/// Generates one `#[tokio::test]` per queue conformance check for a backend.
#[macro_export]
macro_rules! queue_conformance_tests {
    ($factory:path) => {
        $crate::queue_conformance_tests!(@each $factory;
            jobs_round_trip_and_leave_on_ack, higher_priority_first_then_first_in_first_out,
            delayed_jobs_wait_until_due, expired_jobs_are_never_delivered_and_are_counted,
            nacks_retry_with_exponential_backoff_then_dead_letter, nacks_may_set_the_wait_or_refuse_retries,
            a_killed_consumer_s_job_is_redelivered_once_its_timeout_passes,
            a_timeout_on_the_last_attempt_dead_letters_the_job, receipts_are_good_for_one_outcome,
            extend_keeps_a_slow_job_in_hand, dedup_ids_return_the_job_already_queued,
            dead_letters_are_inspected_requeued_and_purged, stats_report_depth_and_the_oldest_ready_age,
            queues_are_separate, reserve_batch_hands_out_distinct_jobs, bad_input_is_refused_naming_the_field,
            ten_thousand_jobs_from_four_producers_reach_four_consumers_exactly_once);
    };
    (@each $factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let harness = $factory().await;
                $crate::conformance::queue::$name(&harness.queue, $crate::conformance::t0()).await;
                drop(harness);
            }
        )*
    };
}

type Q = Arc<dyn WorkQueue>;

fn secs(s: i64) -> Duration {
    Duration::seconds(s)
}

async fn put(q: &Q, queue: &str, payload: &str, options: EnqueueOptions, now: DateTime<Utc>) -> String {
    let e = q.enqueue(queue, payload.as_bytes(), &options, now).await.unwrap();
    assert!(!e.duplicate);
    e.id
}

async fn take(q: &Q, queue: &str, now: DateTime<Utc>) -> Option<Job> {
    q.reserve(queue, "worker-1", secs(30), now).await.unwrap()
}

fn text(job: &Job) -> &str {
    std::str::from_utf8(&job.payload).unwrap()
}

async fn stats(q: &Q, queue: &str, now: DateTime<Utc>) -> (u64, u64, u64, u64, u64) {
    let s = q.stats(queue, now).await.unwrap();
    (s.ready, s.delayed, s.in_flight, s.dead, s.expired)
}

fn precondition<T: std::fmt::Debug>(r: vox_domain::Result<T>, what: &str) {
    let e = r.expect_err(what);
    assert_eq!(e.code, ErrorCode::FailedPrecondition, "{what}: {e}");
}

/// A job goes in, comes out whole with its first delivery's details, and leaves on ack.
pub async fn jobs_round_trip_and_leave_on_ack(q: &Q, now: DateTime<Utc>) {
    let payload = serde_json::json!({"event": "call.ended", "call_id": "ca_1"});
    let bytes = serde_json::to_vec(&payload).unwrap();
    let e = q.enqueue("webhooks", &bytes, &EnqueueOptions::default(), now).await.unwrap();
    assert_eq!(stats(q, "webhooks", now).await, (1, 0, 0, 0, 0));

    let later = now + secs(2);
    let job = q.reserve("webhooks", "worker-1", secs(30), later).await.unwrap().expect("a ready job");
    assert_eq!(job.id, e.id);
    assert_eq!((job.queue.as_str(), job.attempt, job.max_attempts), ("webhooks", 1, DEFAULT_MAX_ATTEMPTS));
    assert_eq!(job.json::<serde_json::Value>().unwrap(), payload);
    assert_eq!((job.enqueued_at, job.deadline, job.last_error.as_deref()), (now, later + secs(30), None));
    assert_eq!((job.receipt.job_id.as_str(), job.receipt.attempt), (e.id.as_str(), 1));
    let info = q.get_job("webhooks", &e.id).await.unwrap().unwrap();
    assert_eq!((info.state, info.attempts, info.consumer.as_deref()), (JobState::InFlight, 1, Some("worker-1")));
    assert_eq!(stats(q, "webhooks", later).await, (0, 0, 1, 0, 0));
    assert!(take(q, "webhooks", later).await.is_none(), "a job in hand is not handed out twice");

    q.ack(&job.receipt, later).await.unwrap();
    assert_eq!(q.get_job("webhooks", &e.id).await.unwrap(), None);
    assert_eq!(stats(q, "webhooks", later + secs(60)).await, (0, 0, 0, 0, 0));
    assert!(take(q, "webhooks", later + secs(60)).await.is_none(), "an acked job never comes back");
    assert_eq!(q.queues().await.unwrap(), ["webhooks"]);
}

/// Higher priority first; equal priorities in the order they became ready.
pub async fn higher_priority_first_then_first_in_first_out(q: &Q, now: DateTime<Utc>) {
    let with = |priority| EnqueueOptions { priority, ..Default::default() };
    put(q, "q", "low", with(-5), now).await;
    put(q, "q", "normal-1", with(0), now).await;
    put(q, "q", "urgent", with(100), now + Duration::milliseconds(1)).await;
    put(q, "q", "normal-2", with(0), now).await;
    for i in 3..8 {
        put(q, "q", &format!("normal-{i}"), with(0), now + Duration::milliseconds(2)).await;
    }
    let mut order = Vec::new();
    while let Some(job) = take(q, "q", now + secs(1)).await {
        order.push(text(&job).to_string());
    }
    let expected =
        ["urgent", "normal-1", "normal-2", "normal-3", "normal-4", "normal-5", "normal-6", "normal-7", "low"];
    assert_eq!(order, expected);
}

/// A delayed job is not delivered before it is due, then is, behind jobs ready earlier.
pub async fn delayed_jobs_wait_until_due(q: &Q, now: DateTime<Utc>) {
    put(q, "q", "later", EnqueueOptions { delay: secs(10), ..Default::default() }, now).await;
    assert!(take(q, "q", now + secs(9)).await.is_none());
    assert_eq!(stats(q, "q", now + secs(9)).await, (0, 1, 0, 0, 0));
    assert_eq!(
        q.get_job("q", &put(q, "q", "now", EnqueueOptions::default(), now + secs(9)).await)
            .await
            .unwrap()
            .unwrap()
            .state,
        JobState::Ready
    );
    let s = q.stats("q", now + secs(12)).await.unwrap();
    assert_eq!((s.ready, s.delayed), (2, 0), "due at 10 s: ready at 12 s");
    assert_eq!(s.oldest_ready_age, Some(secs(3)), "ready since it was enqueued at 9 s");
    // Ready at 9 s beats due at 10 s.
    assert_eq!(text(&take(q, "q", now + secs(12)).await.unwrap()), "now");
    assert_eq!(text(&take(q, "q", now + secs(12)).await.unwrap()), "later");
}

/// A job past its expiry is never delivered, whether it waited ready, delayed or for a
/// retry, and each is counted.
pub async fn expired_jobs_are_never_delivered_and_are_counted(q: &Q, now: DateTime<Utc>) {
    let ttl = |ttl, delay| EnqueueOptions { ttl: Some(secs(ttl)), delay: secs(delay), ..Default::default() };
    put(q, "q", "stale", ttl(5, 0), now).await;
    put(q, "q", "never-due", ttl(5, 10), now).await;
    let kept = put(q, "q", "fresh", ttl(60, 0), now).await;
    assert_eq!(stats(q, "q", now + secs(4)).await, (2, 1, 0, 0, 0));
    let job = take(q, "q", now + secs(11)).await.unwrap();
    assert_eq!((job.id.as_str(), text(&job)), (kept.as_str(), "fresh"));
    assert_eq!(job.expires_at, Some(now + secs(60)));
    assert_eq!(stats(q, "q", now + secs(11)).await, (0, 0, 1, 0, 2));
    // In hand past its expiry: the delivery stands; a retry after the expiry does not.
    let outcome = q.nack(&job.receipt, "endpoint down", Retry::After(secs(50)), now + secs(11)).await.unwrap();
    assert_eq!(outcome, Nacked::Expired);
    assert_eq!(stats(q, "q", now + secs(11)).await, (0, 0, 0, 0, 3));
    assert_eq!(q.get_job("q", &kept).await.unwrap(), None);
    assert!(take(q, "q", now + secs(100)).await.is_none());
}

/// Each failure waits twice the last (1 s, 2 s), and the third failure dead-letters the
/// job with its last error.
pub async fn nacks_retry_with_exponential_backoff_then_dead_letter(q: &Q, now: DateTime<Utc>) {
    let id = put(q, "q", "hook", EnqueueOptions::default(), now).await;
    let mut at = now;
    for (attempt, wait) in [(1, 1), (2, 2)] {
        let job = take(q, "q", at).await.unwrap();
        assert_eq!((job.id.as_str(), job.attempt), (id.as_str(), attempt));
        if attempt > 1 {
            assert_eq!(job.last_error.as_deref(), Some(format!("HTTP 503 on attempt {}", attempt - 1).as_str()));
        }
        let outcome =
            q.nack(&job.receipt, &format!("HTTP 503 on attempt {attempt}"), Retry::Backoff, at).await.unwrap();
        assert_eq!(outcome, Nacked::Retrying { attempt: attempt + 1, at: at + secs(wait) });
        assert_eq!(stats(q, "q", at).await, (0, 1, 0, 0, 0));
        assert!(take(q, "q", at + secs(wait) - Duration::milliseconds(1)).await.is_none(), "not before its backoff");
        at += secs(wait);
    }
    let job = take(q, "q", at).await.unwrap();
    assert_eq!(job.attempt, 3);
    let outcome = q.nack(&job.receipt, "HTTP 503 on attempt 3", Retry::Backoff, at).await.unwrap();
    assert_eq!(outcome, Nacked::DeadLettered);
    assert_eq!(stats(q, "q", at + secs(3600)).await, (0, 0, 0, 1, 0));
    assert!(take(q, "q", at + secs(3600)).await.is_none(), "dead letters are not delivered");
    let dead = q.list_dead("q", 0, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!((d.id.as_str(), d.state, d.attempts, d.at), (id.as_str(), JobState::Dead, 3, at));
    assert_eq!((d.last_error.as_deref(), d.payload.as_slice()), (Some("HTTP 503 on attempt 3"), b"hook".as_slice()));

    // A configured base: 10 s, then 20 s.
    let slow = EnqueueOptions { backoff: Backoff { base: secs(10), jitter: false }, ..Default::default() };
    put(q, "slow", "x", slow, now).await;
    let job = take(q, "slow", now).await.unwrap();
    let outcome = q.nack(&job.receipt, "e", Retry::Backoff, now).await.unwrap();
    assert_eq!(outcome, Nacked::Retrying { attempt: 2, at: now + secs(10) });
    let job = take(q, "slow", now + secs(10)).await.unwrap();
    let outcome = q.nack(&job.receipt, "e", Retry::Backoff, now + secs(10)).await.unwrap();
    assert_eq!(outcome, Nacked::Retrying { attempt: 3, at: now + secs(30) });
}

/// A nack may name its own wait (`Retry-After`) or refuse retries (a permanent failure).
pub async fn nacks_may_set_the_wait_or_refuse_retries(q: &Q, now: DateTime<Utc>) {
    put(q, "q", "a", EnqueueOptions { max_attempts: 5, ..Default::default() }, now).await;
    let job = take(q, "q", now).await.unwrap();
    let outcome = q.nack(&job.receipt, "HTTP 429", Retry::After(secs(120)), now).await.unwrap();
    assert_eq!(outcome, Nacked::Retrying { attempt: 2, at: now + secs(120) });
    assert!(take(q, "q", now + secs(119)).await.is_none());
    let job = take(q, "q", now + secs(120)).await.unwrap();
    let outcome = q.nack(&job.receipt, "HTTP 410 Gone", Retry::Never, now + secs(120)).await.unwrap();
    assert_eq!(outcome, Nacked::DeadLettered, "attempts remained, but the failure is permanent");
    let d = q.get_job("q", &job.id).await.unwrap().unwrap();
    assert_eq!((d.state, d.last_error.as_deref()), (JobState::Dead, Some("HTTP 410 Gone")));
    // Immediately again.
    put(q, "r", "b", EnqueueOptions::default(), now).await;
    let job = take(q, "r", now).await.unwrap();
    assert_eq!(
        q.nack(&job.receipt, "e", Retry::After(Duration::zero()), now).await.unwrap(),
        Nacked::Retrying { attempt: 2, at: now }
    );
    assert_eq!(take(q, "r", now).await.unwrap().attempt, 2);
}

/// A consumer task dies holding a job: nobody else gets it while its visibility lasts;
/// once it passes, the job is delivered again (attempt 2, saying why), and the dead
/// consumer's receipt can neither ack, nack nor extend it.
pub async fn a_killed_consumer_s_job_is_redelivered_once_its_timeout_passes(q: &Q, now: DateTime<Utc>) {
    let id = put(q, "q", "post-process ca_7", EnqueueOptions::default(), now).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let consumer = {
        let q = q.clone();
        tokio::spawn(async move {
            let job = q.reserve("q", "doomed-worker", secs(30), now).await.unwrap();
            let _ = tx.send(job);
            // Works forever: killed before it acks.
            std::future::pending::<()>().await;
        })
    };
    let held = rx.await.unwrap().expect("the consumer got the job");
    consumer.abort();
    assert!(consumer.await.unwrap_err().is_cancelled());

    assert!(take(q, "q", now + secs(29)).await.is_none(), "still invisible before its timeout");
    assert_eq!(stats(q, "q", now + secs(29)).await, (0, 0, 1, 0, 0));
    let again = q.reserve("q", "worker-2", secs(30), now + secs(30)).await.unwrap().expect("redelivered");
    assert_eq!((again.id.as_str(), again.attempt, text(&again)), (id.as_str(), 2, "post-process ca_7"));
    assert_eq!(again.last_error, Some(timeout_error("doomed-worker")));
    assert_ne!(again.receipt.token, held.receipt.token);

    let late = now + secs(31);
    precondition(q.ack(&held.receipt, late).await, "the dead consumer's ack after redelivery");
    precondition(q.nack(&held.receipt, "late", Retry::Backoff, late).await, "its nack");
    precondition(q.extend(&held.receipt, secs(30), late).await, "its extend");
    assert_eq!(stats(q, "q", late).await, (0, 0, 1, 0, 0), "the new delivery is untouched");
    q.ack(&again.receipt, late).await.unwrap();
    assert_eq!(stats(q, "q", late + secs(600)).await, (0, 0, 0, 0, 0));
    assert!(take(q, "q", late + secs(600)).await.is_none(), "acked once, delivered no more");
}

/// A lapsed timeout is a failed attempt: on the last one the job is dead-lettered.
pub async fn a_timeout_on_the_last_attempt_dead_letters_the_job(q: &Q, now: DateTime<Utc>) {
    let id = put(q, "q", "once", EnqueueOptions { max_attempts: 1, ..Default::default() }, now).await;
    let job = q.reserve("q", "w-9", secs(10), now).await.unwrap().unwrap();
    assert_eq!(stats(q, "q", now + secs(10)).await, (0, 0, 0, 1, 0));
    let d = q.get_job("q", &id).await.unwrap().unwrap();
    assert_eq!((d.state, d.last_error), (JobState::Dead, Some(timeout_error("w-9"))));
    precondition(q.ack(&job.receipt, now + secs(11)).await, "an ack after the job was dead-lettered");
}

/// A receipt settles its delivery once: a second ack, or a nack after an ack, is refused.
pub async fn receipts_are_good_for_one_outcome(q: &Q, now: DateTime<Utc>) {
    put(q, "q", "a", EnqueueOptions::default(), now).await;
    let job = take(q, "q", now).await.unwrap();
    q.ack(&job.receipt, now).await.unwrap();
    precondition(q.ack(&job.receipt, now).await, "a second ack");
    precondition(q.nack(&job.receipt, "e", Retry::Backoff, now).await, "a nack after the ack");

    put(q, "q", "b", EnqueueOptions::default(), now).await;
    let job = take(q, "q", now).await.unwrap();
    q.nack(&job.receipt, "e", Retry::Backoff, now).await.unwrap();
    precondition(q.ack(&job.receipt, now).await, "an ack after the nack");
    let forged = Receipt { token: "forged".into(), ..job.receipt.clone() };
    let retried = take(q, "q", now + secs(1)).await.unwrap();
    precondition(q.ack(&forged, now + secs(1)).await, "a made-up token");
    q.ack(&retried.receipt, now + secs(1)).await.unwrap();
}

/// A consumer on long work extends its hold, and nobody else gets the job meanwhile.
pub async fn extend_keeps_a_slow_job_in_hand(q: &Q, now: DateTime<Utc>) {
    put(q, "q", "transcode", EnqueueOptions::default(), now).await;
    let job = take(q, "q", now).await.unwrap();
    let deadline = q.extend(&job.receipt, secs(60), now + secs(20)).await.unwrap();
    assert_eq!(deadline, now + secs(80));
    assert!(take(q, "q", now + secs(79)).await.is_none());
    assert_eq!(q.get_job("q", &job.id).await.unwrap().unwrap().at, now + secs(80));
    q.ack(&job.receipt, now + secs(79)).await.unwrap();
    assert_eq!(stats(q, "q", now + secs(200)).await, (0, 0, 0, 0, 0));
}

/// The same dedup id enqueued again returns the job already there, in any state but
/// gone; other queues have their own ids.
pub async fn dedup_ids_return_the_job_already_queued(q: &Q, now: DateTime<Utc>) {
    let once = EnqueueOptions { dedup_id: Some("ev_1:ep_1".into()), ..Default::default() };
    let first = q.enqueue("hooks", b"a", &once, now).await.unwrap();
    let again = q.enqueue("hooks", b"b", &once, now).await.unwrap();
    assert_eq!(again, Enqueued { id: first.id.clone(), duplicate: true });
    assert_eq!(stats(q, "hooks", now).await, (1, 0, 0, 0, 0));
    let other = q.enqueue("other", b"c", &once, now).await.unwrap();
    assert!(!other.duplicate);

    let job = take(q, "hooks", now).await.unwrap();
    assert_eq!(text(&job), "a");
    assert!(q.enqueue("hooks", b"d", &once, now).await.unwrap().duplicate, "in flight");
    q.ack(&job.receipt, now).await.unwrap();
    let after = q.enqueue("hooks", b"e", &once, now).await.unwrap();
    assert!(!after.duplicate, "an acked job frees its dedup id");
    assert_ne!(after.id, first.id);
}

/// Dead letters list newest first, requeue as fresh jobs (one or all), and purge.
pub async fn dead_letters_are_inspected_requeued_and_purged(q: &Q, now: DateTime<Utc>) {
    let mut ids = Vec::new();
    for i in 0..4 {
        let at = now + secs(i);
        put(q, "q", &format!("job-{i}"), EnqueueOptions::default(), at).await;
        let job = take(q, "q", at).await.unwrap();
        assert_eq!(q.nack(&job.receipt, &format!("bad {i}"), Retry::Never, at).await.unwrap(), Nacked::DeadLettered);
        ids.push(job.id);
    }
    let page: Vec<String> = q.list_dead("q", 1, 2).await.unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(page, [ids[2].clone(), ids[1].clone()], "newest first, from the offset");

    let later = now + secs(100);
    assert_eq!(q.requeue_dead("q", DeadLetters::One(&ids[0]), later).await.unwrap(), 1);
    let e = q.requeue_dead("q", DeadLetters::One("no-such-job"), later).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound, "{e}");
    let e = q.requeue_dead("q", DeadLetters::One(&ids[0]), later).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound, "no longer dead: {e}");
    assert_eq!(stats(q, "q", later).await, (1, 0, 0, 3, 0));
    let job = take(q, "q", later).await.unwrap();
    assert_eq!((job.id.as_str(), job.attempt, text(&job)), (ids[0].as_str(), 1, "job-0"), "a fresh start");
    q.ack(&job.receipt, later).await.unwrap();

    assert_eq!(q.purge_dead("q", DeadLetters::One(&ids[1])).await.unwrap(), 1);
    assert_eq!(q.get_job("q", &ids[1]).await.unwrap(), None);
    assert_eq!(q.purge_dead("q", DeadLetters::One(&ids[1])).await.unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(q.requeue_dead("q", DeadLetters::All, later).await.unwrap(), 2);
    assert_eq!(stats(q, "q", later).await, (2, 0, 0, 0, 0));
    for _ in 0..2 {
        let job = take(q, "q", later).await.unwrap();
        q.nack(&job.receipt, "still bad", Retry::Never, later).await.unwrap();
    }
    assert_eq!(q.purge_dead("q", DeadLetters::All).await.unwrap(), 2);
    assert_eq!(stats(q, "q", later).await, (0, 0, 0, 0, 0));
    assert!(q.list_dead("q", 0, 10).await.unwrap().is_empty());
}

/// Depth by state, expiries counted, and how long the oldest ready job has waited.
pub async fn stats_report_depth_and_the_oldest_ready_age(q: &Q, now: DateTime<Utc>) {
    assert_eq!(q.stats("q", now).await.unwrap(), QueueStats::default(), "an unknown queue is empty");
    let plain = EnqueueOptions::default;
    put(q, "q", "held", plain(), now).await;
    let held = take(q, "q", now).await.unwrap();
    put(q, "q", "dead", plain(), now).await;
    let dead = take(q, "q", now).await.unwrap();
    q.nack(&dead.receipt, "e", Retry::Never, now).await.unwrap();
    put(q, "q", "oldest", EnqueueOptions { priority: -1, ..plain() }, now + secs(2)).await;
    put(q, "q", "newer", EnqueueOptions { priority: 9, ..plain() }, now + secs(5)).await;
    put(q, "q", "delayed", EnqueueOptions { delay: secs(60), ..plain() }, now).await;
    put(q, "q", "expiring", EnqueueOptions { ttl: Some(secs(3)), ..plain() }, now).await;
    let s = q.stats("q", now + secs(10)).await.unwrap();
    assert_eq!(
        s,
        QueueStats { ready: 2, delayed: 1, in_flight: 1, dead: 1, expired: 1, oldest_ready_age: Some(secs(8)) }
    );
    q.ack(&held.receipt, now + secs(10)).await.unwrap();
}

/// Jobs of one queue are never delivered from another.
pub async fn queues_are_separate(q: &Q, now: DateTime<Utc>) {
    put(q, "a", "for-a", EnqueueOptions::default(), now).await;
    assert!(take(q, "b", now).await.is_none());
    assert_eq!(text(&take(q, "a", now).await.unwrap()), "for-a");
    put(q, "b", "for-b", EnqueueOptions::default(), now).await;
    assert_eq!(q.queues().await.unwrap(), ["a", "b"]);
}

/// A batch reserve hands out distinct jobs, each with its own receipt, in order.
pub async fn reserve_batch_hands_out_distinct_jobs(q: &Q, now: DateTime<Utc>) {
    for i in 0..5 {
        put(q, "q", &format!("{i}"), EnqueueOptions::default(), now).await;
    }
    let batch = q.reserve_batch("q", "w", secs(30), 3, now).await.unwrap();
    let got: Vec<&str> = batch.iter().map(text).collect();
    assert_eq!(got, ["0", "1", "2"]);
    let tokens: HashSet<&str> = batch.iter().map(|j| j.receipt.token.as_str()).collect();
    assert_eq!(tokens.len(), 3);
    let rest = q.reserve_batch("q", "w", secs(30), 10, now).await.unwrap();
    assert_eq!(rest.iter().map(text).collect::<Vec<_>>(), ["3", "4"]);
    for job in batch.iter().chain(&rest) {
        q.ack(&job.receipt, now).await.unwrap();
    }
}

/// Bad input is refused with InvalidArgument naming what was wrong.
pub async fn bad_input_is_refused_naming_the_field(q: &Q, now: DateTime<Utc>) {
    let field = |r: vox_domain::Result<Enqueued>| {
        let e = r.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
        e.message.split(':').next().unwrap_or_default().to_string()
    };
    let o = EnqueueOptions::default();
    assert_eq!(field(q.enqueue("bad name", b"x", &o, now).await), "queue");
    assert_eq!(field(q.enqueue("q", &vec![b'x'; MAX_PAYLOAD_BYTES + 1], &o, now).await), "payload");
    let zero = EnqueueOptions { max_attempts: 0, ..Default::default() };
    assert_eq!(field(q.enqueue("q", b"x", &zero, now).await), "max_attempts");
    let e = q.reserve("q", "w", Duration::zero(), now).await.unwrap_err();
    assert!(e.message.starts_with("visibility:"), "{e}");
    put(q, "q", "x", o, now).await;
    let job = take(q, "q", now).await.unwrap();
    let e = q.nack(&job.receipt, "e", Retry::After(secs(-1)), now).await.unwrap_err();
    assert!(e.message.starts_with("retry:"), "{e}");
    q.ack(&job.receipt, now).await.unwrap();
    assert_eq!(q.get_job("q", "no-such-job").await.unwrap(), None);
}

/// The producer-consumer test: 10,000 jobs from 4 producers, taken concurrently by 4
/// consumers, each delivered and acknowledged exactly once.
pub async fn ten_thousand_jobs_from_four_producers_reach_four_consumers_exactly_once(q: &Q, now: DateTime<Utc>) {
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 2500;
    const TOTAL: usize = PRODUCERS * PER_PRODUCER;
    let started = std::time::Instant::now();
    let acked = Arc::new(AtomicUsize::new(0));
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let q = q.clone();
        producers.push(tokio::spawn(async move {
            for i in 0..PER_PRODUCER {
                q.enqueue("load", format!("{p}-{i}").as_bytes(), &EnqueueOptions::default(), now).await.unwrap();
            }
        }));
    }
    let mut consumers = Vec::new();
    for c in 0..4 {
        let (q, acked) = (q.clone(), acked.clone());
        consumers.push(tokio::spawn(async move {
            let name = format!("consumer-{c}");
            let mut seen = Vec::new();
            while acked.load(Ordering::SeqCst) < TOTAL {
                match q.reserve("load", &name, secs(300), now).await.unwrap() {
                    Some(job) => {
                        assert_eq!(job.attempt, 1, "delivered once: {job:?}");
                        q.ack(&job.receipt, now).await.unwrap();
                        acked.fetch_add(1, Ordering::SeqCst);
                        seen.push((job.id.clone(), text(&job).to_string()));
                    }
                    None => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
                }
            }
            seen
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    let mut ids = HashSet::new();
    let mut payloads = HashSet::new();
    let mut per_consumer = Vec::new();
    for c in consumers {
        let seen = c.await.unwrap();
        per_consumer.push(seen.len());
        for (id, payload) in seen {
            assert!(ids.insert(id.clone()), "job {id} was delivered twice");
            assert!(payloads.insert(payload.clone()), "payload {payload} was delivered twice");
        }
    }
    assert_eq!(ids.len(), TOTAL);
    let expected: HashSet<String> =
        (0..PRODUCERS).flat_map(|p| (0..PER_PRODUCER).map(move |i| format!("{p}-{i}"))).collect();
    assert_eq!(payloads, expected, "every job arrived");
    assert_eq!(stats(q, "load", now + secs(3600)).await, (0, 0, 0, 0, 0));
    println!("{TOTAL} jobs, 4 producers, 4 consumers ({per_consumer:?} each): {:?}", started.elapsed());
}

/// Leaves `queue` with a job in every state at `now`: ready (2, priorities 5 and 0),
/// delayed by 60 s, in flight (reserved for 30 s), and dead. Returns the in-flight
/// job's receipt.
pub async fn fill_before_restart(q: &Q, queue: &str, now: DateTime<Utc>) -> Receipt {
    put(q, queue, "dead", EnqueueOptions::default(), now).await;
    let job = take(q, queue, now).await.unwrap();
    q.nack(&job.receipt, "HTTP 500", Retry::Never, now).await.unwrap();
    put(q, queue, "held", EnqueueOptions { priority: 100, ..Default::default() }, now).await;
    let held = take(q, queue, now).await.unwrap();
    put(q, queue, "ready-low", EnqueueOptions::default(), now).await;
    put(q, queue, "ready-high", EnqueueOptions { priority: 5, ..Default::default() }, now).await;
    put(q, queue, "delayed", EnqueueOptions { delay: secs(60), ..Default::default() }, now).await;
    assert_eq!(stats(q, queue, now).await, (2, 1, 1, 1, 0));
    held.receipt
}

/// After a restart over the data [`fill_before_restart`] left: every job is where it
/// was, in order; the held job's timeout still runs, and once it is delivered again the
/// receipt from before the restart is refused.
pub async fn check_after_restart(q: &Q, queue: &str, held: &Receipt, now: DateTime<Utc>) {
    assert_eq!(stats(q, queue, now).await, (2, 1, 1, 1, 0), "nothing lost in the restart");
    assert_eq!(q.list_dead(queue, 0, 10).await.unwrap()[0].last_error.as_deref(), Some("HTTP 500"));
    let high = take(q, queue, now).await.unwrap();
    assert_eq!(text(&high), "ready-high");
    q.ack(&high.receipt, now).await.unwrap();
    let redelivered = take(q, queue, now + secs(30)).await.unwrap();
    assert_eq!((text(&redelivered), redelivered.attempt), ("held", 2), "the held job came back after its timeout");
    precondition(q.ack(held, now + secs(30)).await, "the pre-restart receipt after redelivery");
    q.ack(&redelivered.receipt, now + secs(30)).await.unwrap();
    let low = take(q, queue, now + secs(30)).await.unwrap();
    assert_eq!(text(&low), "ready-low");
    q.ack(&low.receipt, now + secs(30)).await.unwrap();
    assert_eq!(text(&take(q, queue, now + secs(60)).await.unwrap()), "delayed");
}
