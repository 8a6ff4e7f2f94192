//! DoNotCallService: the global and per-campaign lists of numbers never to call.
//! Operators may add numbers; only admins may remove them. A campaign-scoped API key
//! keeps to its campaign's list, as it keeps to its campaign everywhere else.

use std::sync::Arc;

use tonic::Request;
use vox_domain::phone::E164;
use vox_domain::user::Role;
use vox_domain::{Error, ErrorCode, Result};
use vox_proto::backend::v1 as pb;
use vox_proto::backend::v1::do_not_call_service_server::DoNotCallService;

use super::{RpcResult, limit, reply};
use crate::auth::Scope;
use crate::bridge::Bridge;

#[derive(Debug, Clone)]
pub struct DoNotCall(pub Arc<Bridge>);

/// At most this many numbers per request.
const MAX_NUMBERS: usize = 10_000;

impl DoNotCall {
    /// The list a request names: global (empty) or an existing campaign's. A caller
    /// limited to one campaign (a campaign-scoped API key) reaches that campaign's list
    /// only: another campaign's reads as missing, and the global list is refused.
    async fn scope(&self, campaign_id: &str, caller: &Scope) -> Result<String> {
        let id = campaign_id.trim();
        if let Some(own) = caller.campaign() {
            if id.is_empty() {
                return Err(Error::permission_denied(format!(
                    "this API key is limited to campaign {own}; it may use that campaign's do-not-call list \
                     (campaign_id {own}), not the global one"
                )));
            }
            caller.check(Some(id), "campaign", id)?;
        }
        if !id.is_empty() && self.0.stores.campaigns.get_campaign(id).await?.is_none() {
            return Err(Error::invalid(
                "campaign_id",
                format!("no campaign {id:?}; leave it empty for the global list"),
            ));
        }
        Ok(id.to_string())
    }
}

/// Every number as E.164, or the first bad one by row.
fn numbers(raw: &[String]) -> Result<Vec<String>> {
    if raw.is_empty() {
        return Err(Error::invalid("numbers", "at least one number"));
    }
    if raw.len() > MAX_NUMBERS {
        return Err(Error::invalid("numbers", format!("at most {MAX_NUMBERS} per request")));
    }
    raw.iter().enumerate().map(|(i, n)| E164::field(&format!("numbers[{i}]"), n).map(|n| n.to_string())).collect()
}

#[tonic::async_trait]
impl DoNotCallService for DoNotCall {
    async fn add_do_not_call(&self, req: Request<pb::AddDoNotCallRequest>) -> RpcResult<pb::AddDoNotCallResponse> {
        let r = async {
            let (who, caller) = self.0.auth.user_or_node_in_scope(req.metadata(), Role::Operator, &[]).await?;
            let r = req.get_ref();
            let scope = self.scope(&r.campaign_id, &caller).await?;
            let numbers = numbers(&r.numbers)?;
            let added = self.0.stores.dnc.add_dnc(&scope, &numbers, &who.actor(), self.0.clock.now()).await?;
            Ok(pb::AddDoNotCallResponse { added })
        };
        reply("AddDoNotCall", r.await)
    }

    async fn remove_do_not_call(
        &self,
        req: Request<pb::RemoveDoNotCallRequest>,
    ) -> RpcResult<pb::RemoveDoNotCallResponse> {
        let r = async {
            // Adding a number only ever stops calls; removing one lets it be called again,
            // which is an admin's decision.
            let (_, caller) =
                self.0.auth.user_or_node_in_scope(req.metadata(), Role::Admin, &[]).await.map_err(|e| {
                    match e.code {
                        ErrorCode::PermissionDenied => Error::permission_denied(format!(
                            "removing do-not-call entries lets those numbers be called again: {}",
                            e.message
                        )),
                        _ => e,
                    }
                })?;
            let r = req.get_ref();
            let scope = self.scope(&r.campaign_id, &caller).await?;
            let removed = self.0.stores.dnc.remove_dnc(&scope, &numbers(&r.numbers)?).await?;
            Ok(pb::RemoveDoNotCallResponse { removed })
        };
        reply("RemoveDoNotCall", r.await)
    }

    async fn list_do_not_call(&self, req: Request<pb::ListDoNotCallRequest>) -> RpcResult<pb::ListDoNotCallResponse> {
        let r = async {
            let (_, caller) = self.0.auth.reader_in_scope(req.metadata(), &[]).await?;
            let r = req.get_ref();
            let scope = self.scope(&r.campaign_id, &caller).await?;
            let entries = self.0.stores.dnc.list_dnc(&scope, &r.after, limit("limit", r.limit, 100, 1000)?).await?;
            Ok(pb::ListDoNotCallResponse {
                entries: entries
                    .into_iter()
                    .map(|e| pb::DoNotCallEntry {
                        number: e.number,
                        campaign_id: e.campaign_id,
                        added_at: Some(vox_domain::time::to_proto(e.added_at)),
                        added_by: e.added_by,
                    })
                    .collect(),
            })
        };
        reply("ListDoNotCall", r.await)
    }
}
