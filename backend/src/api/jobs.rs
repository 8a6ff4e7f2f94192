use std::sync::Arc;

use tonic::Request;
use vox_domain::node::NodeKind;
use vox_domain::user::Role;
use vox_proto::backend::v1 as pb;
use vox_proto::backend::v1::job_service_server::JobService;

use super::{RpcResult, reply};
use crate::bridge::Bridge;
use crate::reaper;

#[derive(Debug, Clone)]
pub struct Jobs(pub Arc<Bridge>);

#[tonic::async_trait]
impl JobService for Jobs {
    async fn run_cleanup(&self, req: Request<pb::RunCleanupRequest>) -> RpcResult<pb::RunCleanupResponse> {
        let r = async {
            let who = self.0.auth.user_or_node(req.metadata(), Role::Operator, &[NodeKind::Background]).await?;
            let reaped = reaper::reap_once(&self.0).await?;
            let total = reaped.iter().map(|(_, n)| n).sum();
            self.0
                .stores
                .audit
                .append_audit(&self.0.audit(&who.actor(), "jobs.cleanup", "calls", &format!("{total} reaped")))
                .await?;
            Ok(pb::RunCleanupResponse {
                reaped: reaped
                    .into_iter()
                    .map(|(s, n)| pb::ReapedCount { from_state: s.to_proto() as i32, count: n })
                    .collect(),
                total,
            })
        };
        reply("RunCleanup", r.await)
    }
}
