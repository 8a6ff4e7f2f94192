//! Node secrets verified recently, so that a node's heartbeats (every 2 s, 5,000 a second
//! for 10,000 nodes) do not each read the node from the store and serialize on it.
//!
//! An entry maps the SHA-256 of a secret (never the secret) to the node it opened, as
//! read from the store when it was verified. It answers for [`TTL`] at most, and earlier
//! changes win:
//! - a change made through this voxbridge (a rotated secret, a lifecycle action, an
//!   update, a deletion) publishes the node's `NodeChanged` event before its reply; every
//!   lookup first reads the events published so far and drops the changed nodes' entries,
//!   so the next request after the change sees it, exactly as without the cache;
//! - a change made through another voxbridge sharing the store reaches this one within
//!   [`TTL`] (through the shared event bus sooner, when there is one).
//!
//! A lookup that lost events (the bus lagged) drops every entry. At most [`MAX_ENTRIES`]
//! are kept; a full cache drops its expired entries, then all. Failed verifications are
//! never cached: a wrong secret always goes to the store.
//!
//! Entries are refreshed before they expire, all at once: the first lookup that finds an
//! entry older than [`REFRESH_AFTER`] starts one background read of every node
//! ([`NodeCredentials::begin_refresh`], [`NodeCredentials::finish_refresh`]), which renews
//! the entries whose node still has that secret and drops the others. A node that
//! heartbeats more often than the TTL (every 2 s against 5 s) so never waits for the
//! store: without it, a third of 10,000 nodes' heartbeats read the store one by one, and
//! queued behind any long read of it (the dashboard's) they took most of a second. The
//! TTL bound is unchanged: an entry is as old as the read that renewed it, and a change
//! published while the read is under way keeps its node out of that renewal.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::StreamExt;
use futures::stream::BoxStream;
use vox_domain::node::Node;
use vox_store::ClusterEvent;

/// How long a verified secret answers without the store, at most: the bound on a change
/// made through another voxbridge instance.
pub const TTL: Duration = Duration::from_secs(5);
/// Entries kept at most (a node has one secret at a time).
pub const MAX_ENTRIES: usize = 100_000;
/// An entry older than this is renewed in the background (half the TTL: a node
/// heartbeating every 2 s finds its entry renewed before it expires).
pub const REFRESH_AFTER: Duration = Duration::from_millis(2_500);

/// A renewal under way: the nodes changed since it began, which it must not renew.
#[derive(Debug, Default)]
struct Refresh {
    changed: HashSet<String>,
    /// Events were lost meanwhile: any node may have changed.
    lost: bool,
}

pub struct NodeCredentials {
    events: BoxStream<'static, Option<ClusterEvent>>,
    /// Secret hash -> the node and when it was verified.
    entries: HashMap<String, (Node, Instant)>,
    /// Node id -> its entry's key.
    by_node: HashMap<String, String>,
    /// Bumped by every change read from the events: a verification that straddles a
    /// change of its node is not cached, as it may have read the node before the change.
    generation: u64,
    /// Node id -> the generation of its last change. Per node, so that a fleet whose
    /// nodes all change at once (a restart: every first heartbeat is a presence change)
    /// still caches each node's verification; at most [`MAX_ENTRIES`] are kept.
    changed_at: HashMap<String, u64>,
    /// Verifications that started before this generation are not cached: events were
    /// lost, or `changed_at` was emptied, then.
    floor: u64,
    /// Node id -> presence changes this voxbridge is about to publish for it
    /// ([`Self::expect_presence_change`]): their `NodeChanged` events say nothing about
    /// the stored node, so they keep its entry.
    presence_only: HashMap<String, u32>,
    /// The renewal under way, if any (one at a time).
    refreshing: Option<Refresh>,
}

impl NodeCredentials {
    pub fn new(events: BoxStream<'static, Option<ClusterEvent>>) -> Self {
        NodeCredentials {
            events,
            entries: HashMap::new(),
            by_node: HashMap::new(),
            generation: 0,
            changed_at: HashMap::new(),
            floor: 0,
            presence_only: HashMap::new(),
            refreshing: None,
        }
    }

    /// Applies the events published so far; returns the generation after them.
    pub fn catch_up(&mut self) -> u64 {
        while let Some(next) = self.events.next().now_or_never() {
            match next {
                Some(Some(ClusterEvent::NodeChanged(id))) => {
                    if let Some(n) = self.presence_only.get_mut(&id) {
                        *n -= 1;
                        if *n == 0 {
                            self.presence_only.remove(&id);
                        }
                        continue;
                    }
                    self.forget(&id);
                    self.generation += 1;
                    if self.changed_at.len() >= MAX_ENTRIES {
                        self.changed_at.clear();
                        self.floor = self.generation;
                    }
                    self.changed_at.insert(id.clone(), self.generation);
                    if let Some(r) = &mut self.refreshing {
                        r.changed.insert(id);
                    }
                }
                Some(Some(_)) => {}
                // Lagged (events were lost) or the bus closed: trust nothing.
                Some(None) | None => {
                    self.entries.clear();
                    self.by_node.clear();
                    self.changed_at.clear();
                    self.presence_only.clear();
                    self.generation += 1;
                    self.floor = self.generation;
                    if let Some(r) = &mut self.refreshing {
                        r.lost = true;
                    }
                    if next.is_none() {
                        self.events = futures::stream::pending().boxed();
                    }
                }
            }
        }
        self.generation
    }

    /// The node `secret_hash` opened, if verified less than [`TTL`] ago, for `node_id`, and
    /// whether the entries want renewing (it is older than [`REFRESH_AFTER`] and no
    /// renewal is under way): then the caller starts one with [`Self::begin_refresh`].
    pub fn get(&mut self, secret_hash: &str, node_id: &str, now: Instant) -> Option<(Node, bool)> {
        self.catch_up();
        match self.entries.get(secret_hash) {
            Some((node, at)) if node.id == node_id && now.saturating_duration_since(*at) < TTL => {
                let renew = self.refreshing.is_none() && now.saturating_duration_since(*at) >= REFRESH_AFTER;
                Some((node.clone(), renew))
            }
            _ => None,
        }
    }

    /// Says that the next `NodeChanged` of `node_id` this voxbridge publishes reports a
    /// change of its presence only (a heartbeat: the node came online, its worker slots
    /// moved), not of the stored node, so its verified secret stays: otherwise every
    /// node's first heartbeat would drop the secret its admission had just verified, and
    /// a whole fleet coming online would check every secret twice, one by one against
    /// the store. Call it just before publishing. A note whose event is lost (the bus
    /// lagged) is dropped with the lost events; one left behind can only hide a change
    /// for [`TTL`], as for a change made through another voxbridge.
    pub fn expect_presence_change(&mut self, node_id: &str) {
        if self.presence_only.len() >= MAX_ENTRIES {
            self.presence_only.clear();
        }
        *self.presence_only.entry(node_id.to_string()).or_default() += 1;
    }

    /// Starts a renewal unless one is under way (false then): the caller reads every node
    /// from the store, after this call, and hands them to [`Self::finish_refresh`].
    pub fn begin_refresh(&mut self) -> bool {
        self.catch_up();
        if self.refreshing.is_some() {
            return false;
        }
        self.refreshing = Some(Refresh::default());
        true
    }

    /// Ends the renewal begun by [`Self::begin_refresh`] with every node as read from the
    /// store from `read_at` on (None: the read failed, and the entries age as they are).
    /// An entry whose node still has its secret is renewed to `read_at`, unless its node
    /// changed while the read was under way; an entry whose node is gone or has another
    /// secret is dropped.
    pub fn finish_refresh(&mut self, nodes: Option<&[Node]>, read_at: Instant) {
        self.catch_up();
        let Some(refresh) = self.refreshing.take() else { return };
        let Some(nodes) = nodes else { return };
        if refresh.lost {
            return;
        }
        let stored: HashMap<&str, &Node> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        let mut gone = Vec::new();
        for (hash, (node, at)) in &mut self.entries {
            if refresh.changed.contains(&node.id) || *at >= read_at {
                continue;
            }
            match stored.get(node.id.as_str()) {
                Some(n) if n.secret_hash == *hash => *node = (*n).clone(),
                _ => {
                    gone.push(node.id.clone());
                    continue;
                }
            }
            *at = read_at;
        }
        for id in gone {
            self.forget(&id);
        }
    }

    /// Remembers a verification that started at `generation` (from [`Self::catch_up`]),
    /// unless a change of its node (or a loss of events) was read since.
    pub fn remember(&mut self, secret_hash: String, node: Node, generation: u64, now: Instant) {
        self.catch_up();
        if generation < self.floor || self.changed_at.get(&node.id).is_some_and(|&at| at > generation) {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, (_, at)| now.saturating_duration_since(*at) < TTL);
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
            self.by_node.retain(|_, hash| self.entries.contains_key(hash));
        }
        if let Some(old) = self.by_node.insert(node.id.clone(), secret_hash.clone())
            && old != secret_hash
        {
            self.entries.remove(&old);
        }
        self.entries.insert(secret_hash, (node, now));
    }

    fn forget(&mut self, node_id: &str) {
        if let Some(hash) = self.by_node.remove(node_id) {
            self.entries.remove(&hash);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests stop on failure")]
    use vox_store::EventBus;
    use vox_store::memory::MemoryEventBus;

    use super::*;

    fn node(id: &str) -> Node {
        let now = chrono::Utc::now();
        Node {
            id: id.into(),
            kind: vox_domain::node::NodeKind::Fleet,
            region_id: None,
            name: id.into(),
            endpoint: String::new(),
            sip_port: 5080,
            desired_state: vox_domain::node::DesiredState::Active,
            secret_hash: format!("hash-of-{id}"),
            shutdown_boot_id: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn cache() -> (MemoryEventBus, NodeCredentials) {
        let bus = MemoryEventBus::default();
        let cache = NodeCredentials::new(bus.subscribe());
        (bus, cache)
    }

    #[test]
    fn a_verified_secret_answers_until_the_ttl_and_not_for_another_node() {
        let (_bus, mut c) = cache();
        let t0 = Instant::now();
        let g = c.catch_up();
        c.remember("h1".into(), node("nd_a"), g, t0);
        assert_eq!(c.get("h1", "nd_a", t0 + TTL - Duration::from_millis(1)).unwrap().0.id, "nd_a");
        assert!(c.get("h1", "nd_b", t0).is_none(), "a secret opens only its own node");
        assert!(c.get("h2", "nd_a", t0).is_none(), "another secret is not verified");
        assert!(c.get("h1", "nd_a", t0 + TTL).is_none(), "a change made elsewhere shows within the TTL");
    }

    #[test]
    fn a_change_published_before_the_lookup_is_seen_at_once() {
        let (bus, mut c) = cache();
        let t0 = Instant::now();
        for id in ["nd_a", "nd_b"] {
            let g = c.catch_up();
            c.remember(format!("h-{id}"), node(id), g, t0);
        }
        // Rotation, disabling, maintenance, deletion: each publishes NodeChanged.
        bus.publish(ClusterEvent::NodeChanged("nd_a".into()));
        bus.publish(ClusterEvent::CallChanged("ca_1".into()));
        assert!(c.get("h-nd_a", "nd_a", t0).is_none(), "the changed node is read again");
        assert!(c.get("h-nd_b", "nd_b", t0).is_some(), "other nodes keep their entries");
    }

    #[test]
    fn a_verification_that_straddles_a_change_is_not_kept() {
        let (bus, mut c) = cache();
        let t0 = Instant::now();
        let g = c.catch_up();
        // The node was read from the store here, then changed before it was remembered.
        bus.publish(ClusterEvent::NodeChanged("nd_a".into()));
        c.remember("h1".into(), node("nd_a"), g, t0);
        assert!(c.get("h1", "nd_a", t0).is_none());
    }

    #[test]
    fn a_change_of_another_node_does_not_stop_a_verification_being_kept() {
        let (bus, mut c) = cache();
        let t0 = Instant::now();
        let g = c.catch_up();
        // A fleet restarting: other nodes' first heartbeats publish their changes while
        // this node's secret is being checked.
        for i in 0..100 {
            bus.publish(ClusterEvent::NodeChanged(format!("nd_other_{i}")));
        }
        c.remember("h1".into(), node("nd_a"), g, t0);
        assert!(c.get("h1", "nd_a", t0).is_some());
    }

    #[test]
    fn a_presence_change_keeps_the_verified_secret_and_a_real_change_still_drops_it() {
        let (bus, mut c) = cache();
        let t0 = Instant::now();
        let g = c.catch_up();
        c.remember("h1".into(), node("nd_a"), g, t0);
        // The node's first heartbeat: it came online.
        c.expect_presence_change("nd_a");
        bus.publish(ClusterEvent::NodeChanged("nd_a".into()));
        assert!(c.get("h1", "nd_a", t0).is_some(), "its presence changed, not the node");
        // Then an operator disables it.
        bus.publish(ClusterEvent::NodeChanged("nd_a".into()));
        assert!(c.get("h1", "nd_a", t0).is_none(), "the node changed: read it again");
    }

    #[test]
    fn a_verification_that_straddles_lost_events_is_not_kept() {
        let (bus, mut c) = cache();
        let t0 = Instant::now();
        let g = c.catch_up();
        for i in 0..2000 {
            bus.publish(ClusterEvent::CallChanged(format!("ca_{i}")));
        }
        c.remember("h1".into(), node("nd_a"), g, t0);
        assert!(c.get("h1", "nd_a", t0).is_none(), "nd_a may have changed among the lost events");
        let g = c.catch_up();
        c.remember("h1".into(), node("nd_a"), g, t0);
        assert!(c.get("h1", "nd_a", t0).is_some());
    }

    #[test]
    fn lost_events_drop_everything_and_a_new_secret_replaces_the_old() {
        let (bus, mut c) = cache();
        let t0 = Instant::now();
        let g = c.catch_up();
        c.remember("old".into(), node("nd_a"), g, t0);
        c.remember("new".into(), node("nd_a"), g, t0);
        assert!(c.get("old", "nd_a", t0).is_none(), "one secret per node");
        assert_eq!(c.len(), 1);
        // More events than the bus keeps for a subscriber: it reports a lag.
        for i in 0..2000 {
            bus.publish(ClusterEvent::CallChanged(format!("ca_{i}")));
        }
        assert!(c.get("new", "nd_a", t0).is_none());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn the_cache_is_bounded() {
        let (_bus, mut c) = cache();
        let t0 = Instant::now();
        let g = c.catch_up();
        for i in 0..MAX_ENTRIES + 10 {
            c.remember(format!("h{i}"), node(&format!("nd_{i}")), g, t0);
        }
        assert!(c.len() <= MAX_ENTRIES, "{}", c.len());
    }

    fn with_secret(id: &str, hash: &str) -> Node {
        Node { secret_hash: hash.into(), ..node(id) }
    }

    #[test]
    fn entries_are_renewed_together_before_they_expire() {
        let (_bus, mut c) = cache();
        let t0 = Instant::now();
        let g = c.catch_up();
        c.remember("h-a".into(), with_secret("nd_a", "h-a"), g, t0);
        c.remember("h-b".into(), with_secret("nd_b", "h-b"), g, t0);
        c.remember("h-c".into(), with_secret("nd_c", "h-c"), g, t0);
        assert!(!c.get("h-a", "nd_a", t0 + REFRESH_AFTER - Duration::from_millis(1)).unwrap().1);
        assert!(c.get("h-a", "nd_a", t0 + REFRESH_AFTER).unwrap().1, "old enough to renew");
        assert!(c.begin_refresh());
        assert!(!c.begin_refresh(), "one renewal at a time");
        assert!(!c.get("h-a", "nd_a", t0 + REFRESH_AFTER).unwrap().1, "a renewal is under way");
        // As stored now: nd_a was put in maintenance, nd_b's secret rotated (through another
        // voxbridge), nd_c deleted.
        let read_at = t0 + Duration::from_secs(3);
        let mut a = with_secret("nd_a", "h-a");
        a.desired_state = vox_domain::node::DesiredState::Maintenance;
        c.finish_refresh(Some(&[a, with_secret("nd_b", "h-new")]), read_at);
        let (renewed, _) = c.get("h-a", "nd_a", t0 + TTL + Duration::from_secs(1)).expect("renewed past its first TTL");
        assert_eq!(renewed.desired_state, vox_domain::node::DesiredState::Maintenance, "as read by the renewal");
        assert!(c.get("h-a", "nd_a", read_at + TTL).is_none(), "a renewed entry still ages");
        assert!(c.get("h-b", "nd_b", read_at).is_none(), "a rotated secret is dropped");
        assert!(c.get("h-c", "nd_c", read_at).is_none(), "a deleted node is dropped");
        assert!(c.begin_refresh(), "the next renewal may start");
    }

    #[test]
    fn a_change_published_during_a_renewal_is_not_undone_by_it() {
        let (bus, mut c) = cache();
        let t0 = Instant::now();
        let g = c.catch_up();
        c.remember("h-a".into(), with_secret("nd_a", "h-a"), g, t0);
        c.remember("h-b".into(), with_secret("nd_b", "h-b"), g, t0);
        assert!(c.begin_refresh());
        // The renewal read nd_a before it was disabled; the change's event came after.
        let stored = [with_secret("nd_a", "h-a"), with_secret("nd_b", "h-b")];
        bus.publish(ClusterEvent::NodeChanged("nd_a".into()));
        c.finish_refresh(Some(&stored), t0 + Duration::from_secs(3));
        assert!(c.get("h-a", "nd_a", t0 + Duration::from_secs(3)).is_none(), "read again from the store");
        assert!(c.get("h-b", "nd_b", t0 + TTL + Duration::from_secs(1)).is_some(), "the others are renewed");
    }

    #[test]
    fn a_failed_renewal_leaves_the_entries_to_expire() {
        let (_bus, mut c) = cache();
        let t0 = Instant::now();
        let g = c.catch_up();
        c.remember("h-a".into(), with_secret("nd_a", "h-a"), g, t0);
        assert!(c.begin_refresh());
        c.finish_refresh(None, t0 + Duration::from_secs(3));
        assert!(c.get("h-a", "nd_a", t0 + TTL).is_none());
        assert!(c.begin_refresh(), "a failed renewal does not block the next");
    }
}
