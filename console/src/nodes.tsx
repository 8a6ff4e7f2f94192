// Node pieces shared by the Nodes, Region and Singletons screens: the status cell, the
// table, registration, and the dialog that shows an API secret its one time.

import { useState, type FormEvent } from "react";
import { post } from "./api";
import { ago, bytes, DESIRED_LABEL, KIND_LABEL } from "./format";
import { Link } from "./router";
import type { NodeKind, NodeWithSecret, Region, VoxNode } from "./types";
import { Badge, CopyField, ErrorBox, Field, Modal } from "./ui";

export function StatusBadge({ node, now }: { node: VoxNode; now: number }) {
  const desired = node.desired_state;
  const presence = node.online ? (
    <Badge tone="ok">online</Badge>
  ) : (
    <Badge tone="bad" title={node.last_heartbeat_at ? undefined : "registered but has never sent a heartbeat"}>
      offline
    </Badge>
  );
  return (
    <span className="status-cell" data-testid="node-status">
      {presence}
      {desired !== "active" && <Badge tone={desired === "maintenance" ? "warn" : "muted"}>{DESIRED_LABEL[desired]}</Badge>}
      <span className="muted small">heartbeat {ago(node.last_heartbeat_at, now)}</span>
    </span>
  );
}

export function slots(node: VoxNode): { free: number; total: number; inCall: number } {
  const total = node.workers.length;
  const free = node.workers.filter((w) => w.state === "idle").length;
  const inCall = node.workers.filter((w) => w.state === "in_call" || w.state === "reserved").length;
  return { free, total, inCall };
}

export function Figures({ node }: { node: VoxNode }) {
  if (!node.online && !node.version) return <span className="muted">—</span>;
  return (
    <span className="small" title="CPU: 100% is one core fully used">
      CPU {node.cpu_percent.toFixed(0)}% · RAM{" "}
      {node.memory_total_bytes ? `${bytes(node.memory_used_bytes)} / ${bytes(node.memory_total_bytes)}` : "—"}
    </span>
  );
}

export function NodeTable({
  nodes,
  regions,
  now,
  showRegion = true,
}: {
  nodes: VoxNode[];
  regions?: Region[];
  now: number;
  showRegion?: boolean;
}) {
  const regionName = (id: string | null) => (id ? (regions?.find((r) => r.id === id)?.name ?? id) : "—");
  return (
    <div className="table-wrap">
      <table className="table stack" data-testid="node-table">
        <thead>
          <tr>
            <th>Node</th>
            <th>Kind</th>
            {showRegion && <th>Region</th>}
            <th>Status</th>
            <th>Version</th>
            <th>CPU / RAM</th>
            <th>Worker slots</th>
          </tr>
        </thead>
        <tbody>
          {nodes.map((n) => {
            const s = slots(n);
            return (
              <tr key={n.id} data-testid={`node-row-${n.id}`}>
                <td data-label="Node">
                  <Link to={`/nodes/${n.id}`} className="strong">
                    {n.name || n.id}
                  </Link>
                  <div className="muted small">{n.endpoint}</div>
                </td>
                <td data-label="Kind">{KIND_LABEL[n.kind]}</td>
                {showRegion && <td data-label="Region">{regionName(n.region_id)}</td>}
                <td data-label="Status">
                  <StatusBadge node={n} now={now} />
                </td>
                <td data-label="Version">{n.version || <span className="muted">—</span>}</td>
                <td data-label="CPU / RAM">
                  <Figures node={n} />
                </td>
                <td data-label="Worker slots">{n.kind === "fleet" ? `${s.free} free / ${s.total}` : <span className="muted">—</span>}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

const DEFAULT_SIP: Partial<Record<NodeKind, number>> = { gateway: 5060, fleet: 5080 };

export function RegisterNodeDialog({
  kind,
  regionId,
  regions,
  onClose,
  onRegistered,
}: {
  kind: NodeKind;
  regionId?: string;
  regions?: Region[];
  onClose: () => void;
  onRegistered: (r: NodeWithSecret) => void;
}) {
  const regional = kind === "fleet" || kind === "gateway";
  const [region, setRegion] = useState(regionId ?? regions?.[0]?.id ?? "");
  const [name, setName] = useState("");
  const [endpoint, setEndpoint] = useState("");
  const [sip, setSip] = useState(String(DEFAULT_SIP[kind] ?? ""));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const title = `Add ${KIND_LABEL[kind].toLowerCase()} node`;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await post<NodeWithSecret>(`Register the ${KIND_LABEL[kind].toLowerCase()} node`, "/nodes", {
        kind,
        region_id: regional ? region : undefined,
        name: name.trim() || undefined,
        endpoint: endpoint.trim(),
        sip_port: regional && sip ? Number(sip) : undefined,
      });
      onRegistered(r);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <Modal title={title} onClose={onClose}>
      <form onSubmit={submit}>
        {regional && !regionId && (
          <Field label="Region">
            <select value={region} onChange={(e) => setRegion(e.target.value)} required name="region">
              {regions?.length ? null : <option value="">No region: add one first</option>}
              {regions?.map((r) => (
                <option key={r.id} value={r.id}>
                  {r.name}
                </option>
              ))}
            </select>
          </Field>
        )}
        <Field label="Name" hint="Optional; defaults to one voxbridge makes up.">
          <input name="name" value={name} onChange={(e) => setName(e.target.value)} placeholder={`${kind}-1`} />
        </Field>
        <Field label="Endpoint / IP" hint="Where the service is reachable, e.g. http://10.0.0.5:5002.">
          <input
            name="endpoint"
            required
            value={endpoint}
            onChange={(e) => setEndpoint(e.target.value)}
            placeholder="http://10.0.0.5:5002"
          />
        </Field>
        {regional && (
          <Field label="SIP port" hint={`Default for a ${KIND_LABEL[kind].toLowerCase()} node: ${DEFAULT_SIP[kind]}.`}>
            <input
              name="sip_port"
              type="number"
              min={1}
              max={65535}
              value={sip}
              onChange={(e) => setSip(e.target.value)}
            />
          </Field>
        )}
        <ErrorBox error={error} />
        <div className="form-actions">
          <button type="button" className="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={busy || (regional && !region)}>
            {busy ? "Registering…" : "Register and show its secret"}
          </button>
        </div>
      </form>
    </Modal>
  );
}

function startCommand(kind: NodeKind): string | null {
  switch (kind) {
    case "fleet":
      return "voxcore host --bridge-url http://<voxbridge>:7070 --workers 4";
    case "gateway":
      return "voxgate --bridge-url http://<voxbridge>:7070";
    default:
      return null;
  }
}

/** The node's API secret, this one time; it cannot be shown again (only rotated). */
export function SecretDialog({ result, onClose, rotated }: { result: NodeWithSecret; onClose: () => void; rotated?: boolean }) {
  const { node, api_secret } = result;
  const line = `VOX_NODE_SECRET=${api_secret}`;
  const cmd = startCommand(node.kind);
  return (
    <Modal title={rotated ? "New API secret" : "Node registered"} onClose={onClose} wide>
      <div data-testid="secret-dialog">
        <p>
          <strong>{node.name}</strong> ({KIND_LABEL[node.kind]} node) has the id{" "}
          <code data-testid="registered-node-id">{node.id}</code>.
        </p>
        <div className="alert alert-warn">
          This API secret is shown <strong>only now</strong>. voxbridge keeps just its hash; if it is lost, rotate it
          on the node's page.
          {rotated && " The old secret has stopped working."}
        </div>
        <h3>API secret</h3>
        <CopyField value={api_secret} label="API secret" testId="node-secret" />
        <h3>Config line to paste</h3>
        <p className="muted small">
          Into the node's environment file (systemd <code>EnvironmentFile=</code>) or its shell:
        </p>
        <CopyField value={line} label="Config line" testId="node-config-line" />
        {cmd && (
          <>
            <p className="muted small">Then start it with voxbridge's gRPC address:</p>
            <CopyField value={`${line} ${cmd}`} label="Start command" />
          </>
        )}
        <div className="form-actions">
          <button type="button" className="btn btn-primary" onClick={onClose}>
            I have saved the secret
          </button>
        </div>
      </div>
    </Modal>
  );
}
