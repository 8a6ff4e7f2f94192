use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use vox_domain::node::NodeKind;
use vox_proto::backend::v1 as pb;
use vox_proto::backend::v1::dashboard_service_server::DashboardService;

use super::{RpcResult, reply};
use crate::bridge::Bridge;
use crate::dashboard::snapshot;

#[derive(Debug, Clone)]
pub struct Dashboards(pub Arc<Bridge>);

type DashboardStream = Pin<Box<dyn Stream<Item = Result<pb::Dashboard, Status>> + Send>>;

/// The figures without the timestamp, to tell a change from a tick.
fn same_figures(a: &pb::Dashboard, b: &pb::Dashboard) -> bool {
    (&a.live, &a.pipeline, &a.capacity) == (&b.live, &b.pipeline, &b.capacity)
}

#[tonic::async_trait]
impl DashboardService for Dashboards {
    type WatchDashboardStream = DashboardStream;

    async fn get_dashboard(&self, req: Request<pb::GetDashboardRequest>) -> RpcResult<pb::Dashboard> {
        let r = async {
            self.0.auth.reader(req.metadata(), &[NodeKind::Console, NodeKind::Dialler]).await?;
            snapshot(&self.0).await
        };
        reply("GetDashboard", r.await)
    }

    /// Sends the figures at once, then on every change (at most every `min_interval`) and
    /// at least every `max_interval`, so a node going stale shows without any event.
    async fn watch_dashboard(&self, req: Request<pb::WatchDashboardRequest>) -> RpcResult<Self::WatchDashboardStream> {
        if let Err(e) = self.0.auth.reader(req.metadata(), &[NodeKind::Console, NodeKind::Dialler]).await {
            return reply("WatchDashboard", Err(e));
        }
        let r = req.get_ref();
        let min = Duration::from_millis(u64::from(if r.min_interval_ms == 0 {
            250
        } else {
            r.min_interval_ms.clamp(50, 60_000)
        }));
        let max = Duration::from_millis(u64::from(if r.max_interval_ms == 0 {
            2000
        } else {
            r.max_interval_ms.clamp(100, 600_000)
        }));
        let bridge = Arc::clone(&self.0);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<pb::Dashboard, Status>>(4);
        tokio::spawn(async move {
            let mut events = bridge.stores.events.subscribe();
            let mut shutdown = bridge.shutdown.clone();
            let mut last: Option<pb::Dashboard> = None;
            let mut last_sent = tokio::time::Instant::now();
            let mut dirty = true;
            let mut tick = tokio::time::interval(min);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    e = events.next() => {
                        if e.is_none() { return; }
                        dirty = true;
                        continue;
                    }
                    _ = shutdown.changed() => return,
                    _ = tx.closed() => return,
                }
                if !dirty && last_sent.elapsed() < max {
                    continue;
                }
                dirty = false;
                let d = match snapshot(&bridge).await {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = tx.send(Err(super::status("WatchDashboard", e))).await;
                        return;
                    }
                };
                if last.as_ref().is_some_and(|l| same_figures(l, &d)) && last_sent.elapsed() < max {
                    continue;
                }
                last_sent = tokio::time::Instant::now();
                last = Some(d);
                if tx.send(Ok(d)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}
