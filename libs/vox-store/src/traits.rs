use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use futures::stream::BoxStream;
use vox_domain::Result;
use vox_domain::api_key::ApiKey;
use vox_domain::call::{Call, CallEvent, CallState, Recording, StaleDeadlines, Transition};
use vox_domain::campaign::{Campaign, CampaignCounts, CampaignSpec, CampaignStatus};
use vox_domain::feed::{FeedEvent, FeedQuery};
use vox_domain::node::{AuditEvent, DesiredState, Node, NodeKind, Presence};
use vox_domain::phone::E164;
use vox_domain::region::Region;
use vox_domain::user::{User, UserChange};
use vox_domain::webhook_endpoint::{DeliveryAttempt, WebhookEndpoint};

#[async_trait]
pub trait RegionStore: Send + Sync {
    /// AlreadyExists when the name is taken.
    async fn insert_region(&self, region: &Region) -> Result<()>;
    async fn get_region(&self, id: &str) -> Result<Option<Region>>;
    /// Ordered by name.
    async fn list_regions(&self) -> Result<Vec<Region>>;
    /// Replaces the stored region. NotFound; AlreadyExists when the new name is taken.
    async fn update_region(&self, region: &Region) -> Result<()>;
    /// NotFound; FailedPrecondition while a node or campaign refers to the region.
    async fn delete_region(&self, id: &str) -> Result<()>;
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeFilter {
    pub region_id: Option<String>,
    pub kind: Option<NodeKind>,
}

#[async_trait]
pub trait NodeStore: Send + Sync {
    /// Stores a new node and its audit line. AlreadyExists when the node is a singleton
    /// (console, background) and one is already registered.
    async fn insert_node(&self, node: &Node, audit: &AuditEvent) -> Result<()>;
    async fn get_node(&self, id: &str) -> Result<Option<Node>>;
    /// Ordered by creation time.
    async fn list_nodes(&self, filter: &NodeFilter) -> Result<Vec<Node>>;
    /// Sets name, endpoint, SIP port, secret hash and `updated_at` from `node`, and appends
    /// the audit line. Every other field keeps its stored value, so an update built from a
    /// copy read before a lifecycle change never undoes it. NotFound.
    async fn update_node(&self, node: &Node, audit: &AuditEvent) -> Result<()>;
    /// Moves the node's desired state from `from` to `to` and appends the audit line, in
    /// one step. FailedPrecondition when the stored state is no longer `from`.
    async fn set_desired_state(
        &self,
        id: &str,
        from: DesiredState,
        to: DesiredState,
        shutdown_boot_id: Option<String>,
        audit: &AuditEvent,
    ) -> Result<Node>;
    async fn delete_node(&self, id: &str, audit: &AuditEvent) -> Result<()>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, event: &AuditEvent) -> Result<()>;
    /// Newest first; `target_id` None lists every target.
    async fn list_audit(&self, target_id: Option<&str>, limit: usize) -> Result<Vec<AuditEvent>>;
}

#[async_trait]
pub trait CampaignStore: Send + Sync {
    async fn insert_campaign(&self, campaign: &Campaign) -> Result<()>;
    async fn get_campaign(&self, id: &str) -> Result<Option<Campaign>>;
    /// Ordered by creation time.
    async fn list_campaigns(&self, status: Option<CampaignStatus>) -> Result<Vec<Campaign>>;
    /// NotFound; FailedPrecondition once the campaign is completed.
    async fn update_campaign_spec(&self, id: &str, spec: &CampaignSpec, now: DateTime<Utc>) -> Result<Campaign>;
    /// Moves the campaign to `to` when its status allows it
    /// (`CampaignStatus::allowed_from`), else FailedPrecondition. Completing cancels the
    /// campaign's pending calls in the same step, each with a timeline event by `actor`.
    async fn set_campaign_status(
        &self,
        id: &str,
        to: CampaignStatus,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Campaign>;
    async fn campaign_counts(&self, id: &str) -> Result<CampaignCounts>;
    /// Adds each number as a pending first-attempt call due now. Returns the rows whose
    /// number the campaign already had (those are not added). FailedPrecondition when
    /// the campaign is completed; NotFound.
    async fn add_numbers(&self, campaign_id: &str, numbers: &[(u32, E164)], now: DateTime<Utc>) -> Result<Vec<u32>>;
}

/// Which calls to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallQuery {
    pub campaign_id: Option<String>,
    pub states: Vec<CallState>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub limit: usize,
    /// Continue after this (created_at, id), exclusive.
    pub after: Option<(DateTime<Utc>, String)>,
}

/// A batch lease request from the dialler.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRequest {
    pub campaign_id: String,
    pub max: usize,
    pub owner: String,
    pub fencing_term: u64,
    pub ttl: Duration,
}

/// Dashboard figures that come from call records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallTotals {
    pub live_phone: u64,
    pub live_web: u64,
    pub processing: u64,
    /// Pending calls due now in running campaigns.
    pub pending_due: u64,
}

#[async_trait]
pub trait CallStore: Send + Sync {
    /// Stores a new call (inbound calls, web sessions) with its `created` event.
    async fn insert_call(&self, call: &Call, actor: &str) -> Result<()>;
    async fn get_call(&self, id: &str) -> Result<Option<Call>>;
    async fn list_calls(&self, query: &CallQuery) -> Result<Vec<Call>>;
    /// Oldest first.
    async fn list_call_events(&self, call_id: &str) -> Result<Vec<CallEvent>>;
    /// Applies the transition with `apply_transition` against the current leadership term
    /// and the campaign's retry policy, stores the call, its event and any retry in one
    /// step. NotFound; FailedPrecondition for an illegal move, stale term or wrong token.
    async fn transition_call(&self, t: &Transition, now: DateTime<Utc>) -> Result<Call>;
    /// Leases up to `max` pending calls of the campaign that are due, oldest due first.
    /// FailedPrecondition unless `owner` holds the unexpired leadership lease at exactly
    /// `fencing_term`, or when the campaign is not running. Each call is leased at most
    /// once, however many leasers race.
    async fn lease_calls(&self, req: &LeaseRequest, now: DateTime<Utc>) -> Result<Vec<Call>>;
    /// Moves every stuck call on (see `StaleDeadlines::reap`) and returns how many by the
    /// state they were stuck in. Each call is reaped exactly once even when reapers race.
    async fn reap_stale(&self, deadlines: &StaleDeadlines, now: DateTime<Utc>) -> Result<Vec<(CallState, u64)>>;
    async fn call_totals(&self, now: DateTime<Utc>) -> Result<CallTotals>;
    /// Points the call at its recording, in any state; bumps the version. NotFound.
    async fn set_recording(&self, call_id: &str, recording: &Recording, now: DateTime<Utc>) -> Result<Call>;
}

/// The dialler's leadership lease.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Leadership {
    pub holder_id: Option<String>,
    pub term: u64,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Leadership {
    pub fn held_by(&self, holder: &str, now: DateTime<Utc>) -> bool {
        self.holder_id.as_deref() == Some(holder) && self.expires_at.is_some_and(|e| e > now)
    }

    /// The fencing check: Ok when `holder` holds this unexpired lease at exactly `term`,
    /// otherwise the FailedPrecondition a deposed or early dialler gets.
    pub fn fence(&self, holder: &str, term: u64, now: DateTime<Utc>) -> Result<()> {
        if self.held_by(holder, now) && self.term == term {
            return Ok(());
        }
        Err(vox_domain::Error::precondition(format!(
            "{holder} does not hold the leadership lease at term {term} (the current term is {}, held by {}); acquire leadership first",
            self.term,
            self.holder_id.as_deref().unwrap_or("nobody"),
        )))
    }
}

#[async_trait]
pub trait LeadershipStore: Send + Sync {
    /// Grants the lease to `holder` when it is free, expired or already theirs. A renewal
    /// of an unexpired lease keeps the term; any other grant takes a term higher than any
    /// before. When another holder's lease is live, returns it unchanged.
    async fn acquire_leadership(&self, holder: &str, ttl: Duration, now: DateTime<Utc>) -> Result<Leadership>;
    /// Ends the lease early if `holder` holds it at `term`; otherwise changes nothing.
    async fn release_leadership(&self, holder: &str, term: u64, now: DateTime<Utc>) -> Result<Leadership>;
    async fn leadership(&self) -> Result<Leadership>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// AlreadyExists when the email is taken.
    async fn insert_user(&self, user: &User) -> Result<()>;
    async fn get_user(&self, id: &str) -> Result<Option<User>>;
    async fn get_user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    /// Replaces the stored user. The stored token generation is kept, and moved on by one
    /// when the password, role or account status changes (`User::stored_over`, applied
    /// against the stored user inside the update), whatever generation `user` carries.
    /// NotFound; FailedPrecondition when it would leave no active admin.
    async fn update_user(&self, user: &User) -> Result<()>;
    /// Applies `change` to the stored user in one step and returns the user as stored:
    /// fields the change leaves `None` keep their stored value, and the token generation
    /// follows the rule of `update_user`. NotFound; FailedPrecondition when it would leave
    /// no active admin.
    async fn change_user(&self, id: &str, change: &UserChange, now: DateTime<Utc>) -> Result<User>;
    /// NotFound; FailedPrecondition when it would leave no active admin.
    async fn delete_user(&self, id: &str) -> Result<()>;
    async fn count_users(&self) -> Result<u64>;
}

/// Integrations' API keys ([`vox_domain::api_key`]).
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// AlreadyExists for a known id.
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()>;
    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKey>>;
    /// Every key, revoked ones included, newest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>>;
    /// Revokes the key at `now` and returns it as stored; a key already revoked keeps its
    /// first revocation time. NotFound.
    async fn revoke_api_key(&self, id: &str, now: DateTime<Utc>) -> Result<ApiKey>;
    /// Records that the key was used at `now` (never moving the time back). NotFound.
    async fn touch_api_key(&self, id: &str, now: DateTime<Utc>) -> Result<()>;
}

/// One number on the do-not-call list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DncEntry {
    /// E.164.
    pub number: String,
    /// The campaign it applies to; empty for the global list.
    pub campaign_id: String,
    pub added_at: DateTime<Utc>,
    /// "user:<email>" or "node:<id>".
    pub added_by: String,
}

/// The do-not-call list: numbers never dialled, by every campaign (the global list,
/// `campaign_id` empty) or by one. voxbridge checks it when it leases calls, so a number
/// added while its calls wait is still never dialled.
#[async_trait]
pub trait DncStore: Send + Sync {
    /// Adds E.164 `numbers` (validated by the caller) to one list; returns how many were
    /// not on it yet.
    async fn add_dnc(&self, campaign_id: &str, numbers: &[String], actor: &str, now: DateTime<Utc>) -> Result<u32>;
    /// Returns how many were on the list.
    async fn remove_dnc(&self, campaign_id: &str, numbers: &[String]) -> Result<u32>;
    /// One list, by number, at most `limit` entries after `after` (a number).
    async fn list_dnc(&self, campaign_id: &str, after: &str, limit: usize) -> Result<Vec<DncEntry>>;
    /// Which of `numbers` `campaign_id` may not call: on the global list or on its own.
    async fn blocked_numbers(&self, campaign_id: &str, numbers: &[String]) -> Result<Vec<String>>;
}

/// The activity feed (`vox_domain::feed`): written by the call and campaign stores in the
/// same transaction as each change, read here in order.
#[async_trait]
pub trait FeedStore: Send + Sync {
    /// Entries after `q.after`, oldest first, at most `q.limit`.
    async fn list_feed(&self, q: &FeedQuery) -> Result<Vec<FeedEvent>>;
    /// The id of the newest entry (0 when the feed is empty).
    async fn feed_head(&self) -> Result<u64>;
    /// Deletes entries older than `before`; returns how many. Afterwards
    /// [`FeedStore::feed_pruned_through`] is at least the highest id deleted.
    async fn prune_feed(&self, before: DateTime<Utc>) -> Result<u64>;
    /// The highest id ever pruned (0: nothing was): a reader that last saw an id below it
    /// has missed entries and is told so.
    async fn feed_pruned_through(&self) -> Result<u64>;
    /// Appends `events`, numbered in order, in one transaction: reports of work done
    /// outside the stores (a recording read back), not changes of stored records, which
    /// append in the same transaction as the change.
    async fn append_feed(&self, events: &[FeedEvent]) -> Result<()>;
    /// Appends `events` (the leading dialler's own reports, such as pacing figures) in one
    /// transaction, if `holder` holds the unexpired dialler leadership at exactly `term` at
    /// `now`; otherwise FailedPrecondition and nothing is written. The check and the append
    /// are atomic: a leadership change committed meanwhile makes one of the two retry.
    async fn append_as_leader(&self, holder: &str, term: u64, events: &[FeedEvent], now: DateTime<Utc>) -> Result<()>;
}

/// Webhook endpoints, the record of their deliveries, and how far the dispatcher has
/// read the activity feed for them.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn insert_webhook(&self, endpoint: &WebhookEndpoint) -> Result<()>;
    async fn get_webhook(&self, id: &str) -> Result<Option<WebhookEndpoint>>;
    /// Oldest first.
    async fn list_webhooks(&self) -> Result<Vec<WebhookEndpoint>>;
    /// Replaces the stored endpoint. NotFound when there is none.
    async fn update_webhook(&self, endpoint: &WebhookEndpoint) -> Result<()>;
    /// Deletes the endpoint and its delivery record. NotFound when there is none.
    async fn delete_webhook(&self, id: &str) -> Result<()>;
    async fn record_delivery(&self, attempt: &DeliveryAttempt) -> Result<()>;
    /// The endpoint's attempts, newest first, at most `limit`.
    async fn list_deliveries(&self, endpoint_id: &str, limit: usize) -> Result<Vec<DeliveryAttempt>>;
    /// The id of the last feed event the dispatcher queued deliveries for (0: none).
    async fn webhook_cursor(&self) -> Result<u64>;
    /// Moves the cursor from `from` to `to` if it is still at `from`; false when another
    /// dispatcher moved it first.
    async fn advance_webhook_cursor(&self, from: u64, to: u64) -> Result<bool>;
}

/// The latest heartbeat of each node. Ephemeral by design: losing it makes nodes look
/// offline until their next heartbeat (2 s), and loses nothing else.
#[async_trait]
pub trait PresenceStore: Send + Sync {
    async fn put_presence(&self, presence: &Presence) -> Result<()>;
    async fn get_presence(&self, node_id: &str) -> Result<Option<Presence>>;
    async fn list_presence(&self) -> Result<Vec<Presence>>;
    async fn remove_presence(&self, node_id: &str) -> Result<()>;
}

/// Something in the cluster changed: dashboards watching it recompute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    NodeChanged(String),
    CallChanged(String),
    CampaignChanged(String),
    RegionChanged(String),
}

/// The live event bus that feeds dashboard watches.
pub trait EventBus: Send + Sync {
    fn publish(&self, event: ClusterEvent);
    /// Events published from now on. A slow subscriber may miss events but is told by a
    /// `None` item that it lagged, so it can recompute from the stores.
    fn subscribe(&self) -> BoxStream<'static, Option<ClusterEvent>>;
    /// Events waiting to be delivered to other instances, and events dropped because that
    /// queue was full, since this process started (a bus within one process: none).
    fn backlog(&self) -> (u64, u64) {
        (0, 0)
    }
}

#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// Ok when the store answers.
    async fn ping(&self) -> Result<()>;
}

/// What the abandon ledger counts over one period of a campaign's calls.
///
/// A *live answer* is a call a person answered: it reached `answered` (so it carries
/// `answered_at`, the instant it is counted at) and was not then found to be an answering
/// machine, whatever its end (`completed`, `abandoned`, `failed` after the answer, or
/// still live). An *abandon* is a live answer that ended `abandoned`: the gateway found
/// no free worker within the connect window. Machine answers are counted apart, at the
/// instant they ended, and never enter the rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnswerTally {
    pub live_answers: u64,
    pub abandons: u64,
    pub machine_answers: u64,
}

impl AnswerTally {
    /// abandons / live answers; 0 with no live answer.
    pub fn abandon_rate(&self) -> f64 {
        if self.live_answers == 0 { 0.0 } else { self.abandons as f64 / self.live_answers as f64 }
    }
}

/// The abandon ledger's reads of the call records (see [`AnswerTally`]). Periods are
/// half-open, `[from, to)`, on the instant a call was answered.
#[async_trait]
pub trait AbandonLedgerStore: Send + Sync {
    async fn answer_tally(&self, campaign_id: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<AnswerTally>;
    /// The campaign's abandoned calls answered in `[from, to)`, by (`answered_at`, id)
    /// ascending, at most `limit` after `after` (exclusive).
    async fn abandoned_calls(
        &self,
        campaign_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<(DateTime<Utc>, String)>,
        limit: usize,
    ) -> Result<Vec<Call>>;
}

/// One implementation of every storage trait, chosen by configuration.
#[derive(Clone)]
pub struct Stores {
    pub regions: Arc<dyn RegionStore>,
    pub nodes: Arc<dyn NodeStore>,
    pub audit: Arc<dyn AuditStore>,
    pub campaigns: Arc<dyn CampaignStore>,
    pub calls: Arc<dyn CallStore>,
    pub leadership: Arc<dyn LeadershipStore>,
    pub users: Arc<dyn UserStore>,
    pub dnc: Arc<dyn DncStore>,
    pub api_keys: Arc<dyn ApiKeyStore>,
    pub feed: Arc<dyn FeedStore>,
    pub webhooks: Arc<dyn WebhookStore>,
    pub presence: Arc<dyn PresenceStore>,
    pub events: Arc<dyn EventBus>,
    pub health: Arc<dyn StoreHealth>,
    pub ledger: Arc<dyn AbandonLedgerStore>,
}

impl Stores {
    /// Every document trait from one backend, with in-process presence and events (one
    /// voxbridge, or a cluster before Redis shares them).
    pub fn with_local_presence<T>(db: Arc<T>) -> Stores
    where
        T: RegionStore
            + NodeStore
            + AuditStore
            + CampaignStore
            + CallStore
            + LeadershipStore
            + UserStore
            + DncStore
            + ApiKeyStore
            + FeedStore
            + WebhookStore
            + StoreHealth
            + AbandonLedgerStore
            + 'static,
    {
        Stores {
            regions: db.clone(),
            nodes: db.clone(),
            audit: db.clone(),
            campaigns: db.clone(),
            calls: db.clone(),
            leadership: db.clone(),
            users: db.clone(),
            dnc: db.clone(),
            api_keys: db.clone(),
            feed: db.clone(),
            webhooks: db.clone(),
            ledger: db.clone(),
            health: db,
            presence: Arc::new(crate::memory::MemoryPresence::default()),
            events: Arc::new(crate::memory::MemoryEventBus::default()),
        }
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stores")
    }
}
