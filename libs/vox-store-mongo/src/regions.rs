use async_trait::async_trait;
use mongodb::bson::doc;
use mongodb::options::FindOptions;
use vox_domain::region::Region;
use vox_domain::{Error, Result};
use vox_store::RegionStore;

use crate::codec::{decode, encode};
use crate::db::{MongoStore, during, find_all, find_by_id, unique};

fn name_taken(name: &str) -> Error {
    Error::already_exists(format!("a region named {name:?} already exists"))
}

#[async_trait]
impl RegionStore for MongoStore {
    async fn insert_region(&self, region: &Region) -> Result<()> {
        self.regions.insert_one(encode(region)?).await.map_err(unique("insert region", || name_taken(&region.name)))?;
        Ok(())
    }

    async fn get_region(&self, id: &str) -> Result<Option<Region>> {
        Ok(find_by_id(&self.regions, id, None, "get region").await?.map(decode).transpose()?)
    }

    async fn list_regions(&self) -> Result<Vec<Region>> {
        let by_name = FindOptions::builder().sort(doc! { "name": 1 }).build();
        let docs = find_all(&self.regions, doc! {}, by_name, None, "list regions").await?;
        docs.into_iter().map(decode).collect()
    }

    async fn update_region(&self, region: &Region) -> Result<()> {
        let replaced = self
            .regions
            .replace_one(doc! { "_id": &region.id }, encode(region)?)
            .await
            .map_err(unique("update region", || name_taken(&region.name)))?;
        if replaced.matched_count == 0 {
            return Err(Error::not_found("region", &region.id));
        }
        Ok(())
    }

    /// Checks references, then deletes: one document changes, so no transaction. A node
    /// registered in between refers to a deleted region, as it can on every backend (the
    /// service checks the region before it registers a node).
    async fn delete_region(&self, id: &str) -> Result<()> {
        if find_by_id(&self.regions, id, None, "find region").await?.is_none() {
            return Err(Error::not_found("region", id));
        }
        let nodes = self.nodes.count_documents(doc! { "region_id": id }).await.map_err(during("count nodes"))?;
        let campaigns =
            self.campaigns.count_documents(doc! { "spec.region_id": id }).await.map_err(during("count campaigns"))?;
        if nodes > 0 || campaigns > 0 {
            return Err(Error::precondition(format!(
                "region {id} still has {nodes} node(s) and {campaigns} campaign(s); delete or move them first"
            )));
        }
        let deleted = self.regions.delete_one(doc! { "_id": id }).await.map_err(during("delete region"))?;
        if deleted.deleted_count == 0 {
            return Err(Error::not_found("region", id));
        }
        Ok(())
    }
}
