use std::sync::Arc;

use tonic::Request;
use vox_domain::node::NodeKind;
use vox_domain::region::{self, Region, RegionStorage, StorageInput};
use vox_domain::user::Role;
use vox_domain::{Error, Result, ids};
use vox_proto::backend::v1 as pb;
use vox_proto::backend::v1::region_service_server::RegionService;
use vox_store::ClusterEvent;

use super::{RpcResult, reply, required_id};
use crate::bridge::Bridge;

#[derive(Debug, Clone)]
pub struct Regions(pub Arc<Bridge>);

impl Regions {
    /// Storage as stored: the secret sealed with the master key for this region, or the
    /// stored ciphertext kept when no new secret is given.
    fn seal_storage(
        &self,
        region_id: &str,
        input: StorageInput,
        existing: Option<&RegionStorage>,
    ) -> Result<RegionStorage> {
        let secret_key_ciphertext = match (&input.secret_key, existing.and_then(|s| s.secret_key_ciphertext.clone())) {
            (Some(secret), _) => Some(self.0.master_key.seal(secret, region_id)?),
            (None, Some(kept)) => Some(kept),
            (None, None) => return Err(Error::invalid("storage.secret_key", "required the first time storage is set")),
        };
        Ok(RegionStorage {
            endpoint_url: input.endpoint_url,
            bucket: input.bucket,
            access_key: input.access_key,
            secret_key_ciphertext,
            use_ssl: input.use_ssl,
            signing_region: input.signing_region,
            force_path_style: input.force_path_style,
        })
    }

    async fn load(&self, id: &str) -> Result<Region> {
        let id = required_id("id", id)?;
        self.0.stores.regions.get_region(&id).await?.ok_or_else(|| Error::not_found("region", &id))
    }

    async fn create(&self, req: Request<pb::CreateRegionRequest>) -> Result<pb::Region> {
        let admin = self.0.auth.user(req.metadata(), Role::Admin).await?;
        let r = req.into_inner();
        let now = self.0.clock.now();
        let id = ids::new_id(ids::REGION);
        let storage = match r.storage {
            Some(s) => Some(self.seal_storage(&id, StorageInput::try_from(s)?, None)?),
            None => None,
        };
        let region = Region {
            id,
            name: region::validate_name("name", &r.name)?,
            country: region::validate_country("country", &r.country)?,
            storage,
            created_at: now,
            updated_at: now,
        };
        self.0.stores.regions.insert_region(&region).await?;
        let actor = format!("user:{}", admin.email);
        self.0.stores.audit.append_audit(&self.0.audit(&actor, "region.create", &region.id, &region.name)).await?;
        self.0.publish(ClusterEvent::RegionChanged(region.id.clone()));
        Ok(pb::Region::from(&region))
    }

    async fn update(&self, req: Request<pb::UpdateRegionRequest>) -> Result<pb::Region> {
        let admin = self.0.auth.user(req.metadata(), Role::Admin).await?;
        let r = req.into_inner();
        let mut region = self.load(&r.id).await?;
        if let Some(name) = &r.name {
            region.name = region::validate_name("name", name)?;
        }
        if let Some(country) = &r.country {
            region.country = region::validate_country("country", country)?;
        }
        region.updated_at = self.0.clock.now();
        self.0.stores.regions.update_region(&region).await?;
        let actor = format!("user:{}", admin.email);
        self.0.stores.audit.append_audit(&self.0.audit(&actor, "region.update", &region.id, "")).await?;
        self.0.publish(ClusterEvent::RegionChanged(region.id.clone()));
        Ok(pb::Region::from(&region))
    }

    async fn set_storage(&self, req: Request<pb::SetRegionStorageRequest>) -> Result<pb::Region> {
        let admin = self.0.auth.user(req.metadata(), Role::Admin).await?;
        let r = req.into_inner();
        let input = StorageInput::try_from(r.storage.ok_or_else(|| Error::invalid("storage", "required"))?)?;
        let mut region = self.load(&r.region_id).await?;
        region.storage = Some(self.seal_storage(&region.id, input, region.storage.as_ref())?);
        region.updated_at = self.0.clock.now();
        self.0.stores.regions.update_region(&region).await?;
        let actor = format!("user:{}", admin.email);
        self.0.stores.audit.append_audit(&self.0.audit(&actor, "region.storage.set", &region.id, "")).await?;
        Ok(pb::Region::from(&region))
    }
}

const READERS: &[NodeKind] = &[NodeKind::Fleet, NodeKind::Gateway, NodeKind::Console, NodeKind::Background];

#[tonic::async_trait]
impl RegionService for Regions {
    async fn create_region(&self, req: Request<pb::CreateRegionRequest>) -> RpcResult<pb::Region> {
        reply("CreateRegion", self.create(req).await)
    }

    async fn get_region(&self, req: Request<pb::GetRegionRequest>) -> RpcResult<pb::Region> {
        let r = async {
            self.0.auth.reader(req.metadata(), READERS).await?;
            Ok(pb::Region::from(&self.load(&req.get_ref().id).await?))
        };
        reply("GetRegion", r.await)
    }

    async fn list_regions(&self, req: Request<pb::ListRegionsRequest>) -> RpcResult<pb::ListRegionsResponse> {
        let r = async {
            self.0.auth.reader(req.metadata(), READERS).await?;
            let regions = self.0.stores.regions.list_regions().await?;
            Ok(pb::ListRegionsResponse { regions: regions.iter().map(pb::Region::from).collect() })
        };
        reply("ListRegions", r.await)
    }

    async fn update_region(&self, req: Request<pb::UpdateRegionRequest>) -> RpcResult<pb::Region> {
        reply("UpdateRegion", self.update(req).await)
    }

    async fn delete_region(&self, req: Request<pb::DeleteRegionRequest>) -> RpcResult<pb::DeleteRegionResponse> {
        let r = async {
            let admin = self.0.auth.user(req.metadata(), Role::Admin).await?;
            let id = required_id("id", &req.get_ref().id)?;
            self.0.stores.regions.delete_region(&id).await?;
            let actor = format!("user:{}", admin.email);
            self.0.stores.audit.append_audit(&self.0.audit(&actor, "region.delete", &id, "")).await?;
            self.0.publish(ClusterEvent::RegionChanged(id));
            Ok(pb::DeleteRegionResponse {})
        };
        reply("DeleteRegion", r.await)
    }

    async fn set_region_storage(&self, req: Request<pb::SetRegionStorageRequest>) -> RpcResult<pb::Region> {
        reply("SetRegionStorage", self.set_storage(req).await)
    }
}
