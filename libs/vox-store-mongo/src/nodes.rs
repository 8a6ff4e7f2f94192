//! Nodes and the audit trail: every lifecycle change and its audit line commit together.

use async_trait::async_trait;
use futures::FutureExt;
use mongodb::ClientSession;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{FindOptions, ReturnDocument};
use vox_domain::node::{AuditEvent, DesiredState, Node, NodeKind};
use vox_domain::{Error, Result};
use vox_store::{AuditStore, NodeFilter, NodeStore};

use crate::codec::{date, decode, encode, int_field};
use crate::db::{MongoStore, Outcome, during, find_all, find_by_id, unique};

/// Console and background nodes carry their kind in `singleton_kind`, which a partial
/// unique index keeps to one of each.
fn node_doc(node: &Node) -> Result<Document> {
    let mut doc = encode(node)?;
    if matches!(node.kind, NodeKind::Console | NodeKind::Background) {
        doc.insert("singleton_kind", node.kind.as_str());
    }
    Ok(doc)
}

/// Appends an audit line inside `s`, numbered from the `audit` counter so the trail keeps
/// its order across instances. Concurrent appends conflict on the counter and retry.
pub(crate) async fn append_audit(db: &MongoStore, s: &mut ClientSession, event: &AuditEvent) -> Outcome<()> {
    let counter = db
        .counters
        .find_one_and_update(doc! { "_id": "audit" }, doc! { "$inc": { "seq": 1_i64 } })
        .upsert(true)
        .return_document(ReturnDocument::After)
        .session(&mut *s)
        .await
        .map_err(during("number audit line"))?
        .ok_or_else(|| Error::internal("mongodb: number audit line: the counter vanished"))?;
    let mut line = encode(event)?;
    line.insert("seq", int_field(&counter, "seq")?);
    db.audit.insert_one(line).session(s).await.map_err(during("append audit"))?;
    Ok(())
}

async fn register(
    db: &MongoStore,
    s: &mut ClientSession,
    doc: &Document,
    node: &Node,
    audit: &AuditEvent,
) -> Outcome<()> {
    let taken = || {
        Error::already_exists(format!(
            "a {} node is already registered; there is one per cluster (update or delete it instead)",
            node.kind.as_str()
        ))
    };
    db.nodes.insert_one(doc.clone()).session(&mut *s).await.map_err(unique("insert node", taken))?;
    append_audit(db, s, audit).await
}

async fn change_node(
    db: &MongoStore,
    s: &mut ClientSession,
    id: &str,
    change: &Document,
    audit: &AuditEvent,
) -> Outcome<()> {
    let updated = db
        .nodes
        .update_one(doc! { "_id": id }, change.clone())
        .session(&mut *s)
        .await
        .map_err(during("update node"))?;
    if updated.matched_count == 0 {
        return Err(Error::not_found("node", id).into());
    }
    append_audit(db, s, audit).await
}

/// Applies `change` if the node is still in `from`, with its audit line.
async fn move_desired_state(
    db: &MongoStore,
    s: &mut ClientSession,
    id: &str,
    from: DesiredState,
    change: &Document,
    audit: &AuditEvent,
) -> Outcome<Node> {
    let changed = db
        .nodes
        .find_one_and_update(doc! { "_id": id, "desired_state": from.as_str() }, change.clone())
        .return_document(ReturnDocument::After)
        .session(&mut *s)
        .await
        .map_err(during("set desired state"))?;
    let Some(changed) = changed else {
        let current = find_by_id(&db.nodes, id, Some(&mut *s), "find node").await?;
        let current: Node = decode(current.ok_or_else(|| Error::not_found("node", id))?)?;
        return Err(Error::precondition(format!(
            "node {id} is {} now, not {}; reload and try again",
            current.desired_state.as_str(),
            from.as_str()
        ))
        .into());
    };
    append_audit(db, s, audit).await?;
    Ok(decode(changed)?)
}

async fn remove(db: &MongoStore, s: &mut ClientSession, id: &str, audit: &AuditEvent) -> Outcome<()> {
    let deleted = db.nodes.delete_one(doc! { "_id": id }).session(&mut *s).await.map_err(during("delete node"))?;
    if deleted.deleted_count == 0 {
        return Err(Error::not_found("node", id).into());
    }
    append_audit(db, s, audit).await
}

#[async_trait]
impl NodeStore for MongoStore {
    async fn insert_node(&self, node: &Node, audit: &AuditEvent) -> Result<()> {
        let doc = node_doc(node)?;
        self.transaction("insert node", (self, &doc, node, audit), |s, &mut (db, doc, node, audit)| {
            register(db, s, doc, node, audit).boxed()
        })
        .await
    }

    async fn get_node(&self, id: &str) -> Result<Option<Node>> {
        Ok(find_by_id(&self.nodes, id, None, "get node").await?.map(decode::<Node>).transpose()?)
    }

    async fn list_nodes(&self, filter: &NodeFilter) -> Result<Vec<Node>> {
        let mut query = doc! {};
        if let Some(region) = &filter.region_id {
            query.insert("region_id", region);
        }
        if let Some(kind) = filter.kind {
            query.insert("kind", kind.as_str());
        }
        let oldest_first = FindOptions::builder().sort(doc! { "created_at": 1, "_id": 1 }).build();
        let docs = find_all(&self.nodes, query, oldest_first, None, "list nodes").await?;
        docs.into_iter().map(decode::<Node>).collect()
    }

    /// Sets only the fields an update may change, so a concurrent lifecycle change is kept.
    async fn update_node(&self, node: &Node, audit: &AuditEvent) -> Result<()> {
        let change = doc! { "$set": {
            "name": &node.name,
            "endpoint": &node.endpoint,
            "sip_port": i64::from(node.sip_port),
            "secret_hash": &node.secret_hash,
            "updated_at": date(node.updated_at),
        } };
        self.transaction("update node", (self, &node.id, &change, audit), |s, &mut (db, id, change, audit)| {
            change_node(db, s, id, change, audit).boxed()
        })
        .await
    }

    async fn set_desired_state(
        &self,
        id: &str,
        from: DesiredState,
        to: DesiredState,
        shutdown_boot_id: Option<String>,
        audit: &AuditEvent,
    ) -> Result<Node> {
        let change = doc! { "$set": {
            "desired_state": to.as_str(),
            "shutdown_boot_id": shutdown_boot_id.map_or(Bson::Null, Bson::String),
            "updated_at": date(audit.at),
        } };
        self.transaction(
            "set desired state",
            (self, id, from, &change, audit),
            |s, &mut (db, id, from, change, audit)| move_desired_state(db, s, id, from, change, audit).boxed(),
        )
        .await
    }

    async fn delete_node(&self, id: &str, audit: &AuditEvent) -> Result<()> {
        self.transaction("delete node", (self, id, audit), |s, &mut (db, id, audit)| remove(db, s, id, audit).boxed())
            .await
    }
}

#[async_trait]
impl AuditStore for MongoStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<()> {
        self.transaction("append audit", (self, event), |s, &mut (db, event)| append_audit(db, s, event).boxed()).await
    }

    async fn list_audit(&self, target_id: Option<&str>, limit: usize) -> Result<Vec<AuditEvent>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let filter = target_id.map_or_else(|| doc! {}, |t| doc! { "target_id": t });
        let newest_first =
            FindOptions::builder().sort(doc! { "seq": -1 }).limit(i64::try_from(limit).unwrap_or(i64::MAX)).build();
        let docs = find_all(&self.audit, filter, newest_first, None, "list audit").await?;
        docs.into_iter().map(decode).collect()
    }
}
