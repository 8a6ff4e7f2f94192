//! ApiKeyService: admins create, list and revoke integrations' API keys
//! ([`vox_domain::api_key`]). The secret is in the create reply only; voxbridge keeps its
//! hash. Every change is in the audit log.

use std::sync::Arc;

use tonic::Request;
use vox_domain::api_key::ApiKey;
use vox_domain::user::Role;
use vox_domain::{Error, Result};
use vox_proto::backend::v1 as pb;
use vox_proto::backend::v1::api_key_service_server::ApiKeyService;

use super::{RpcResult, reply, required_id};
use crate::bridge::Bridge;
use crate::crypto;

#[derive(Debug, Clone)]
pub struct ApiKeys(pub Arc<Bridge>);

impl ApiKeys {
    async fn create(&self, req: Request<pb::CreateApiKeyRequest>) -> Result<pb::CreateApiKeyResponse> {
        let admin = self.0.auth.user(req.metadata(), Role::Admin).await?;
        let r = req.into_inner();
        let role = Role::from_proto("role", r.role)?;
        let campaign_id = match r.campaign_id.trim() {
            "" => None,
            id => {
                if self.0.stores.campaigns.get_campaign(id).await?.is_none() {
                    return Err(Error::invalid(
                        "campaign_id",
                        format!("no campaign {id:?}; leave it empty for every campaign"),
                    ));
                }
                Some(id.to_string())
            }
        };
        let actor = format!("user:{}", admin.email);
        let (key, secret) = ApiKey::new(&r.name, role, campaign_id, &actor, self.0.clock.now(), crypto::hash_secret)?;
        self.0.stores.api_keys.insert_api_key(&key).await?;
        let reason = format!("{} key {:?}", role.as_str(), key.name);
        self.0.stores.audit.append_audit(&self.0.audit(&actor, "api_key.create", &key.id, &reason)).await?;
        tracing::info!(key_id = %key.id, role = role.as_str(), by = %admin.email, "API key created");
        Ok(pb::CreateApiKeyResponse { key: Some(pb::ApiKey::from(&key)), secret })
    }

    async fn revoke(&self, req: Request<pb::RevokeApiKeyRequest>) -> Result<pb::ApiKey> {
        let admin = self.0.auth.user(req.metadata(), Role::Admin).await?;
        let id = required_id("id", &req.get_ref().id)?;
        let key = self.0.stores.api_keys.revoke_api_key(&id, self.0.clock.now()).await?;
        let actor = format!("user:{}", admin.email);
        self.0.stores.audit.append_audit(&self.0.audit(&actor, "api_key.revoke", &key.id, &key.name)).await?;
        tracing::info!(key_id = %key.id, by = %admin.email, "API key revoked");
        Ok(pb::ApiKey::from(&key))
    }
}

#[tonic::async_trait]
impl ApiKeyService for ApiKeys {
    async fn create_api_key(&self, req: Request<pb::CreateApiKeyRequest>) -> RpcResult<pb::CreateApiKeyResponse> {
        reply("CreateApiKey", self.create(req).await)
    }

    async fn list_api_keys(&self, req: Request<pb::ListApiKeysRequest>) -> RpcResult<pb::ListApiKeysResponse> {
        let r = async {
            self.0.auth.user(req.metadata(), Role::Admin).await?;
            let keys = self.0.stores.api_keys.list_api_keys().await?;
            Ok(pb::ListApiKeysResponse { keys: keys.iter().map(pb::ApiKey::from).collect() })
        };
        reply("ListApiKeys", r.await)
    }

    async fn revoke_api_key(&self, req: Request<pb::RevokeApiKeyRequest>) -> RpcResult<pb::ApiKey> {
        reply("RevokeApiKey", self.revoke(req).await)
    }
}
