//! Nodes and the audit log. The node list is read often and changes rarely: the
//! dashboard reads every node on each refresh, and voxbridge re-checks its cached node
//! secrets against it, while nodes change only when an operator registers, edits or
//! moves one. Decoding 10,000 stored nodes takes tens of milliseconds while holding the
//! one connection every heartbeat's secret check may wait for, so the decoded list is
//! kept ([`NodeList`]) until a node changes: through this store (each write drops it in
//! its transaction) or through another connection to the file (SQLite's `data_version`
//! moves on).

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, Transaction, params};
use vox_domain::node::{AuditEvent, DesiredState, Node};
use vox_domain::{Error, Result};
use vox_store::{AuditStore, NodeFilter, NodeStore};

use crate::db::{SqliteStore, doc, docs, is_unique_violation, ms, sql, to_doc};

/// Every node, in registration order, as read at a `data_version` of the connection.
#[derive(Debug)]
pub(crate) struct NodeList {
    data_version: i64,
    nodes: Arc<Vec<Node>>,
}

/// The connection's `data_version`: it moves on when another connection commits.
fn data_version(c: &Connection) -> Result<i64> {
    c.query_row("PRAGMA data_version", [], |r| r.get(0)).map_err(sql("read data_version"))
}

impl SqliteStore {
    /// Drops the kept node list; called inside every transaction that writes a node.
    fn nodes_changed(&self) {
        *self.node_list.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Every node, from the kept list when nothing changed since it was read.
    async fn all_nodes(&self) -> Result<Arc<Vec<Node>>> {
        let kept = Arc::clone(&self.node_list);
        self.run(move |c| {
            let version = data_version(c)?;
            let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(list) = kept.as_ref().filter(|l| l.data_version == version) {
                return Ok(Arc::clone(&list.nodes));
            }
            let nodes: Arc<Vec<Node>> = Arc::new(docs(c, "SELECT doc FROM nodes ORDER BY created_ms, rowid", [])?);
            *kept = Some(NodeList { data_version: version, nodes: Arc::clone(&nodes) });
            Ok(nodes)
        })
        .await
    }
}

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
        let store = self.clone();
        self.tx(move |tx| {
            store.nodes_changed();
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
        let all = self.all_nodes().await?;
        Ok(all
            .iter()
            .filter(|n| filter.region_id.as_ref().is_none_or(|r| n.region_id.as_ref() == Some(r)))
            .filter(|n| filter.kind.is_none_or(|k| n.kind == k))
            .cloned()
            .collect())
    }

    /// Reads the stored node and sets only the fields an update may change, in one
    /// transaction, so a concurrent lifecycle change is kept.
    async fn update_node(&self, node: &Node, audit: &AuditEvent) -> Result<()> {
        let (n, a) = (node.clone(), audit.clone());
        let store = self.clone();
        self.tx(move |tx| {
            store.nodes_changed();
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
        let store = self.clone();
        self.tx(move |tx| {
            store.nodes_changed();
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
        let store = self.clone();
        self.tx(move |tx| {
            store.nodes_changed();
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests stop on failure")]
    use std::sync::Arc;

    use chrono::Utc;
    use vox_domain::node::{AuditEvent, DesiredState, Node, NodeKind};
    use vox_store::{NodeFilter, NodeStore};

    use crate::SqliteStore;

    fn node(id: &str) -> Node {
        let now = Utc::now();
        Node {
            id: id.into(),
            kind: NodeKind::Fleet,
            region_id: None,
            name: id.into(),
            endpoint: String::new(),
            sip_port: 5080,
            desired_state: DesiredState::Active,
            secret_hash: format!("hash-of-{id}"),
            shutdown_boot_id: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn audit(id: &str) -> AuditEvent {
        AuditEvent {
            id: format!("au_{id}_{}", vox_domain::ids::random_token(6)),
            at: Utc::now(),
            actor: "user:test".into(),
            action: "node.test".into(),
            target_id: id.into(),
            reason: String::new(),
        }
    }

    fn names(nodes: &[Node]) -> Vec<&str> {
        nodes.iter().map(|n| n.name.as_str()).collect()
    }

    #[tokio::test]
    async fn the_node_list_is_kept_until_a_node_changes_here_or_through_another_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vox.db");
        let store = SqliteStore::open(&path).unwrap();
        store.insert_node(&node("nd_a"), &audit("nd_a")).await.unwrap();
        let first = store.all_nodes().await.unwrap();
        assert!(Arc::ptr_eq(&first, &store.all_nodes().await.unwrap()), "read once, then kept");

        // A change through the store shows at once.
        store
            .set_desired_state("nd_a", DesiredState::Active, DesiredState::Maintenance, None, &audit("nd_a"))
            .await
            .unwrap();
        let listed = store.list_nodes(&NodeFilter::default()).await.unwrap();
        assert_eq!(listed[0].desired_state, DesiredState::Maintenance);

        // So does one made by another connection to the file (another process).
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute("UPDATE nodes SET doc = json_set(doc, '$.name', 'renamed') WHERE id = 'nd_a'", []).unwrap();
        assert_eq!(names(&store.list_nodes(&NodeFilter::default()).await.unwrap()), ["renamed"]);
        store.insert_node(&node("nd_b"), &audit("nd_b")).await.unwrap();
        assert_eq!(names(&store.list_nodes(&NodeFilter::default()).await.unwrap()), ["renamed", "nd_b"]);
    }
}
