//! The events waiting for Redis to take them, with a bound. Publishing never waits (it is
//! called from request handlers), so while Redis is slow or down events pile up here; an
//! unbounded queue would grow with every change until the process runs out of memory.
//! At [`PUBLISH_QUEUE_CAP`] the oldest event goes: events only say "this changed, look
//! again", so a dropped one costs a watcher a refresh, which the gap marker sent once
//! Redis is back triggers everywhere.

use std::collections::VecDeque;
use std::sync::Mutex;

/// The most events held while Redis does not take them: minutes of a busy cluster's
/// changes, about a megabyte.
pub const PUBLISH_QUEUE_CAP: usize = 10_000;

#[derive(Debug)]
pub(crate) struct PublishQueue {
    cap: usize,
    state: Mutex<State>,
    /// Rung (without blocking) on every push; the publisher waits on it.
    doorbell: tokio::sync::mpsc::Sender<()>,
}

#[derive(Debug, Default)]
struct State {
    events: VecDeque<String>,
    /// Dropped since the queue was made.
    dropped: u64,
    /// Dropped since the publisher last reported it.
    unreported: u64,
}

impl PublishQueue {
    /// A queue of at most `cap` events, and the doorbell its publisher waits on (closed
    /// when the queue is dropped).
    pub(crate) fn new(cap: usize) -> (Self, tokio::sync::mpsc::Receiver<()>) {
        let (doorbell, rings) = tokio::sync::mpsc::channel(1);
        (PublishQueue { cap: cap.max(1), state: Mutex::new(State::default()), doorbell }, rings)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues one event; when the queue is full the oldest one is dropped.
    pub(crate) fn push(&self, event: String) {
        {
            let mut s = self.state();
            if s.events.len() >= self.cap {
                s.events.pop_front();
                s.dropped += 1;
                s.unreported += 1;
                if s.unreported == 1 {
                    tracing::warn!(
                        cap = self.cap,
                        "redis: the event queue is full (redis is slow or down); dropping the oldest events"
                    );
                }
            }
            s.events.push_back(event);
        }
        let _ = self.doorbell.try_send(());
    }

    /// The oldest queued event, if any.
    pub(crate) fn pop(&self) -> Option<String> {
        self.state().events.pop_front()
    }

    /// How many events were dropped since the last call.
    pub(crate) fn take_unreported(&self) -> u64 {
        std::mem::take(&mut self.state().unreported)
    }

    pub(crate) fn len(&self) -> usize {
        self.state().events.len()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.state().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts() {
        let (q, _rings) = PublishQueue::new(3);
        for i in 0..5 {
            q.push(format!("node:{i}"));
        }
        assert_eq!((q.len(), q.dropped()), (3, 2));
        assert_eq!(q.pop().as_deref(), Some("node:2"), "the newest three are kept, in order");
        assert_eq!(q.take_unreported(), 2);
        assert_eq!(q.take_unreported(), 0, "reported once");
        assert_eq!(q.dropped(), 2, "the total stays");
    }
}
