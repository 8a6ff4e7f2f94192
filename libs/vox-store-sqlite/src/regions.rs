use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use vox_domain::region::Region;
use vox_domain::{Error, Result};
use vox_store::RegionStore;

use crate::db::{SqliteStore, doc, docs, is_unique_violation, sql, to_doc};

fn name_taken(name: &str) -> Error {
    Error::already_exists(format!("a region named {name:?} already exists"))
}

#[async_trait]
impl RegionStore for SqliteStore {
    async fn insert_region(&self, region: &Region) -> Result<()> {
        let r = region.clone();
        self.run(move |c| {
            c.execute("INSERT INTO regions (id, name, doc) VALUES (?1, ?2, ?3)", params![r.id, r.name, to_doc(&r)?])
                .map_err(|e| if is_unique_violation(&e) { name_taken(&r.name) } else { sql("insert region")(e) })?;
            Ok(())
        })
        .await
    }

    async fn get_region(&self, id: &str) -> Result<Option<Region>> {
        let id = id.to_string();
        self.run(move |c| doc(c, "SELECT doc FROM regions WHERE id = ?1", [id])).await
    }

    async fn list_regions(&self) -> Result<Vec<Region>> {
        self.run(|c| docs(c, "SELECT doc FROM regions ORDER BY name", [])).await
    }

    async fn update_region(&self, region: &Region) -> Result<()> {
        let r = region.clone();
        self.run(move |c| {
            let n = c
                .execute("UPDATE regions SET name = ?2, doc = ?3 WHERE id = ?1", params![r.id, r.name, to_doc(&r)?])
                .map_err(|e| if is_unique_violation(&e) { name_taken(&r.name) } else { sql("update region")(e) })?;
            if n == 0 { Err(Error::not_found("region", &r.id)) } else { Ok(()) }
        })
        .await
    }

    async fn delete_region(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.tx(move |tx| {
            let exists: Option<String> = tx
                .query_row("SELECT id FROM regions WHERE id = ?1", [&id], |r| r.get(0))
                .optional()
                .map_err(sql("find region"))?;
            if exists.is_none() {
                return Err(Error::not_found("region", &id));
            }
            let nodes: i64 = tx
                .query_row("SELECT COUNT(*) FROM nodes WHERE region_id = ?1", [&id], |r| r.get(0))
                .map_err(sql("count nodes"))?;
            let campaigns: i64 = tx
                .query_row("SELECT COUNT(*) FROM campaigns WHERE region_id = ?1", [&id], |r| r.get(0))
                .map_err(sql("count campaigns"))?;
            if nodes > 0 || campaigns > 0 {
                return Err(Error::precondition(format!(
                    "region {id} still has {nodes} node(s) and {campaigns} campaign(s); delete or move them first"
                )));
            }
            tx.execute("DELETE FROM regions WHERE id = ?1", [&id]).map_err(sql("delete region"))?;
            Ok(())
        })
        .await
    }
}
