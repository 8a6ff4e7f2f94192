//! `ClusterService`: the tokens nodes show each other. Workers serve only a gateway's
//! worker token; any gateway accepts a stream token for the call it names.

use std::sync::Arc;

use tonic::Request;
use vox_domain::Error;
use vox_domain::node::NodeKind;
use vox_proto::backend::v1 as pb;
use vox_proto::backend::v1::cluster_service_server::ClusterService;

use super::{RpcResult, reply, required_id};
use crate::bridge::Bridge;

/// Every node kind: each checks tokens of some sort.
const NODES: &[NodeKind] =
    &[NodeKind::Fleet, NodeKind::Gateway, NodeKind::Console, NodeKind::Background, NodeKind::Dialler];
const WORKER_TOKEN_TTL_MINUTES: i64 = 5;
const STREAM_TOKEN_DEFAULT_SECONDS: u32 = 60;
const STREAM_TOKEN_MAX_SECONDS: u32 = 300;

#[derive(Debug, Clone)]
pub struct Cluster(pub Arc<Bridge>);

fn token(t: (String, chrono::DateTime<chrono::Utc>)) -> pb::ClusterToken {
    pb::ClusterToken { token: t.0, expires_at: Some(vox_domain::time::to_proto(t.1)) }
}

#[tonic::async_trait]
impl ClusterService for Cluster {
    async fn get_token_key(&self, req: Request<pb::GetTokenKeyRequest>) -> RpcResult<pb::TokenKey> {
        let r = async {
            self.0.auth.node(req.metadata(), NODES).await?;
            Ok(self.0.tokens.token_key())
        };
        reply("GetTokenKey", r.await)
    }

    async fn issue_worker_token(&self, req: Request<pb::IssueWorkerTokenRequest>) -> RpcResult<pb::ClusterToken> {
        let r = async {
            let gateway = self.0.auth.node(req.metadata(), &[NodeKind::Gateway]).await?;
            let ttl = chrono::Duration::minutes(WORKER_TOKEN_TTL_MINUTES);
            let region = gateway.region_id.as_deref().unwrap_or_default();
            self.0.tokens.worker_token(&gateway.id, region, self.0.clock.now(), ttl).map(token)
        };
        reply("IssueWorkerToken", r.await)
    }

    async fn issue_stream_token(&self, req: Request<pb::IssueStreamTokenRequest>) -> RpcResult<pb::ClusterToken> {
        let r = async {
            let gateway = self.0.auth.node(req.metadata(), &[NodeKind::Gateway]).await?;
            let q = req.get_ref();
            let call_id = required_id("call_id", &q.call_id)?;
            if !matches!(q.sample_rate, 8000 | 16000) {
                return Err(Error::invalid("sample_rate", "8000 or 16000"));
            }
            let seconds = match q.ttl_seconds {
                0 => STREAM_TOKEN_DEFAULT_SECONDS,
                s if s <= STREAM_TOKEN_MAX_SECONDS => s,
                _ => return Err(Error::invalid("ttl_seconds", format!("at most {STREAM_TOKEN_MAX_SECONDS}"))),
            };
            let call =
                self.0.stores.calls.get_call(&call_id).await?.ok_or_else(|| Error::not_found("call", &call_id))?;
            if let Some(region) = gateway.region_id.as_deref()
                && call.region_id != region
            {
                return Err(Error::permission_denied(format!(
                    "call {call_id} is in region {}, not this gateway's region {region}",
                    call.region_id
                )));
            }
            let ttl = chrono::Duration::seconds(i64::from(seconds));
            self.0.tokens.stream_token(&call.id, q.sample_rate, self.0.clock.now(), ttl).map(token)
        };
        reply("IssueStreamToken", r.await)
    }
}
