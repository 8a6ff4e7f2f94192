//! The state every RPC handler shares.

use std::sync::Arc;

use vox_domain::node::AuditEvent;
use vox_domain::{Clock, ids};
use vox_store::{ClusterEvent, Stores};

use crate::auth::Auth;
use crate::config::Settings;
use crate::crypto::MasterKey;
use crate::metrics::Metrics;
use crate::storage::RegionStores;

#[derive(Debug)]
pub struct Bridge {
    pub stores: Stores,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    pub master_key: MasterKey,
    pub auth: Auth,
    /// Password hashing within a budget, and each address's sign-in budget.
    pub passwords: Arc<crate::passwords::Passwords>,
    /// Signs the cluster's worker and stream tokens (a key derived from the master key,
    /// the same on every instance).
    pub tokens: vox_node::tokens::TokenSigner,
    pub metrics: Arc<Metrics>,
    /// Each region's object storage, and the signer of local playback URLs.
    pub region_stores: RegionStores,
    /// The durable work queue (webhook deliveries): SQLite beside the data, or Redis when
    /// voxbridge runs with `--redis`.
    pub queue: Queue,
    /// Wakes the webhook deliverers when this instance queues deliveries.
    pub webhook_wake: Arc<tokio::sync::Notify>,
    /// Flips to true when the server starts shutting down; long streams end on it.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// The work queue, shared by every task of this voxbridge.
#[derive(Clone)]
pub struct Queue(pub Arc<dyn vox_store::queue::WorkQueue>);

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queue(..)")
    }
}

impl std::ops::Deref for Queue {
    type Target = dyn vox_store::queue::WorkQueue;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl Bridge {
    pub fn audit(&self, actor: &str, action: &str, target_id: &str, reason: &str) -> AuditEvent {
        AuditEvent {
            id: ids::new_id(ids::AUDIT),
            at: self.clock.now(),
            actor: actor.into(),
            action: action.into(),
            target_id: target_id.into(),
            reason: reason.into(),
        }
    }

    pub fn publish(&self, event: ClusterEvent) {
        self.stores.events.publish(event);
    }
}
