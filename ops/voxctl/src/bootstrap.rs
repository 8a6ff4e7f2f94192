//! What a cluster needs inside voxbridge before its nodes start: the region `local`, a
//! fleet node per fleet host and a gateway node per gateway (named by
//! [`crate::topology`]: `local-fleet` and `local-gateway` on one machine), the console
//! singleton `local-console` (heartbeated by the gateway that serves the console), and a
//! fresh API secret for each node on every run (so no node secret is ever stored by
//! voxctl). Everything is looked up first, so a second run creates nothing new; nodes of
//! an earlier run's other layout (say `local-fleet-2` after `--fleet-hosts 2`, now run
//! with one host) are removed, or they would show as registered but never online.

use anyhow::{Context, bail};
use tonic::transport::Channel;
use tonic::{Code, Request};
use vox_proto::backend::v1 as pb;

use crate::topology::Plan;

pub const REGION_NAME: &str = "local";
pub const REGION_COUNTRY: &str = "US";
pub const CONSOLE_NODE_NAME: &str = "local-console";

/// A node voxctl runs, with the API secret its process gets through `VOX_NODE_SECRET`.
pub struct NodeCredentials {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for NodeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCredentials").field("id", &self.id).field("secret", &"(redacted)").finish()
    }
}

/// The cluster's nodes, ready for their processes.
#[derive(Debug)]
pub struct Nodes {
    pub region_id: String,
    /// One per fleet host of the plan, in its order.
    pub fleets: Vec<NodeCredentials>,
    /// One per gateway of the plan, in its order.
    pub gateways: Vec<NodeCredentials>,
    /// The console singleton, heartbeated by the gateway that serves the console.
    pub console: NodeCredentials,
}

/// An admin session on voxbridge.
#[derive(Debug, Clone)]
pub struct Admin {
    channel: Channel,
    token: String,
}

impl Admin {
    /// Signs in as the admin. A refused password gets an explanation: it is the one in
    /// the credentials file, so the file and the store disagree.
    pub async fn login(bridge_url: &str, email: &str, password: &str, credentials_hint: &str) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(bridge_url.to_string())
            .with_context(|| format!("voxbridge url {bridge_url:?}"))?
            .connect()
            .await
            .with_context(|| format!("connect to voxbridge at {bridge_url}"))?;
        let mut auth = pb::auth_service_client::AuthServiceClient::new(channel.clone());
        let reply = auth.login(pb::LoginRequest { email: email.into(), password: password.into() }).await;
        match reply {
            Ok(r) => Ok(Admin { channel, token: r.into_inner().access_token }),
            Err(s) if s.code() == Code::Unauthenticated => bail!(
                "voxbridge refused the admin {email} with the password in {credentials_hint}: the store in this data \
                 dir was made with another password. Put the original one back in that file, or remove the data dir \
                 to start over (this deletes everything in it)"
            ),
            Err(s) => Err(anyhow::anyhow!("{}: {}", s.code(), s.message())).context("sign in to voxbridge"),
        }
    }

    fn authed<T>(&self, msg: T) -> anyhow::Result<Request<T>> {
        let mut r = Request::new(msg);
        let value = format!("Bearer {}", self.token).parse().context("an access token fit for a header")?;
        r.metadata_mut().insert("authorization", value);
        Ok(r)
    }

    fn regions(&self) -> pb::region_service_client::RegionServiceClient<Channel> {
        pb::region_service_client::RegionServiceClient::new(self.channel.clone())
    }

    fn nodes(&self) -> pb::node_service_client::NodeServiceClient<Channel> {
        pb::node_service_client::NodeServiceClient::new(self.channel.clone())
    }

    /// Ensures the region and the plan's nodes, issues fresh secrets for them, and removes
    /// voxctl's nodes the plan does not run. Gateway endpoints are where each gateway will
    /// listen (they may still say port 0; see [`Admin::set_endpoint`]).
    pub async fn prepare(&self, plan: &Plan) -> anyhow::Result<Nodes> {
        let region_id = self.ensure_region().await?;
        self.retire_other_layouts(&region_id, plan).await?;
        let mut fleets = Vec::new();
        for h in &plan.hosts {
            fleets.push(self.ensure_node(&region_id, pb::NodeKind::Fleet, &h.node_name, &h.node_endpoint).await?);
        }
        let mut gateways = Vec::new();
        for g in &plan.gateways {
            let endpoint = crate::ready::client_url(g.listen);
            gateways.push(self.ensure_node(&region_id, pb::NodeKind::Gateway, &g.node_name, &endpoint).await?);
        }
        let console_endpoint = plan.gateways.iter().find(|g| g.console).map(|g| crate::ready::client_url(g.listen));
        let console = self
            .ensure_node(
                &region_id,
                pb::NodeKind::Console,
                CONSOLE_NODE_NAME,
                console_endpoint.as_deref().unwrap_or(""),
            )
            .await?;
        Ok(Nodes { region_id, fleets, gateways, console })
    }

    /// Removes fleet and gateway nodes with voxctl's names that `plan` does not run: they
    /// are left from a run with another `--fleet-hosts` or `--gateways`, and would stay
    /// registered but offline (the dashboard's red "0/1") for as long as they exist.
    async fn retire_other_layouts(&self, region_id: &str, plan: &Plan) -> anyhow::Result<()> {
        let wanted = plan.node_names();
        for kind in [pb::NodeKind::Fleet, pb::NodeKind::Gateway] {
            let req = pb::ListNodesRequest { region_id: region_id.into(), kind: kind as i32 };
            let list = self.nodes().list_nodes(self.authed(req)?).await.map_err(status).context("list nodes")?;
            for node in list.into_inner().nodes {
                if !Plan::is_voxctl_node(&node.name) || wanted.contains(&node.name.as_str()) {
                    continue;
                }
                let req = pb::DeleteNodeRequest { id: node.id.clone() };
                self.nodes()
                    .delete_node(self.authed(req)?)
                    .await
                    .map_err(status)
                    .with_context(|| format!("remove node {} of an earlier layout", node.name))?;
                tracing::info!(node_id = %node.id, name = %node.name, "removed a node this layout does not run");
            }
        }
        Ok(())
    }

    /// Ensures the dialler node of the demo, with a fresh secret.
    pub async fn ensure_dialler(&self, region_id: &str) -> anyhow::Result<NodeCredentials> {
        self.ensure_node(region_id, pb::NodeKind::Dialler, crate::demo::DIALLER_NODE_NAME, "http://127.0.0.1:8090")
            .await
    }

    /// Starts (or creates and starts) the demo campaign.
    pub async fn ensure_demo_campaign(&self, region_id: &str, workers: u32) -> anyhow::Result<String> {
        crate::demo::ensure_campaign(&self.channel, &self.token, region_id, workers).await
    }

    async fn ensure_region(&self) -> anyhow::Result<String> {
        let list = self.regions().list_regions(self.authed(pb::ListRegionsRequest {})?).await.map_err(status)?;
        if let Some(r) = list.into_inner().regions.into_iter().find(|r| r.name == REGION_NAME) {
            return Ok(r.id);
        }
        let req = pb::CreateRegionRequest { name: REGION_NAME.into(), country: REGION_COUNTRY.into(), storage: None };
        let region = self.regions().create_region(self.authed(req)?).await.map_err(status).context("create region")?;
        let id = region.into_inner().id;
        tracing::info!(region_id = %id, name = REGION_NAME, "created region");
        Ok(id)
    }

    async fn ensure_node(
        &self,
        region_id: &str,
        kind: pb::NodeKind,
        name: &str,
        endpoint: &str,
    ) -> anyhow::Result<NodeCredentials> {
        let req = pb::ListNodesRequest { region_id: region_id.into(), kind: kind as i32 };
        let list = self.nodes().list_nodes(self.authed(req)?).await.map_err(status).context("list nodes")?;
        let Some(node) = list.into_inner().nodes.into_iter().find(|n| n.name == name) else {
            let req = pb::RegisterNodeRequest {
                kind: kind as i32,
                region_id: region_id.into(),
                name: name.into(),
                endpoint: endpoint.into(),
                sip_port: 0,
            };
            let r = self.nodes().register_node(self.authed(req)?).await.map_err(status);
            let r = r.with_context(|| format!("register node {name}"))?.into_inner();
            let id = r.node.map(|n| n.id).context("RegisterNode answered without the node")?;
            tracing::info!(node_id = %id, name, "registered node");
            return Ok(NodeCredentials { id, secret: r.api_secret });
        };
        if node.desired_state == pb::DesiredState::Disabled as i32 {
            bail!(
                "node {name} ({}) is disabled, permanently, so it cannot run; delete it \
                 (NodeService/DeleteNode) and run voxctl up again to register it anew",
                node.id
            );
        }
        if node.desired_state == pb::DesiredState::Maintenance as i32 {
            tracing::warn!(node_id = %node.id, name, "node is in maintenance and takes no calls until resumed");
        }
        let r =
            self.nodes().rotate_node_secret(self.authed(pb::RotateNodeSecretRequest { id: node.id.clone() })?).await;
        let r = r.map_err(status).with_context(|| format!("rotate the secret of node {name}"))?.into_inner();
        Ok(NodeCredentials { id: node.id, secret: r.api_secret })
    }

    /// Points a node at where its process really listens (known only once it runs).
    pub async fn set_endpoint(&self, node_id: &str, endpoint: &str) -> anyhow::Result<()> {
        let node = self.nodes().get_node(self.authed(pb::GetNodeRequest { id: node_id.into() })?).await;
        if node.map_err(status).context("get node")?.into_inner().endpoint == endpoint {
            return Ok(());
        }
        let req =
            pb::UpdateNodeRequest { id: node_id.into(), name: None, endpoint: Some(endpoint.into()), sip_port: None };
        self.nodes().update_node(self.authed(req)?).await.map_err(status).context("update node endpoint")?;
        Ok(())
    }
}

fn status(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("voxbridge answered {}: {}", s.code(), s.message())
}
