//! The activity feed: every visible move is reported once, in commit order, with ids a
//! reader can resume from; pruning leaves a mark so a reader learns what it missed.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use vox_domain::call::{CallState, Channel, Recording};
use vox_domain::campaign::CampaignStatus;
use vox_domain::feed::{FeedEvent, FeedQuery, PacingFigures, RecordingAnalysis, Subject};

use super::{inbound, lease_req, move_to, no_retry, running_campaign, to_in_progress};
use crate::Stores;

async fn read_all(s: &Stores, after: u64, campaign_id: Option<&str>) -> Vec<FeedEvent> {
    let mut out: Vec<FeedEvent> = Vec::new();
    let mut after = after;
    loop {
        let q = FeedQuery { after, campaign_id: campaign_id.map(String::from), limit: 3 };
        let page = s.feed.list_feed(&q).await.unwrap();
        let Some(last) = page.last() else { return out };
        after = last.id;
        out.extend(page);
    }
}

fn kinds(events: &[FeedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

pub async fn the_feed_reports_each_visible_move_in_order(s: &Stores, now: DateTime<Utc>) {
    let start = s.feed.feed_head().await.unwrap();
    let c = running_campaign(s, 3, no_retry(), now).await;
    let term = s.leadership.acquire_leadership("d1", Duration::seconds(60), now).await.unwrap().term;
    let leased = s.calls.lease_calls(&lease_req(&c.id, 3, "d1", term), now).await.unwrap();
    let talked = to_in_progress(s, &leased[0], term, now).await;
    let talked = s.calls.transition_call(&move_to(&talked, CallState::Completed, term), now).await.unwrap();
    let mut abandoned = leased[1].clone();
    for to in [CallState::Dialing, CallState::Ringing, CallState::Answered, CallState::Abandoned] {
        abandoned = s.calls.transition_call(&move_to(&abandoned, to, term), now).await.unwrap();
    }
    let rec = Recording { key: "recordings/a.wav".into(), duration_ms: 1_000, size_bytes: 8_044 };
    s.calls.set_recording(&talked.id, &rec, now + Duration::seconds(1)).await.unwrap();
    let walk_in = inbound("rg_1", Channel::Phone, now);
    s.calls.insert_call(&walk_in, "node:gw").await.unwrap();
    s.campaigns.set_campaign_status(&c.id, CampaignStatus::Paused, "user:op@vox.test", now).await.unwrap();

    let all = read_all(s, start, None).await;
    assert_eq!(
        kinds(&all),
        [
            "campaign.state_changed",
            "call.dialing",
            "call.ringing",
            "call.answered",
            "call.in_progress",
            "call.ended",
            "call.dialing",
            "call.ringing",
            "call.answered",
            "call.abandoned",
            "call.recording_ready",
            "call.created",
            "campaign.state_changed",
        ],
        "leases, attaching and numbers never dialled are not reported"
    );
    let ids: Vec<u64> = all.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids rise in order: {ids:?}");
    assert_eq!(s.feed.feed_head().await.unwrap(), *ids.last().unwrap());
    // The ended entry carries the call as it stood after the move, and the move itself.
    let ended = &all[5];
    let Subject::Call { call, change: Some(change) } = &ended.subject else { panic!("{ended:?}") };
    assert_eq!((call.id.as_str(), call.state), (talked.id.as_str(), CallState::Completed));
    assert_eq!((change.from_state, change.to_state), (Some(CallState::InProgress), CallState::Completed));
    assert_eq!(ended.campaign_id.as_deref(), Some(c.id.as_str()));
    let Subject::Call { call, change: None } = &all[10].subject else { panic!("{:?}", all[10]) };
    assert_eq!(call.recording.as_ref(), Some(&rec));
    let Subject::Campaign { from, to, actor, .. } = &all[12].subject else { panic!("{:?}", all[12]) };
    assert_eq!((*from, *to, actor.as_str()), (CampaignStatus::Running, CampaignStatus::Paused, "user:op@vox.test"));

    // Resuming after any id gives exactly the rest; a campaign filter drops the walk-in.
    assert_eq!(read_all(s, ids[4], None).await, all[5..].to_vec());
    let of_campaign = read_all(s, start, Some(&c.id)).await;
    assert_eq!(of_campaign.len(), all.len() - 1);
    assert!(of_campaign.iter().all(|e| e.campaign_id.as_deref() == Some(c.id.as_str())));
}

/// Writers commit concurrently while a reader keeps asking for "everything after the last
/// id I saw": it must end with every entry, none twice, none skipped.
pub async fn a_reader_resuming_from_its_last_id_misses_nothing_under_concurrent_writes(s: &Stores, now: DateTime<Utc>) {
    const WRITERS: usize = 6;
    const CALLS_EACH: usize = 4;
    let start = s.feed.feed_head().await.unwrap();
    let c = running_campaign(s, WRITERS * CALLS_EACH, no_retry(), now).await;
    let term = s.leadership.acquire_leadership("d1", Duration::seconds(60), now).await.unwrap().term;
    let leased = s.calls.lease_calls(&lease_req(&c.id, WRITERS * CALLS_EACH, "d1", term), now).await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (s, done, id) = (s.clone(), done.clone(), c.id.clone());
        tokio::spawn(async move {
            let mut seen: Vec<u64> = Vec::new();
            let mut after = start;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let page = s.feed.list_feed(&FeedQuery { after, campaign_id: Some(id.clone()), limit: 50 }).await;
                let page = page.unwrap();
                if let Some(last) = page.last() {
                    after = last.id;
                }
                let empty = page.is_empty();
                seen.extend(page.into_iter().map(|e| e.id));
                if finished && empty {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut writers = Vec::new();
    for chunk in leased.chunks(CALLS_EACH) {
        let (s, chunk) = (s.clone(), chunk.to_vec());
        writers.push(tokio::spawn(async move {
            for call in chunk {
                let mut c = call;
                for to in [CallState::Dialing, CallState::Ringing, CallState::NoAnswer] {
                    c = s.calls.transition_call(&move_to(&c, to, term), now).await.unwrap();
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    let all: Vec<u64> = read_all(s, start, Some(&c.id)).await.iter().map(|e| e.id).collect();
    assert_eq!(all.len(), WRITERS * CALLS_EACH * 3 + 1, "every move and the campaign start");
    assert_eq!(seen, all, "the live reader saw every entry once, in order");
}

pub async fn pruning_the_feed_leaves_a_mark_and_never_reuses_ids(s: &Stores, now: DateTime<Utc>) {
    let old = inbound("rg_1", Channel::Phone, now);
    s.calls.insert_call(&old, "node:gw").await.unwrap();
    let old_head = s.feed.feed_head().await.unwrap();
    let later = now + Duration::days(2);
    let new = inbound("rg_1", Channel::Web, later);
    s.calls.insert_call(&new, "node:gw").await.unwrap();
    assert_eq!(s.feed.feed_pruned_through().await.unwrap(), 0, "nothing pruned yet");

    assert!(s.feed.prune_feed(now + Duration::days(1)).await.unwrap() >= 1);
    assert_eq!(s.feed.feed_pruned_through().await.unwrap(), old_head);
    let left = read_all(s, 0, None).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].call().map(|c| c.id.as_str()), Some(new.id.as_str()));
    assert_eq!(s.feed.prune_feed(now + Duration::days(1)).await.unwrap(), 0, "pruning again deletes nothing");

    // Even with every entry pruned, the next id is past every id handed out before.
    assert_eq!(s.feed.prune_feed(later + Duration::days(1)).await.unwrap(), 1);
    let head = s.feed.feed_head().await.unwrap();
    s.calls.insert_call(&inbound("rg_1", Channel::Phone, later), "node:gw").await.unwrap();
    let after = read_all(s, 0, None).await;
    assert_eq!(after.len(), 1);
    assert!(after[0].id > head, "id {} reused (head was {head})", after[0].id);
    assert_eq!(s.feed.feed_pruned_through().await.unwrap(), head);
}

pub async fn only_the_leader_at_its_term_reports_to_the_feed(s: &Stores, now: DateTime<Utc>) {
    let start = s.feed.feed_head().await.unwrap();
    let figures = |id: &str| PacingFigures { campaign_id: id.into(), mode: "predictive".into(), ..Default::default() };
    let report = |term: u64| {
        [FeedEvent::pacing(figures("cmp_a"), "d1", term, now), FeedEvent::pacing(figures("cmp_b"), "d1", term, now)]
    };
    let first = s.leadership.acquire_leadership("d1", Duration::seconds(10), now).await.unwrap().term;
    s.feed.append_as_leader("d1", first, &report(first), now).await.unwrap();
    // Another dialler, a stale term and an expired lease are each refused and write nothing.
    let refused = [
        s.feed.append_as_leader("d2", first, &report(first), now).await,
        s.feed.append_as_leader("d1", first + 1, &report(first + 1), now).await,
        s.feed.append_as_leader("d1", first, &report(first), now + Duration::seconds(11)).await,
    ];
    for r in refused {
        assert_eq!(r.unwrap_err().code, vox_domain::ErrorCode::FailedPrecondition);
    }
    let later = now + Duration::seconds(12);
    let second = s.leadership.acquire_leadership("d2", Duration::seconds(10), later).await.unwrap().term;
    assert!(second > first);
    let old = s.feed.append_as_leader("d1", first, &report(first), later).await.unwrap_err();
    assert!(old.message.contains(&format!("current term is {second}")), "{}", old.message);
    s.feed
        .append_as_leader("d2", second, &[FeedEvent::pacing(figures("cmp_a"), "d2", second, later)], later)
        .await
        .unwrap();

    let all = read_all(s, start, None).await;
    let seen: Vec<(Option<&str>, &str, u64)> = all
        .iter()
        .map(|e| match &e.subject {
            Subject::Pacing { dialler_id, fencing_term, .. } => {
                (e.campaign_id.as_deref(), dialler_id.as_str(), *fencing_term)
            }
            other => panic!("only pacing was reported: {other:?}"),
        })
        .collect();
    assert_eq!(seen, [(Some("cmp_a"), "d1", first), (Some("cmp_b"), "d1", first), (Some("cmp_a"), "d2", second)]);
    assert!(all.iter().all(|e| e.kind == "campaign.pacing"));
    assert_eq!(read_all(s, start, Some("cmp_b")).await.len(), 1, "pacing is filed under its campaign");
}

pub async fn reports_of_work_done_append_in_order(s: &Stores, now: DateTime<Utc>) {
    let start = s.feed.feed_head().await.unwrap();
    let call = inbound("rg_1", Channel::Phone, now);
    let analysed = |n: u64| {
        let a = RecordingAnalysis {
            call_id: call.id.clone(),
            key: format!("r{n}.wav"),
            duration_ms: n,
            ..Default::default()
        };
        FeedEvent::recording_analyzed(&call, a, now)
    };
    s.feed.append_feed(&[analysed(1), analysed(2)]).await.unwrap();
    s.feed.append_feed(&[analysed(3)]).await.unwrap();
    let all = read_all(s, start, None).await;
    let seen: Vec<u64> = all
        .iter()
        .map(|e| match &e.subject {
            Subject::Recording { analysis } => analysis.duration_ms,
            other => panic!("only recordings were reported: {other:?}"),
        })
        .collect();
    assert_eq!(seen, [1, 2, 3]);
    assert!(all.windows(2).all(|w| w[0].id + 1 == w[1].id), "numbered one after another");
}
