//! The abandon ledger: its 24-hour and 30-day figures equal a recount from the call
//! records, with calls spread over simulated days, and its list of abandoned calls holds
//! every abandon of the period, once, in answer order.

use chrono::{DateTime, Duration, Utc};
use vox_domain::call::{Call, CallState};

use super::{move_to, no_retry, running_campaign};
use crate::{AnswerTally, CallQuery, Stores};

/// How one simulated call ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// A person answered and talked: a live answer.
    Talked,
    /// A person answered and no worker was free: a live answer and an abandon.
    Abandoned,
    /// A machine picked up before any answer: neither.
    MachineAtRing,
    /// Answered, then found to be a machine: not a live answer.
    MachineAfterAnswer,
    /// Answered, then the worker's stream broke: still a live answer.
    FailedAfterAnswer,
    /// Answered and still talking: a live answer.
    StillTalking,
    /// Rang out: neither.
    NoAnswer,
}

const CYCLE: [Outcome; 9] = [
    Outcome::Talked,
    Outcome::Abandoned,
    Outcome::MachineAtRing,
    Outcome::Talked,
    Outcome::NoAnswer,
    Outcome::MachineAfterAnswer,
    Outcome::Abandoned,
    Outcome::FailedAfterAnswer,
    Outcome::StillTalking,
];

/// Walks a pending call through the dialler's and gateway's moves, answered (or ended
/// unanswered) at `at`.
async fn play(s: &Stores, call: &Call, outcome: Outcome, at: DateTime<Utc>) -> Call {
    use CallState::*;
    let placed = at - Duration::seconds(20);
    let mut c = call.clone();
    for (state, when) in [(Leased, placed), (Dialing, placed), (Ringing, placed + Duration::seconds(1))] {
        c = s.calls.transition_call(&move_to(&c, state, 0), when).await.unwrap();
    }
    let path: &[CallState] = match outcome {
        Outcome::Talked => &[Answered, Attaching, InProgress, Completed],
        Outcome::Abandoned => &[Answered, Abandoned],
        Outcome::MachineAtRing => &[Machine],
        Outcome::MachineAfterAnswer => &[Answered, Machine],
        Outcome::FailedAfterAnswer => &[Answered, Failed],
        Outcome::StillTalking => &[Answered, Attaching, InProgress],
        Outcome::NoAnswer => &[NoAnswer],
    };
    for (i, state) in path.iter().enumerate() {
        // The first move is the answer (or the unanswered end); the rest follow it.
        let when = at + Duration::seconds(i as i64 * 2);
        c = s.calls.transition_call(&move_to(&c, *state, 0), when).await.unwrap();
    }
    c
}

/// Recounts a period from the calls as stored, by the ledger's definitions.
fn recount(calls: &[Call], from: DateTime<Utc>, to: DateTime<Utc>) -> AnswerTally {
    let within = |t: Option<DateTime<Utc>>| t.is_some_and(|t| t >= from && t < to);
    let mut tally = AnswerTally::default();
    for c in calls {
        if c.state == CallState::Machine {
            tally.machine_answers += u64::from(within(c.ended_at));
        } else if within(c.answered_at) {
            tally.live_answers += 1;
            tally.abandons += u64::from(c.state == CallState::Abandoned);
        }
    }
    tally
}

pub async fn the_abandon_ledger_equals_a_recount_of_the_calls(s: &Stores, start: DateTime<Utc>) {
    // 54 calls, one every 19 hours: 42 simulated days.
    let n = 54;
    let campaign = running_campaign(s, n, no_retry(), start).await;
    let other = running_campaign(s, 1, no_retry(), start).await;
    let q = |id: &str| CallQuery { campaign_id: Some(id.into()), limit: 1000, ..Default::default() };
    let mut pending = s.calls.list_calls(&q(&campaign.id)).await.unwrap();
    pending.sort_by(|a, b| a.to_number.cmp(&b.to_number));
    let first_answer = start + Duration::hours(1);
    let mut played = Vec::new();
    for (i, call) in pending.iter().enumerate() {
        let at = first_answer + Duration::hours(19 * i as i64);
        played.push((play(s, call, CYCLE[i % CYCLE.len()], at).await, CYCLE[i % CYCLE.len()], at));
    }
    // The other campaign's abandon, inside every period, never counts here.
    let theirs = s.calls.list_calls(&q(&other.id)).await.unwrap().remove(0);
    play(s, &theirs, Outcome::Abandoned, first_answer + Duration::days(40)).await;

    // "now": the last answer plus 30 minutes; the periods end there.
    let last_answer = played.last().unwrap().2;
    let now = last_answer + Duration::minutes(30);
    let stored = s.calls.list_calls(&q(&campaign.id)).await.unwrap();
    assert_eq!(stored.len(), n);
    for (from, label) in [(now - Duration::hours(24), "24 hours"), (now - Duration::days(30), "30 days")] {
        let ledger = s.ledger.answer_tally(&campaign.id, from, now).await.unwrap();
        assert_eq!(ledger, recount(&stored, from, now), "the {label} figures equal a recount of the call records");
        // And what the script played, counted by hand.
        let mut expected = AnswerTally::default();
        for (_, outcome, at) in &played {
            let inside = *at >= from && *at < now;
            match outcome {
                Outcome::Talked | Outcome::FailedAfterAnswer | Outcome::StillTalking => {
                    expected.live_answers += u64::from(inside)
                }
                Outcome::Abandoned => {
                    expected.live_answers += u64::from(inside);
                    expected.abandons += u64::from(inside);
                }
                Outcome::MachineAtRing => expected.machine_answers += u64::from(inside),
                // Answered at `at`, found a machine 2 s later.
                Outcome::MachineAfterAnswer => {
                    let ended = *at + Duration::seconds(2);
                    expected.machine_answers += u64::from(ended >= from && ended < now)
                }
                Outcome::NoAnswer => {}
            }
        }
        assert_eq!(ledger, expected, "{label}");
    }
    let day = s.ledger.answer_tally(&campaign.id, now - Duration::hours(24), now).await.unwrap();
    let month = s.ledger.answer_tally(&campaign.id, now - Duration::days(30), now).await.unwrap();
    assert!(day.live_answers >= 1 && month.abandons > day.abandons, "the periods differ: {day:?} {month:?}");
    assert!(month.abandons >= 6 && month.live_answers > month.abandons, "{month:?}");

    // The period is [from, to): an answer at `from` counts, one at `to` does not.
    let (_, _, at) = played.iter().find(|(_, o, _)| *o == Outcome::Abandoned).unwrap();
    let exact = s.ledger.answer_tally(&campaign.id, *at, *at + Duration::seconds(1)).await.unwrap();
    assert_eq!((exact.live_answers, exact.abandons), (1, 1));
    let before = s.ledger.answer_tally(&campaign.id, *at - Duration::hours(1), *at).await.unwrap();
    assert_eq!(before.abandons, 0);

    // The report lists every abandon of the 30 days, once, oldest answer first, in pages.
    let from = now - Duration::days(30);
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = s.ledger.abandoned_calls(&campaign.id, from, now, after.clone(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap();
        after = Some((last.answered_at.unwrap(), last.id.clone()));
        listed.extend(page);
    }
    let mut abandoned: Vec<&Call> = stored
        .iter()
        .filter(|c| c.state == CallState::Abandoned && c.answered_at.is_some_and(|t| t >= from && t < now))
        .collect();
    abandoned.sort_by_key(|c| (c.answered_at, c.id.clone()));
    assert_eq!(
        listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        abandoned.iter().map(|c| c.id.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(listed.len() as u64, month.abandons);
    assert!(listed.iter().all(|c| c.campaign_id.as_deref() == Some(campaign.id.as_str())));
    assert!(s.ledger.answer_tally("cp_missing", from, now).await.unwrap() == AnswerTally::default());
}
