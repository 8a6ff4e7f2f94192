//! What several voxbridge instances share through Redis: node presence (each heartbeat a
//! key with a TTL, so freshness is the same from every instance), the live event bus
//! (Redis pub/sub, so a dashboard watch on one instance sees changes made on another), and
//! the durable work queue ([`RedisWorkQueue`], seed 002's at-least-once queue).
//!
//! Redis is not the system of record for calls, nodes or campaigns: losing it loses none
//! of them, and nodes look offline until their next heartbeat reaches a live Redis. The
//! work queue's jobs do live in Redis, so a production Redis runs with `appendonly yes`
//! and `maxmemory-policy noeviction` (the queue warns at start when it does not).

mod publish_queue;
mod queue;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bb8_redis::RedisConnectionManager;
use bb8_redis::bb8::Pool;
use bb8_redis::redis::{self, AsyncCommands};
use futures::StreamExt;
use futures::stream::BoxStream;
use vox_domain::node::Presence;
use vox_domain::{Error, Result};
use vox_store::{ClusterEvent, EventBus, PresenceStore};

pub use publish_queue::PUBLISH_QUEUE_CAP;
use publish_queue::PublishQueue;
pub use queue::RedisWorkQueue;

/// How long one publish may take before Redis counts as slow and the event as lost.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// Published after events were lost (dropped from a full queue, or refused by Redis):
/// every instance's watchers then recompute, as after a broken subscription.
const GAP: &str = "gap:";

fn unavailable(op: &str) -> impl Fn(redis::RedisError) -> Error + '_ {
    move |e| Error::unavailable(format!("redis: {op}: {e}"))
}

/// A pool of connections to one Redis, with a key prefix so clusters can share it.
#[derive(Clone)]
pub struct Redis {
    pool: Pool<RedisConnectionManager>,
    client: redis::Client,
    prefix: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redis({})", self.prefix)
    }
}

impl Redis {
    /// Connects lazily: a Redis that is down at start is retried by each use.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let manager = RedisConnectionManager::new(url).map_err(|e| Error::invalid("redis url", e.to_string()))?;
        let pool = Pool::builder().max_size(16).connection_timeout(Duration::from_secs(2)).build_unchecked(manager);
        let client = redis::Client::open(url).map_err(|e| Error::invalid("redis url", e.to_string()))?;
        Ok(Redis { pool, client, prefix: prefix.to_string() })
    }

    async fn conn(&self) -> Result<bb8_redis::bb8::PooledConnection<'_, RedisConnectionManager>> {
        self.pool.get().await.map_err(|e| Error::unavailable(format!("redis: connect: {e}")))
    }

    fn key(&self, part: &str) -> String {
        format!("{}{part}", self.prefix)
    }
}

/// Presence keys `<prefix>presence:<node id>` expire after `ttl`, well past the online
/// staleness, so dead nodes clean themselves up; an index set lists them.
#[derive(Debug, Clone)]
pub struct RedisPresence {
    redis: Redis,
    ttl: Duration,
}

impl RedisPresence {
    pub fn new(redis: Redis, ttl: Duration) -> Self {
        RedisPresence { redis, ttl }
    }
}

#[async_trait]
impl PresenceStore for RedisPresence {
    async fn put_presence(&self, p: &Presence) -> Result<()> {
        let body = serde_json::to_string(p).map_err(|e| Error::internal(format!("encode presence: {e}")))?;
        let mut c = self.redis.conn().await?;
        let key = self.redis.key(&format!("presence:{}", p.node_id));
        let _: () = c.set_ex(&key, body, self.ttl.as_secs().max(1)).await.map_err(unavailable("write presence"))?;
        let _: usize =
            c.sadd(self.redis.key("presence-index"), &p.node_id).await.map_err(unavailable("index presence"))?;
        Ok(())
    }

    async fn get_presence(&self, node_id: &str) -> Result<Option<Presence>> {
        let mut c = self.redis.conn().await?;
        let v: Option<String> =
            c.get(self.redis.key(&format!("presence:{node_id}"))).await.map_err(unavailable("read presence"))?;
        v.map(|s| serde_json::from_str(&s).map_err(|e| Error::internal(format!("decode presence: {e}")))).transpose()
    }

    async fn list_presence(&self) -> Result<Vec<Presence>> {
        let mut c = self.redis.conn().await?;
        let index = self.redis.key("presence-index");
        let ids: HashSet<String> = c.smembers(&index).await.map_err(unavailable("list presence"))?;
        let mut ids: Vec<String> = ids.into_iter().collect();
        ids.sort();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.redis.key(&format!("presence:{id}"))).collect();
        let values: Vec<Option<String>> = c.mget(&keys).await.map_err(unavailable("read presence"))?;
        let mut out = Vec::new();
        for (id, v) in ids.iter().zip(values) {
            match v {
                Some(s) => {
                    out.push(serde_json::from_str(&s).map_err(|e| Error::internal(format!("decode presence: {e}")))?)
                }
                // Expired: drop it from the index too.
                None => {
                    let _: usize = c.srem(&index, id).await.map_err(unavailable("prune presence"))?;
                }
            }
        }
        Ok(out)
    }

    async fn remove_presence(&self, node_id: &str) -> Result<()> {
        let mut c = self.redis.conn().await?;
        let _: usize =
            c.del(self.redis.key(&format!("presence:{node_id}"))).await.map_err(unavailable("remove presence"))?;
        let _: usize =
            c.srem(self.redis.key("presence-index"), node_id).await.map_err(unavailable("unindex presence"))?;
        Ok(())
    }
}

fn encode(e: &ClusterEvent) -> String {
    match e {
        ClusterEvent::NodeChanged(id) => format!("node:{id}"),
        ClusterEvent::CallChanged(id) => format!("call:{id}"),
        ClusterEvent::CampaignChanged(id) => format!("campaign:{id}"),
        ClusterEvent::RegionChanged(id) => format!("region:{id}"),
    }
}

fn decode(s: &str) -> Option<ClusterEvent> {
    let (kind, id) = s.split_once(':')?;
    let id = id.to_string();
    Some(match kind {
        "node" => ClusterEvent::NodeChanged(id),
        "call" => ClusterEvent::CallChanged(id),
        "campaign" => ClusterEvent::CampaignChanged(id),
        "region" => ClusterEvent::RegionChanged(id),
        _ => return None,
    })
}

/// Cluster events over Redis pub/sub on `<prefix>events`. Each instance holds one
/// subscription and fans events out to its local watchers; publishes go out in order
/// through one task, from a queue of at most [`PUBLISH_QUEUE_CAP`] events (the oldest
/// go first when Redis is slow or down; see `publish_queue`). When the subscription
/// drops, or events were lost on their way out, watchers get a gap marker (`None`) so
/// they recompute.
#[derive(Debug, Clone)]
pub struct RedisEventBus {
    queue: Arc<PublishQueue>,
    local: tokio::sync::broadcast::Sender<Option<ClusterEvent>>,
}

impl RedisEventBus {
    /// Starts the subscription (waiting up to 2 s for it, so events published right after
    /// start are seen) and the publisher.
    pub async fn start(redis: Redis) -> Self {
        let (local, _) = tokio::sync::broadcast::channel(1024);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        {
            let redis = redis.clone();
            let local = local.clone();
            tokio::spawn(async move {
                let channel = redis.key("events");
                let mut ready = Some(ready_tx);
                loop {
                    let subscribed = async {
                        let mut pubsub = redis.client.get_async_pubsub().await?;
                        pubsub.subscribe(&channel).await?;
                        Ok::<_, redis::RedisError>(pubsub)
                    };
                    match subscribed.await {
                        Ok(pubsub) => {
                            if let Some(r) = ready.take() {
                                let _ = r.send(());
                            }
                            let mut messages = pubsub.into_on_message();
                            while let Some(msg) = messages.next().await {
                                let payload: String = msg.get_payload().unwrap_or_default();
                                if payload == GAP {
                                    let _ = local.send(None);
                                } else if let Some(e) = decode(&payload) {
                                    let _ = local.send(Some(e));
                                }
                            }
                            tracing::warn!("redis: event subscription ended; reconnecting");
                        }
                        Err(e) => tracing::warn!(error = %e, "redis: subscribe failed; retrying"),
                    }
                    // Watchers may have missed events: tell them to recompute.
                    let _ = local.send(None);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), ready_rx).await;
        Self::with_queue(redis, local, PUBLISH_QUEUE_CAP)
    }

    /// Starts the publisher over a queue of at most `cap` events.
    fn with_queue(
        redis: Redis,
        local: tokio::sync::broadcast::Sender<Option<ClusterEvent>>,
        cap: usize,
    ) -> RedisEventBus {
        let (queue, mut doorbell) = PublishQueue::new(cap);
        let queue = Arc::new(queue);
        let publisher = Arc::downgrade(&queue);
        tokio::spawn(async move {
            let channel = redis.key("events");
            // Events were lost since the last gap marker went out.
            let mut gap = false;
            // Publishes failed in a row: the first is logged, the rest when Redis is back.
            let mut failed: u64 = 0;
            // Ends when every handle of the bus is gone (the doorbell closes).
            while doorbell.recv().await.is_some() {
                while let Some(payload) = publisher.upgrade().and_then(|q| q.pop()) {
                    if let Err(e) = publish(&redis, &channel, payload).await {
                        if failed == 0 {
                            tracing::warn!(
                                error = %e,
                                "redis: publish event failed; watchers catch up on their next refresh"
                            );
                        }
                        failed += 1;
                        gap = true;
                        continue;
                    }
                    if failed > 0 {
                        tracing::warn!(failed, "redis: publishing works again after {failed} failed events");
                        failed = 0;
                    }
                    let dropped = publisher.upgrade().map_or(0, |q| q.take_unreported());
                    if dropped > 0 {
                        tracing::warn!(
                            dropped,
                            "redis: dropped {dropped} events from the full queue while redis was slow or down; \
                             watchers recompute"
                        );
                        gap = true;
                    }
                    if gap && publish(&redis, &channel, GAP.to_string()).await.is_ok() {
                        gap = false;
                    }
                }
            }
        });
        RedisEventBus { queue, local }
    }

    /// Events waiting for Redis to take them (at most [`PUBLISH_QUEUE_CAP`]).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Events dropped from the full queue since this bus started.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped()
    }
}

/// One publish, within [`PUBLISH_TIMEOUT`] (connecting included).
async fn publish(redis: &Redis, channel: &str, payload: String) -> std::result::Result<(), String> {
    let sent = async {
        let mut c = redis.conn().await.map_err(|e| e.message)?;
        c.publish::<_, _, usize>(channel, payload).await.map(|_| ()).map_err(|e| e.to_string())
    };
    match tokio::time::timeout(PUBLISH_TIMEOUT, sent).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", PUBLISH_TIMEOUT.as_secs())),
    }
}

impl EventBus for RedisEventBus {
    fn publish(&self, event: ClusterEvent) {
        self.queue.push(encode(&event));
    }

    fn backlog(&self) -> (u64, u64) {
        (self.queued() as u64, self.dropped())
    }

    fn subscribe(&self) -> BoxStream<'static, Option<ClusterEvent>> {
        let rx = self.local.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(e) => Some((e, rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Some((None, rx)),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }
}

/// Replaces presence and events in `stores` with Redis ones.
pub async fn share_through_redis(
    mut stores: vox_store::Stores,
    url: &str,
    prefix: &str,
    presence_ttl: Duration,
) -> Result<vox_store::Stores> {
    let redis = Redis::connect(url, prefix).await?;
    stores.presence = Arc::new(RedisPresence::new(redis.clone(), presence_ttl));
    stores.events = Arc::new(RedisEventBus::start(redis).await);
    Ok(stores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_wire_form() {
        for e in [
            ClusterEvent::NodeChanged("nd_1".into()),
            ClusterEvent::CallChanged(String::new()),
            ClusterEvent::RegionChanged("rg:x".into()),
        ] {
            assert_eq!(decode(&encode(&e)), Some(e));
        }
        assert_eq!(decode("nonsense"), None);
    }
}
