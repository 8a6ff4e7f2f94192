//! In-process implementations for the embedded family: presence and the event bus. Both
//! are ephemeral by contract, so one process's memory is the right home on one machine.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast;
use vox_domain::Result;
use vox_domain::node::Presence;

use crate::{ClusterEvent, EventBus, PresenceStore};

/// Each node's last heartbeat. Entries are shared (`Arc`), so a reader of every node (the
/// dashboard: 10,000 of them) holds the lock only to count references, and copies them
/// after letting go: heartbeats, which take the lock to write, never wait for the copy.
#[derive(Debug, Default)]
pub struct MemoryPresence {
    nodes: RwLock<HashMap<String, Arc<Presence>>>,
}

#[async_trait]
impl PresenceStore for MemoryPresence {
    async fn put_presence(&self, presence: &Presence) -> Result<()> {
        let entry = Arc::new(presence.clone());
        let old = self.nodes.write().unwrap_or_else(|p| p.into_inner()).insert(presence.node_id.clone(), entry);
        // Freed after the lock is let go.
        drop(old);
        Ok(())
    }

    async fn get_presence(&self, node_id: &str) -> Result<Option<Presence>> {
        let entry = self.nodes.read().unwrap_or_else(|p| p.into_inner()).get(node_id).cloned();
        Ok(entry.map(|p| (*p).clone()))
    }

    async fn list_presence(&self) -> Result<Vec<Presence>> {
        let shared: Vec<Arc<Presence>> =
            self.nodes.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let mut all: Vec<Presence> = shared.iter().map(|p| (**p).clone()).collect();
        all.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(all)
    }

    async fn remove_presence(&self, node_id: &str) -> Result<()> {
        self.nodes.write().unwrap_or_else(|p| p.into_inner()).remove(node_id);
        Ok(())
    }
}

/// A broadcast channel; subscribers that fall more than 1024 events behind get a lag marker.
#[derive(Debug)]
pub struct MemoryEventBus {
    tx: broadcast::Sender<ClusterEvent>,
}

impl Default for MemoryEventBus {
    fn default() -> Self {
        MemoryEventBus { tx: broadcast::channel(1024).0 }
    }
}

impl EventBus for MemoryEventBus {
    fn publish(&self, event: ClusterEvent) {
        // No subscribers is normal: nobody is watching a dashboard.
        let _ = self.tx.send(event);
    }

    fn subscribe(&self) -> BoxStream<'static, Option<ClusterEvent>> {
        let rx = self.tx.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(e) => Some((Some(e), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some((None, rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }
}
