use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tonic::Request;
use vox_domain::feed::{FeedEvent, PacingFigures};
use vox_domain::node::{Node, NodeKind};
use vox_domain::user::Role;
use vox_domain::{Error, Result, time};
use vox_proto::backend::v1 as pb;
use vox_proto::backend::v1::leadership_service_server::LeadershipService;
use vox_store::{ClusterEvent, Leadership};

use super::{RpcResult, reply};
use crate::auth::Principal;
use crate::bridge::Bridge;

/// The most campaigns one pacing report may carry.
pub const MAX_PACING_CAMPAIGNS: usize = 500;

#[derive(Debug, Clone)]
pub struct Leaders(pub Arc<Bridge>);

fn to_proto(l: &Leadership, caller: Option<&str>, now: DateTime<Utc>) -> pb::Leadership {
    pb::Leadership {
        holder_id: l.holder_id.clone().unwrap_or_default(),
        term: l.term,
        expires_at: l.expires_at.map(time::to_proto),
        held_by_caller: caller.is_some_and(|c| l.held_by(c, now)),
    }
}

impl Leaders {
    /// The calling dialler; `holder_id` must be its own node id (or empty for it).
    async fn dialler(&self, metadata: &tonic::metadata::MetadataMap, holder_id: &str) -> Result<Node> {
        let Principal::Node(node) = self.0.auth.user_or_node(metadata, Role::Admin, &[NodeKind::Dialler]).await? else {
            return Err(Error::permission_denied("only dialler nodes hold the leadership lease"));
        };
        if !holder_id.is_empty() && holder_id != node.id {
            return Err(Error::permission_denied(format!(
                "holder_id {holder_id:?} is not this dialler ({}); a dialler may only lead as itself",
                node.id
            )));
        }
        Ok(node)
    }
}

#[tonic::async_trait]
impl LeadershipService for Leaders {
    async fn acquire_leadership(&self, req: Request<pb::AcquireLeadershipRequest>) -> RpcResult<pb::Leadership> {
        let r = async {
            let node = self.dialler(req.metadata(), &req.get_ref().holder_id).await?;
            let ttl = match req.get_ref().ttl_seconds {
                0 => 10,
                n @ 1..=300 => n,
                n => return Err(Error::invalid("ttl_seconds", format!("{n} is outside 1-300"))),
            };
            let now = self.0.clock.now();
            let before = self.0.stores.leadership.leadership().await?;
            let l =
                self.0.stores.leadership.acquire_leadership(&node.id, Duration::seconds(i64::from(ttl)), now).await?;
            if l.term != before.term {
                tracing::info!(node_id = %node.id, term = l.term, "dialler leadership granted");
                self.0.metrics.leader_term.set(l.term);
            }
            Ok(to_proto(&l, Some(&node.id), now))
        };
        reply("AcquireLeadership", r.await)
    }

    async fn release_leadership(&self, req: Request<pb::ReleaseLeadershipRequest>) -> RpcResult<pb::Leadership> {
        let r = async {
            let node = self.dialler(req.metadata(), &req.get_ref().holder_id).await?;
            let now = self.0.clock.now();
            let l = self.0.stores.leadership.release_leadership(&node.id, req.get_ref().term, now).await?;
            Ok(to_proto(&l, Some(&node.id), now))
        };
        reply("ReleaseLeadership", r.await)
    }

    async fn get_leadership(&self, req: Request<pb::GetLeadershipRequest>) -> RpcResult<pb::Leadership> {
        let r = async {
            let p =
                self.0.auth.reader(req.metadata(), &[NodeKind::Dialler, NodeKind::Gateway, NodeKind::Console]).await?;
            let caller = match &p {
                Principal::Node(n) => Some(n.id.clone()),
                Principal::User(_) => None,
            };
            let l = self.0.stores.leadership.leadership().await?;
            Ok(to_proto(&l, caller.as_deref(), self.0.clock.now()))
        };
        reply("GetLeadership", r.await)
    }

    async fn report_pacing(&self, req: Request<pb::ReportPacingRequest>) -> RpcResult<pb::ReportPacingResponse> {
        let r = async {
            let node = self.dialler(req.metadata(), "").await?;
            let r = req.into_inner();
            if r.campaigns.len() > MAX_PACING_CAMPAIGNS {
                return Err(Error::invalid(
                    "campaigns",
                    format!("{} campaigns in one report; at most {MAX_PACING_CAMPAIGNS}", r.campaigns.len()),
                ));
            }
            let now = self.0.clock.now();
            let mut events = Vec::with_capacity(r.campaigns.len());
            for (i, p) in r.campaigns.iter().enumerate() {
                let field = format!("campaigns[{i}]");
                let figures = PacingFigures::from_proto(&field, p)?;
                if events.iter().any(|e: &FeedEvent| e.campaign_id.as_deref() == Some(figures.campaign_id.as_str())) {
                    return Err(Error::invalid(&field, format!("campaign {} is reported twice", figures.campaign_id)));
                }
                if self.0.stores.campaigns.get_campaign(&figures.campaign_id).await?.is_none() {
                    return Err(Error::invalid(
                        &format!("{field}.campaign_id"),
                        format!("no campaign {} exists", figures.campaign_id),
                    ));
                }
                events.push(FeedEvent::pacing(figures, &node.id, r.fencing_term, now));
            }
            self.0.stores.feed.append_as_leader(&node.id, r.fencing_term, &events, now).await?;
            for e in &events {
                self.0.publish(ClusterEvent::CampaignChanged(e.campaign_id.clone().unwrap_or_default()));
            }
            Ok(pb::ReportPacingResponse { recorded: events.len() as u32 })
        };
        reply("ReportPacing", r.await)
    }
}
