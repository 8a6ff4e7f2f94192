//! The discrete-event run of one pacer against the carrier model: a virtual clock that
//! jumps from event to event (ticks, dials ending, slots freeing, answers giving up),
//! with the dialler's real [`Pacer`] deciding at every tick. Nothing sleeps.
//!
//! Bookkeeping, as the benchmark reports it:
//! * a slot is *busy* from the moment an answer is connected until its talk time and
//!   the release time after hang-up have passed: the slot cannot take a call during
//!   the release, so that counts as busy (the talk-only share is reported too);
//! * occupancy is busy slot-seconds inside the measured window over slots × window;
//! * an answer that finds every slot busy waits up to the abandon window for one
//!   (first come, first served) and is abandoned if none frees in time;
//! * the abandon rate is abandons over human answers during the whole run, warm-up
//!   included; connects per slot-hour count connects inside the measured window.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use super::scenario::{Fate, NumberList, Scenario};
use crate::pacing::{DialResult, Observation, Pacer, Snapshot};

/// What one run measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunResult {
    pub slots: u32,
    /// Busy (talk + release) share of slot time in the measured window.
    pub occupancy: f64,
    /// Talk-only share of slot time in the measured window.
    pub talk_occupancy: f64,
    pub human_answers: u64,
    pub abandons: u64,
    pub connects_in_window: u64,
    pub dials: u64,
    pub window_hours: f64,
}

impl RunResult {
    pub fn abandon_rate(&self) -> f64 {
        if self.human_answers == 0 { 0.0 } else { self.abandons as f64 / self.human_answers as f64 }
    }

    pub fn connects_per_slot_hour(&self) -> f64 {
        self.connects_in_window as f64 / (f64::from(self.slots) * self.window_hours)
    }
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Tick,
    DialEnds { call: u64 },
    SlotFrees { slot: usize },
    HoldExpires { call: u64 },
}

#[derive(Debug)]
struct Scheduled {
    at: f64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Earliest first in a max-heap; ties in scheduling order.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.total_cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Clone, Copy)]
struct Ringing {
    placed_at: f64,
    fate: Fate,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    call: u64,
    talk: f64,
}

/// The carrier, the slots and the clock of one run.
struct Run<'a> {
    sc: &'a Scenario,
    pacer: &'a mut Pacer,
    numbers: NumberList,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    next_call: u64,
    ringing: BTreeMap<u64, Ringing>,
    /// When each slot's call connected; `None` while the slot is free.
    slots: Vec<Option<f64>>,
    free: Vec<usize>,
    held: VecDeque<Held>,
    window: (f64, f64),
    busy_seconds: f64,
    talk_seconds: f64,
    result: RunResult,
}

/// Runs `pacer` for the scenario's minutes against `slots` slots and the number list
/// of `seed`.
pub fn simulate(sc: &Scenario, slots: u32, seed: u64, pacer: &mut Pacer) -> RunResult {
    let window = sc.window();
    let mut run = Run {
        sc,
        pacer,
        numbers: NumberList::new(sc, seed),
        queue: BinaryHeap::new(),
        seq: 0,
        next_call: 0,
        ringing: BTreeMap::new(),
        slots: vec![None; slots as usize],
        free: (0..slots as usize).rev().collect(),
        held: VecDeque::new(),
        window,
        busy_seconds: 0.0,
        talk_seconds: 0.0,
        result: RunResult { slots, window_hours: (window.1 - window.0) / 3600.0, ..RunResult::default() },
    };
    run.schedule(0.0, Event::Tick);
    let end = sc.end_seconds();
    while let Some(Scheduled { at, event, .. }) = run.queue.pop() {
        if at >= end {
            break;
        }
        run.handle(at, event);
    }
    let slot_seconds = f64::from(slots) * (window.1 - window.0);
    run.result.occupancy = run.busy_seconds / slot_seconds;
    run.result.talk_occupancy = run.talk_seconds / slot_seconds;
    run.result
}

fn overlap(from: f64, to: f64, window: (f64, f64)) -> f64 {
    (to.min(window.1) - from.max(window.0)).max(0.0)
}

impl Run<'_> {
    fn schedule(&mut self, at: f64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled { at, seq: self.seq, event });
    }

    fn handle(&mut self, now: f64, event: Event) {
        match event {
            Event::Tick => self.tick(now),
            Event::DialEnds { call } => self.dial_ends(now, call),
            Event::SlotFrees { slot } => self.slot_frees(now, slot),
            Event::HoldExpires { call } => {
                // Holds expire in the order they started, so a call still waiting is
                // at the front.
                if self.held.front().is_some_and(|h| h.call == call) {
                    self.held.pop_front();
                    self.result.abandons += 1;
                    self.pacer.observe(Observation::Abandoned { at: now });
                }
            }
        }
    }

    fn tick(&mut self, now: f64) {
        let ringing: Vec<f64> = self.ringing.values().map(|r| now - r.placed_at).collect();
        let connected: Vec<f64> = self.slots.iter().flatten().map(|&since| now - since).collect();
        let snapshot = Snapshot {
            now,
            slots: self.slots.len() as u32,
            free_slots: self.free.len() as u32,
            held_answers: self.held.len() as u32,
            ringing: &ringing,
            connected: &connected,
        };
        let n = self.pacer.calls_to_start(&snapshot);
        for _ in 0..n {
            let fate = self.numbers.next_fate(now);
            let after = match fate {
                Fate::Human { answer_after, .. } => answer_after,
                Fate::Failed { after } | Fate::NoAnswer { after } => after,
            };
            let call = self.next_call;
            self.next_call += 1;
            self.ringing.insert(call, Ringing { placed_at: now, fate });
            self.schedule(now + after, Event::DialEnds { call });
        }
        self.result.dials += u64::from(n);
        self.schedule(now + self.sc.tick_seconds, Event::Tick);
    }

    fn dial_ends(&mut self, now: f64, call: u64) {
        let Some(r) = self.ringing.remove(&call) else { return };
        let (result, talk) = match r.fate {
            Fate::Human { talk, .. } => (DialResult::Human, talk),
            Fate::Failed { .. } => (DialResult::BusyOrFailed, 0.0),
            Fate::NoAnswer { .. } => (DialResult::NoAnswer, 0.0),
        };
        self.pacer.observe(Observation::DialEnded { at: now, after: now - r.placed_at, result });
        if result != DialResult::Human {
            return;
        }
        self.result.human_answers += 1;
        match self.free.pop() {
            Some(slot) => self.connect(now, slot, talk),
            None => {
                self.held.push_back(Held { call, talk });
                self.schedule(now + self.sc.abandon_window_seconds, Event::HoldExpires { call });
            }
        }
    }

    fn connect(&mut self, now: f64, slot: usize, talk: f64) {
        let hold = talk + self.sc.release_seconds;
        self.slots[slot] = Some(now);
        self.pacer.observe(Observation::Connected { at: now });
        if (self.window.0..self.window.1).contains(&now) {
            self.result.connects_in_window += 1;
        }
        self.busy_seconds += overlap(now, now + hold, self.window);
        self.talk_seconds += overlap(now, now + talk, self.window);
        self.schedule(now + hold, Event::SlotFrees { slot });
    }

    fn slot_frees(&mut self, now: f64, slot: usize) {
        if let Some(since) = self.slots[slot].take() {
            self.pacer.observe(Observation::SlotReleased { at: now, held_for: now - since });
        }
        match self.held.pop_front() {
            Some(h) => self.connect(now, slot, h.talk),
            None => self.free.push(slot),
        }
    }
}
