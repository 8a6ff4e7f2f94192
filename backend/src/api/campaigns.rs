use std::sync::Arc;

use tonic::Request;
use vox_domain::campaign::{self, AgentKind, AgentSettings, Campaign, CampaignSpec, CampaignStatus};
use vox_domain::node::NodeKind;
use vox_domain::user::{Role, User};
use vox_domain::{Error, Result, ids};
use vox_proto::backend::v1 as pb;
use vox_proto::backend::v1::campaign_service_server::CampaignService;
use vox_store::ClusterEvent;

use super::{RpcResult, ledger, numbers, reply, required_id};
use crate::auth::Principal;
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

    /// Where a campaign's call audio may go. An external agent receives every call's audio,
    /// so choosing its URL is an admin's decision: an operator's create or edit may keep the
    /// URL the campaign has (or drop the external agent) but not set or change it. A URL
    /// that is set or changed must be `wss://` unless voxbridge runs with
    /// `--allow-insecure-agent-urls` (local demos and tests); a campaign that already has a
    /// `ws://` URL keeps it through edits that leave it alone.
    fn check_agent(&self, user: &User, before: Option<&AgentSettings>, after: &AgentSettings) -> Result<()> {
        let url = |a: &AgentSettings| (a.kind == AgentKind::External).then(|| a.external_url.clone());
        let Some(new_url) = url(after) else { return Ok(()) };
        if before.and_then(url).as_deref() == Some(new_url.as_str()) {
            return Ok(());
        }
        if user.role < Role::Admin {
            return Err(Error::permission_denied(format!(
                "spec.agent.external_url: an external agent receives the audio of every call, so setting or \
                 changing its URL needs the admin role; {} is {}: keep the campaign's current agent or ask an admin",
                user.email,
                user.role.as_str()
            )));
        }
        if !new_url.starts_with("wss://") && !self.0.settings.allow_insecure_agent_urls {
            return Err(Error::invalid(
                "spec.agent.external_url",
                format!(
                    "{new_url:?} is not a wss:// URL: call audio must be encrypted on its way to the agent \
                     (voxbridge accepts ws:// only with --allow-insecure-agent-urls, for local testing)"
                ),
            ));
        }
        Ok(())
    }

    /// The campaign `id` names, when the caller may read it: any user, a dialler, gateway
    /// or console node, or an API key of that campaign (NotFound for other campaigns').
    async fn readable<T>(&self, req: &Request<T>, id: &str) -> Result<Campaign> {
        let (_, scope) = self.0.auth.reader_in_scope(req.metadata(), READERS).await?;
        let id = required_id("campaign_id", id)?;
        scope.check(Some(&id), "campaign", &id)?;
        self.0.stores.campaigns.get_campaign(&id).await?.ok_or_else(|| Error::not_found("campaign", &id))
    }

    async fn set_status(&self, req: Request<pb::CampaignActionRequest>, to: CampaignStatus) -> Result<pb::Campaign> {
        // A key limited to this campaign may pause and resume it.
        let (user, scope) = self.0.auth.user_in_scope(req.metadata(), Role::Operator).await?;
        let id = required_id("id", &req.get_ref().id)?;
        scope.check(Some(&id), "campaign", &id)?;
        let actor = Principal::User(user).actor();
        let c = self.0.stores.campaigns.set_campaign_status(&id, to, &actor, self.0.clock.now()).await?;
        self.0.stores.audit.append_audit(&self.0.audit(&actor, &format!("campaign.{}", to.as_str()), &id, "")).await?;
        self.0.publish(ClusterEvent::CampaignChanged(id));
        self.to_proto(&c).await
    }

    async fn create(&self, req: Request<pb::CreateCampaignRequest>) -> Result<pb::Campaign> {
        let user = self.0.auth.user(req.metadata(), Role::Operator).await?;
        let spec = self.spec(req.get_ref().spec.as_ref()).await?;
        self.check_agent(&user, None, &spec.agent)?;
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
}

#[tonic::async_trait]
impl CampaignService for Campaigns {
    async fn create_campaign(&self, req: Request<pb::CreateCampaignRequest>) -> RpcResult<pb::Campaign> {
        reply("CreateCampaign", self.create(req).await)
    }

    async fn get_campaign(&self, req: Request<pb::GetCampaignRequest>) -> RpcResult<pb::Campaign> {
        let r = async {
            let (_, scope) = self.0.auth.reader_in_scope(req.metadata(), READERS).await?;
            let id = required_id("id", &req.get_ref().id)?;
            scope.check(Some(&id), "campaign", &id)?;
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
            let before =
                self.0.stores.campaigns.get_campaign(&id).await?.ok_or_else(|| Error::not_found("campaign", &id))?;
            self.check_agent(&user, Some(&before.spec.agent), &spec.agent)?;
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
        reply("AddNumbers", numbers::add(&self.0, req).await)
    }

    async fn get_abandon_ledger(&self, req: Request<pb::GetAbandonLedgerRequest>) -> RpcResult<pb::AbandonLedger> {
        let r = async {
            let c = self.readable(&req, &req.get_ref().campaign_id).await?;
            ledger::ledger(&self.0, &c).await
        };
        reply("GetAbandonLedger", r.await)
    }

    async fn list_abandoned_calls(
        &self,
        req: Request<pb::ListAbandonedCallsRequest>,
    ) -> RpcResult<pb::ListAbandonedCallsResponse> {
        let r = async {
            let c = self.readable(&req, &req.get_ref().campaign_id).await?;
            ledger::abandoned_calls(&self.0, &c, req.get_ref()).await
        };
        reply("ListAbandonedCalls", r.await)
    }

    type ImportNumbersStream = numbers::ImportReplies;

    async fn import_numbers(
        &self,
        req: Request<tonic::Streaming<pb::ImportNumbersRequest>>,
    ) -> RpcResult<Self::ImportNumbersStream> {
        reply("ImportNumbers", numbers::import(Arc::clone(&self.0), req).await)
    }
}
