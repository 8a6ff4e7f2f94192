//! EventService: the activity feed (`vox_domain::feed`) for integrations. voxgate's WSS
//! event stream and webhook delivery read it through here, so every gateway serves the
//! same feed.
//!
//! A watch reads the store from the caller's last id on, then waits for the cluster's
//! event bus (a call or campaign changed, on any instance) or a one-second tick, and
//! reads again. The store is the truth, the bus only a wake-up: a lost bus message delays
//! an event by at most a second and loses nothing, and memory per watcher is one page.
//! On every tick the caller's credential is checked again, so a revoked key, a disabled
//! user or a deleted node loses its stream within a second.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use vox_domain::feed::{self, FeedEvent, FeedQuery};
use vox_domain::node::NodeKind;
use vox_domain::{Error, Result};
use vox_proto::backend::v1 as pb;
use vox_proto::backend::v1::event_service_server::EventService;
use vox_store::ClusterEvent;

use super::{RpcResult, limit, reply};
use crate::auth::Scope;
use crate::bridge::Bridge;

#[derive(Debug, Clone)]
pub struct Events(pub Arc<Bridge>);

/// Nodes that may read the feed: gateways serve it to integrations, the console shows it.
const READERS: &[NodeKind] = &[NodeKind::Gateway, NodeKind::Console];

/// How many events a watch reads from the store at a time.
const PAGE: usize = 500;

/// How often a watch reads even without a wake-up, and checks its caller again.
const TICK: Duration = Duration::from_secs(1);

/// What a reader asked for, within what it may see.
#[derive(Debug, Clone)]
struct Filter {
    campaign_id: Option<String>,
    types: Vec<String>,
}

impl Filter {
    /// The request's filter, kept to the caller's scope: a key limited to one campaign
    /// reads that campaign's events only, and naming another is NotFound (it learns
    /// nothing of other campaigns).
    fn new(scope: &Scope, campaign_id: &str, types: &[String]) -> Result<Filter> {
        let types = feed::check_types("types", types)?;
        let asked = campaign_id.trim();
        let campaign_id = match scope.campaign() {
            Some(own) if !asked.is_empty() && asked != own => return Err(Error::not_found("campaign", asked)),
            Some(own) => Some(own.to_string()),
            None if asked.is_empty() => None,
            None => Some(super::required_id("campaign_id", asked)?),
        };
        Ok(Filter { campaign_id, types })
    }

    fn wants(&self, e: &FeedEvent) -> bool {
        feed::type_matches(&self.types, &e.kind)
    }
}

/// The events a reader that last saw `after` missed to pruning, if any.
async fn gap(bridge: &Bridge, after: u64) -> Result<Option<pb::EventGap>> {
    let pruned = bridge.stores.feed.feed_pruned_through().await?;
    Ok((after < pruned).then_some(pb::EventGap { first_missed_id: after + 1, last_missed_id: pruned }))
}

#[tonic::async_trait]
impl EventService for Events {
    type WatchEventsStream = Pin<Box<dyn Stream<Item = std::result::Result<pb::WatchEventsResponse, Status>> + Send>>;

    async fn list_events(&self, req: Request<pb::ListEventsRequest>) -> RpcResult<pb::ListEventsResponse> {
        let r = async {
            let (_, scope) = self.0.auth.reader_in_scope(req.metadata(), READERS).await?;
            let r = req.get_ref();
            let filter = Filter::new(&scope, &r.campaign_id, &r.types)?;
            let page_size = limit("page_size", r.page_size, 100, 1000)?;
            let gap = gap(&self.0, r.after_id).await?;
            let q = FeedQuery { after: r.after_id, campaign_id: filter.campaign_id.clone(), limit: page_size };
            let read = self.0.stores.feed.list_feed(&q).await?;
            // Past every event read, wanted or not, so the next page moves on.
            let next_after_id = read.last().map_or(r.after_id, |e| e.id);
            let events = read.iter().filter(|e| filter.wants(e)).map(FeedEvent::to_proto).collect();
            Ok(pb::ListEventsResponse { events, next_after_id, gap })
        };
        reply("ListEvents", r.await)
    }

    async fn watch_events(&self, req: Request<pb::WatchEventsRequest>) -> RpcResult<Self::WatchEventsStream> {
        let start = async {
            let (_, scope) = self.0.auth.reader_in_scope(req.metadata(), READERS).await?;
            let r = req.get_ref();
            let filter = Filter::new(&scope, &r.campaign_id, &r.types)?;
            let gap = gap(&self.0, r.after_id).await?;
            Ok::<_, Error>((filter, gap))
        };
        let (filter, gap) = match start.await {
            Ok(v) => v,
            Err(e) => return reply("WatchEvents", Err(e)),
        };
        let metadata = req.metadata().clone();
        let after = req.get_ref().after_id;
        let bridge = Arc::clone(&self.0);
        let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<pb::WatchEventsResponse, Status>>(64);
        tokio::spawn(async move {
            // Subscribed before the first read: a change committed after that read wakes us.
            let mut bus = bridge.stores.events.subscribe();
            let mut shutdown = bridge.shutdown.clone();
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            if let Some(gap) = gap {
                let item = pb::WatchEventsResponse { item: Some(pb::watch_events_response::Item::Gap(gap)) };
                if tx.send(Ok(item)).await.is_err() {
                    return;
                }
            }
            let mut after = after;
            loop {
                // Everything committed since the last read, a page at a time.
                loop {
                    let q = FeedQuery { after, campaign_id: filter.campaign_id.clone(), limit: PAGE };
                    let page = match bridge.stores.feed.list_feed(&q).await {
                        Ok(page) => page,
                        Err(e) => {
                            let _ = tx.send(Err(super::status("WatchEvents", e))).await;
                            return;
                        }
                    };
                    let full = page.len() == PAGE;
                    for e in page {
                        after = e.id;
                        if !filter.wants(&e) {
                            continue;
                        }
                        let item = pb::WatchEventsResponse {
                            item: Some(pb::watch_events_response::Item::Event(e.to_proto())),
                        };
                        if tx.send(Ok(item)).await.is_err() {
                            return;
                        }
                    }
                    if !full {
                        break;
                    }
                }
                tokio::select! {
                    woke = bus.next() => match woke {
                        // A lagging subscriber (None item) reads too: it may have missed a wake-up.
                        Some(Some(ClusterEvent::CallChanged(_) | ClusterEvent::CampaignChanged(_)) | None) => {}
                        Some(Some(_)) => continue,
                        None => return,
                    },
                    _ = tick.tick() => {
                        if let Err(e) = bridge.auth.reader_in_scope(&metadata, READERS).await {
                            let _ = tx.send(Err(super::status("WatchEvents", e))).await;
                            return;
                        }
                    }
                    _ = shutdown.changed() => return,
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}
