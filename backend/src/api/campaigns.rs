use std::sync::Arc;

use tonic::Request;
use vox_domain::campaign::{self, Campaign, CampaignSpec, CampaignStatus, NumberUpload};
use vox_domain::node::NodeKind;
use vox_domain::user::Role;
use vox_domain::{Error, Result, ids};
use vox_proto::backend::v1 as pb;
use vox_proto::backend::v1::campaign_service_server::CampaignService;
use vox_store::ClusterEvent;

use super::{RpcResult, reply, required_id};
use crate::bridge::Bridge;

#[derive(Debug, Clone)]
pub struct Campaigns(pub Arc<Bridge>);

const READERS: &[NodeKind] = &[NodeKind::Dialler, NodeKind::Gateway, NodeKind::Console];

impl Campaigns {
    async fn to_proto(&self, c: &Campaign) -> Result<pb::Campaign> {
        Ok(campaign::campaign_to_proto(c, self.0.stores.campaigns.campaign_counts(&c.id).await?))
    }

    async fn spec(&self, s: Option<&pb::CampaignSpec>) -> Result<CampaignSpec> {
        let spec = CampaignSpec::from_proto(s)?;
        if self.0.stores.regions.get_region(&spec.region_id).await?.is_none() {
            return Err(Error::invalid(
                "spec.region_id",
                format!("no region {:?}; create the region first", spec.region_id),
            ));
        }
        Ok(spec)
    }

    async fn set_status(&self, req: Request<pb::CampaignActionRequest>, to: CampaignStatus) -> Result<pb::Campaign> {
        let user = self.0.auth.user(req.metadata(), Role::Operator).await?;
        let id = required_id("id", &req.get_ref().id)?;
        let actor = format!("user:{}", user.email);
        let c = self.0.stores.campaigns.set_campaign_status(&id, to, &actor, self.0.clock.now()).await?;
        self.0.stores.audit.append_audit(&self.0.audit(&actor, &format!("campaign.{}", to.as_str()), &id, "")).await?;
        self.0.publish(ClusterEvent::CampaignChanged(id));
        self.to_proto(&c).await
    }

    async fn create(&self, req: Request<pb::CreateCampaignRequest>) -> Result<pb::Campaign> {
        let user = self.0.auth.user(req.metadata(), Role::Operator).await?;
        let spec = self.spec(req.get_ref().spec.as_ref()).await?;
        let now = self.0.clock.now();
        let c = Campaign {
            id: ids::new_id(ids::CAMPAIGN),
            spec,
            status: CampaignStatus::Draft,
            created_at: now,
            updated_at: now,
        };
        self.0.stores.campaigns.insert_campaign(&c).await?;
        let actor = format!("user:{}", user.email);
        self.0.stores.audit.append_audit(&self.0.audit(&actor, "campaign.create", &c.id, &c.spec.name)).await?;
        self.0.publish(ClusterEvent::CampaignChanged(c.id.clone()));
        self.to_proto(&c).await
    }

    async fn add_numbers(&self, req: Request<pb::AddNumbersRequest>) -> Result<pb::AddNumbersResponse> {
        self.0.auth.user(req.metadata(), Role::Operator).await?;
        let r = req.into_inner();
        let id = required_id("campaign_id", &r.campaign_id)?;
        let upload = NumberUpload::parse(&r.numbers)?;
        let already = self.0.stores.campaigns.add_numbers(&id, &upload.valid, self.0.clock.now()).await?;
        let mut rejected: Vec<pb::NumberRejection> = upload
            .rejected
            .into_iter()
            .map(|(row, input, reason)| pb::NumberRejection { row, input, reason })
            .collect();
        for row in &already {
            let input = r.numbers.get(*row as usize - 1).cloned().unwrap_or_default();
            rejected.push(pb::NumberRejection { row: *row, input, reason: "already in the campaign".into() });
        }
        rejected.sort_by_key(|r| r.row);
        self.0.publish(ClusterEvent::CampaignChanged(id));
        Ok(pb::AddNumbersResponse { accepted: (upload.valid.len() - already.len()) as u32, rejected })
    }
}

#[tonic::async_trait]
impl CampaignService for Campaigns {
    async fn create_campaign(&self, req: Request<pb::CreateCampaignRequest>) -> RpcResult<pb::Campaign> {
        reply("CreateCampaign", self.create(req).await)
    }

    async fn get_campaign(&self, req: Request<pb::GetCampaignRequest>) -> RpcResult<pb::Campaign> {
        let r = async {
            self.0.auth.reader(req.metadata(), READERS).await?;
            let id = required_id("id", &req.get_ref().id)?;
            let c =
                self.0.stores.campaigns.get_campaign(&id).await?.ok_or_else(|| Error::not_found("campaign", &id))?;
            self.to_proto(&c).await
        };
        reply("GetCampaign", r.await)
    }

    async fn list_campaigns(&self, req: Request<pb::ListCampaignsRequest>) -> RpcResult<pb::ListCampaignsResponse> {
        let r = async {
            self.0.auth.reader(req.metadata(), READERS).await?;
            let status = CampaignStatus::from_proto_filter(req.get_ref().status)?;
            let mut out = Vec::new();
            for c in self.0.stores.campaigns.list_campaigns(status).await? {
                out.push(self.to_proto(&c).await?);
            }
            Ok(pb::ListCampaignsResponse { campaigns: out })
        };
        reply("ListCampaigns", r.await)
    }

    async fn update_campaign(&self, req: Request<pb::UpdateCampaignRequest>) -> RpcResult<pb::Campaign> {
        let r = async {
            let user = self.0.auth.user(req.metadata(), Role::Operator).await?;
            let id = required_id("id", &req.get_ref().id)?;
            let spec = self.spec(req.get_ref().spec.as_ref()).await?;
            let c = self.0.stores.campaigns.update_campaign_spec(&id, &spec, self.0.clock.now()).await?;
            let actor = format!("user:{}", user.email);
            self.0.stores.audit.append_audit(&self.0.audit(&actor, "campaign.update", &id, "")).await?;
            self.0.publish(ClusterEvent::CampaignChanged(id));
            self.to_proto(&c).await
        };
        reply("UpdateCampaign", r.await)
    }

    async fn start_campaign(&self, req: Request<pb::CampaignActionRequest>) -> RpcResult<pb::Campaign> {
        reply("StartCampaign", self.set_status(req, CampaignStatus::Running).await)
    }

    async fn pause_campaign(&self, req: Request<pb::CampaignActionRequest>) -> RpcResult<pb::Campaign> {
        reply("PauseCampaign", self.set_status(req, CampaignStatus::Paused).await)
    }

    async fn complete_campaign(&self, req: Request<pb::CampaignActionRequest>) -> RpcResult<pb::Campaign> {
        reply("CompleteCampaign", self.set_status(req, CampaignStatus::Completed).await)
    }

    async fn add_numbers(&self, req: Request<pb::AddNumbersRequest>) -> RpcResult<pb::AddNumbersResponse> {
        reply("AddNumbers", Campaigns::add_numbers(self, req).await)
    }
}
