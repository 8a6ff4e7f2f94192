use async_trait::async_trait;
use rusqlite::{Transaction, params};
use vox_domain::node::{AuditEvent, DesiredState, Node};
use vox_domain::{Error, Result};
use vox_store::{AuditStore, NodeFilter, NodeStore};

use crate::db::{SqliteStore, doc, docs, is_unique_violation, ms, sql, to_doc};

fn append(tx: &Transaction<'_>, a: &AuditEvent) -> Result<()> {
    tx.execute("INSERT INTO audit (target_id, doc) VALUES (?1, ?2)", params![a.target_id, to_doc(a)?])
        .map_err(sql("append audit"))?;
    Ok(())
}

fn write_node(tx: &Transaction<'_>, n: &Node) -> Result<usize> {
    tx.execute("UPDATE nodes SET doc = ?2 WHERE id = ?1", params![n.id, to_doc(n)?]).map_err(sql("update node"))
}

#[async_trait]
impl NodeStore for SqliteStore {
    async fn insert_node(&self, node: &Node, audit: &AuditEvent) -> Result<()> {
        let (n, a) = (node.clone(), audit.clone());
        self.tx(move |tx| {
            tx.execute(
                "INSERT INTO nodes (id, kind, region_id, created_ms, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![n.id, n.kind.as_str(), n.region_id, ms(n.created_at), to_doc(&n)?],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::already_exists(format!(
                        "a {} node is already registered; there is one per cluster (update or delete it instead)",
                        n.kind.as_str()
                    ))
                } else {
                    sql("insert node")(e)
                }
            })?;
            append(tx, &a)
        })
        .await
    }

    async fn get_node(&self, id: &str) -> Result<Option<Node>> {
        let id = id.to_string();
        self.run(move |c| doc(c, "SELECT doc FROM nodes WHERE id = ?1", [id])).await
    }

    async fn list_nodes(&self, filter: &NodeFilter) -> Result<Vec<Node>> {
        let region = filter.region_id.clone();
        let kind = filter.kind.map(|k| k.as_str().to_string());
        self.run(move |c| {
            docs(
                c,
                "SELECT doc FROM nodes WHERE (?1 IS NULL OR region_id = ?1) AND (?2 IS NULL OR kind = ?2) ORDER BY created_ms, rowid",
                params![region, kind],
            )
        })
        .await
    }

    /// Reads the stored node and sets only the fields an update may change, in one
    /// transaction, so a concurrent lifecycle change is kept.
    async fn update_node(&self, node: &Node, audit: &AuditEvent) -> Result<()> {
        let (n, a) = (node.clone(), audit.clone());
        self.tx(move |tx| {
            let mut stored: Node = doc(tx, "SELECT doc FROM nodes WHERE id = ?1", [&n.id])?
                .ok_or_else(|| Error::not_found("node", &n.id))?;
            stored.name = n.name;
            stored.endpoint = n.endpoint;
            stored.sip_port = n.sip_port;
            stored.secret_hash = n.secret_hash;
            stored.updated_at = n.updated_at;
            write_node(tx, &stored)?;
            append(tx, &a)
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
        let (id, a) = (id.to_string(), audit.clone());
        self.tx(move |tx| {
            let mut node: Node =
                doc(tx, "SELECT doc FROM nodes WHERE id = ?1", [&id])?.ok_or_else(|| Error::not_found("node", &id))?;
            if node.desired_state != from {
                return Err(Error::precondition(format!(
                    "node {id} is {} now, not {}; reload and try again",
                    node.desired_state.as_str(),
                    from.as_str()
                )));
            }
            node.desired_state = to;
            node.shutdown_boot_id = shutdown_boot_id;
            node.updated_at = a.at;
            write_node(tx, &node)?;
            append(tx, &a)?;
            Ok(node)
        })
        .await
    }

    async fn delete_node(&self, id: &str, audit: &AuditEvent) -> Result<()> {
        let (id, a) = (id.to_string(), audit.clone());
        self.tx(move |tx| {
            if tx.execute("DELETE FROM nodes WHERE id = ?1", [&id]).map_err(sql("delete node"))? == 0 {
                return Err(Error::not_found("node", &id));
            }
            append(tx, &a)
        })
        .await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<()> {
        let a = event.clone();
        self.tx(move |tx| append(tx, &a)).await
    }

    async fn list_audit(&self, target_id: Option<&str>, limit: usize) -> Result<Vec<AuditEvent>> {
        let target = target_id.map(String::from);
        let limit = limit as i64;
        self.run(move |c| {
            docs(
                c,
                "SELECT doc FROM audit WHERE (?1 IS NULL OR target_id = ?1) ORDER BY seq DESC LIMIT ?2",
                params![target, limit],
            )
        })
        .await
    }
}
