// Every node, filterable by region and kind, with registration of proxy and backend nodes.

import { useState } from "react";
import { can } from "../api";
import { KIND_LABEL } from "../format";
import { NodeTable, RegisterNodeDialog, SecretDialog } from "../nodes";
import { navigate, useLocation } from "../router";
import { useRole } from "../session";
import type { NodeKind, NodeWithSecret, Region, VoxNode } from "../types";
import { Empty, ErrorBox, Loading, PageHeader, useNow, useResource } from "../ui";

export function NodesPage() {
  const role = useRole();
  const now = useNow();
  const { query } = useLocation();
  const region = query.get("region") ?? "";
  const kind = query.get("kind") ?? "";
  const regions = useResource<{ regions: Region[] }>("Load the regions", "/regions");
  const params = new URLSearchParams();
  if (region) params.set("region_id", region);
  if (kind) params.set("kind", kind);
  const nodes = useResource<{ nodes: VoxNode[] }>("Load the nodes", `/nodes?${params}`, 3000);
  const [adding, setAdding] = useState<NodeKind | null>(null);
  const [secret, setSecret] = useState<NodeWithSecret | null>(null);

  const setFilter = (k: string, v: string) => {
    const q = new URLSearchParams(location.search);
    if (v) q.set(k, v);
    else q.delete(k);
    navigate(`/nodes${q.toString() ? `?${q}` : ""}`, { replace: true });
  };

  const list = nodes.data?.nodes ?? [];
  const online = list.filter((n) => n.online).length;

  return (
    <>
      <PageHeader
        title="Nodes"
        sub={nodes.data ? `${online} of ${list.length} online` : undefined}
        actions={
          can.administer(role) && (
            <>
              <button type="button" className="btn btn-primary" onClick={() => setAdding("gateway")}>
                Add proxy
              </button>
              <button type="button" className="btn btn-primary" onClick={() => setAdding("fleet")}>
                Add backend
              </button>
            </>
          )
        }
      />
      <div className="filters">
        <label>
          Region{" "}
          <select value={region} onChange={(e) => setFilter("region", e.target.value)}>
            <option value="">All regions</option>
            {regions.data?.regions.map((r) => (
              <option key={r.id} value={r.id}>
                {r.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Kind{" "}
          <select value={kind} onChange={(e) => setFilter("kind", e.target.value)}>
            <option value="">All kinds</option>
            {(Object.keys(KIND_LABEL) as NodeKind[]).map((k) => (
              <option key={k} value={k}>
                {KIND_LABEL[k]}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ErrorBox error={nodes.error} onRetry={nodes.reload} />
      {!nodes.data && !nodes.error && <Loading what="Loading nodes" />}
      {nodes.data && list.length === 0 && (
        <Empty title={region || kind ? "No node matches these filters" : "No nodes registered"}>
          {can.administer(role)
            ? "Add a proxy node (voxgate) and a backend node (voxcore host); each gets an API secret for its config."
            : "An admin registers nodes."}
        </Empty>
      )}
      {list.length > 0 && <NodeTable nodes={list} regions={regions.data?.regions} now={now} />}
      {adding && (
        <RegisterNodeDialog
          kind={adding}
          regionId={region || undefined}
          regions={regions.data?.regions}
          onClose={() => setAdding(null)}
          onRegistered={(r) => {
            setAdding(null);
            setSecret(r);
            nodes.reload();
          }}
        />
      )}
      {secret && <SecretDialog result={secret} onClose={() => setSecret(null)} />}
    </>
  );
}
