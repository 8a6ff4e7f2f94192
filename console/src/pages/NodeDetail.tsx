// One node: presence, figures, worker slots, lifecycle controls with a confirmation that
// says what happens to live calls, secret rotation, and its audit trail.

import { useState, type FormEvent } from "react";
import { can, del, patch, post } from "../api";
import { ago, bytes, dateTime, DESIRED_LABEL, KIND_LABEL } from "../format";
import { SecretDialog, slots, StatusBadge } from "../nodes";
import { Link, navigate } from "../router";
import { useRole } from "../session";
import type { AuditEvent, LifecycleAction, NodeWithSecret, Region, Role, VoxNode } from "../types";
import { Badge, Empty, ErrorBox, Field, Loading, Modal, PageHeader, useNow, useResource } from "../ui";

const ACTION_LABEL: Record<LifecycleAction, string> = {
  maintenance: "Maintenance",
  resume: "Resume",
  disable: "Disable",
  shutdown: "Shutdown",
};

/** What the action does, in the seed's terms, with this node's live calls counted. */
function consequence(action: LifecycleAction, node: VoxNode): string {
  const live = slots(node).inCall;
  const calls =
    node.kind === "fleet"
      ? live === 0
        ? "It holds no live call right now."
        : `Its ${live} live call${live > 1 ? "s" : ""} continue${live > 1 ? "" : "s"} until they end; none is cut off.`
      : "Calls already flowing through it continue until they end.";
  switch (action) {
    case "maintenance":
      return `The node stops taking new calls (draining). ${calls} Use this before an update; Resume undoes it.`;
    case "resume":
      return "The node takes new calls again at its next heartbeat.";
    case "disable":
      return `Permanent: the node is marked offline and its heartbeats are refused from now on, so it never takes calls again. ${calls} Use this when removing a server for good; to bring it back, register a new node.`;
    case "shutdown":
      return `The node drains, then its process exits; its service manager restarts it and it comes back active. ${calls}`;
  }
}

/** The actions the node's state allows and the role may take: disabling, which cannot be
 * undone, is for admins (voxbridge refuses it to operators). */
function allowedActions(node: VoxNode, role: Role | undefined): LifecycleAction[] {
  const actions = ((): LifecycleAction[] => {
    switch (node.desired_state) {
      case "active":
        return ["maintenance", "shutdown", "disable"];
      case "maintenance":
        return ["resume", "shutdown", "disable"];
      case "shutdown":
        return ["resume", "disable"];
      case "disabled":
        return [];
    }
  })();
  return actions.filter((a) => a !== "disable" || can.administer(role));
}

export function NodeDetailPage({ id }: { id: string }) {
  const role = useRole();
  const now = useNow();
  const path = `/nodes/${encodeURIComponent(id)}`;
  const node = useResource<VoxNode>("Load the node", path, 2000);
  const regions = useResource<{ regions: Region[] }>("Load the regions", "/regions");
  const audit = useResource<{ events: AuditEvent[] }>(
    "Load the node's audit trail",
    `/audit?target_id=${encodeURIComponent(id)}&limit=50`,
    10000,
  );
  const [action, setAction] = useState<LifecycleAction | null>(null);
  const [secret, setSecret] = useState<NodeWithSecret | null>(null);
  const [confirmRotate, setConfirmRotate] = useState(false);
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);

  if (node.error && !node.data) {
    return (
      <>
        <PageHeader title="Node" />
        <ErrorBox error={node.error} onRetry={node.reload} />
        <Link to="/nodes">Back to nodes</Link>
      </>
    );
  }
  if (!node.data) return <Loading what="Loading the node" />;
  const n = node.data;
  const region = regions.data?.regions.find((r) => r.id === n.region_id);
  const s = slots(n);

  return (
    <>
      <div className="crumbs">
        <Link to="/nodes">Nodes</Link>
        {region && (
          <>
            {" "}
            / <Link to={`/regions/${region.id}`}>{region.name}</Link>
          </>
        )}{" "}
        / {n.name}
      </div>
      <PageHeader
        title={n.name || n.id}
        sub={
          <>
            {KIND_LABEL[n.kind]} node · <code>{n.id}</code>
          </>
        }
      />
      <ErrorBox error={node.error} compact />
      <section className="panel node-summary" data-testid="node-summary">
        <dl className="facts">
          <div>
            <dt>Status</dt>
            <dd>
              <StatusBadge node={n} now={now} />
            </dd>
          </div>
          <div>
            <dt>Desired state</dt>
            <dd data-testid="desired-state">{DESIRED_LABEL[n.desired_state]}</dd>
          </div>
          <div>
            <dt>Last heartbeat</dt>
            <dd>
              {ago(n.last_heartbeat_at, now)}
              {n.last_heartbeat_at && <div className="muted small">{dateTime(n.last_heartbeat_at)}</div>}
            </dd>
          </div>
          <div>
            <dt>Version</dt>
            <dd>{n.version || "—"}</dd>
          </div>
          <div>
            <dt>CPU</dt>
            <dd>
              {n.online || n.version ? `${n.cpu_percent.toFixed(1)}%` : "—"}
              <div className="muted small">100% = one core</div>
            </dd>
          </div>
          <div>
            <dt>RAM</dt>
            <dd>{n.memory_total_bytes ? `${bytes(n.memory_used_bytes)} of ${bytes(n.memory_total_bytes)}` : "—"}</dd>
          </div>
          <div>
            <dt>Endpoint</dt>
            <dd>
              <code>{n.endpoint}</code>
            </dd>
          </div>
          {(n.kind === "fleet" || n.kind === "gateway") && (
            <div>
              <dt>SIP port</dt>
              <dd>{n.sip_port}</dd>
            </div>
          )}
          <div>
            <dt>Registered</dt>
            <dd>{dateTime(n.created_at)}</dd>
          </div>
        </dl>
        {!n.online && (
          <div className="alert alert-error">
            {n.last_heartbeat_at
              ? `No heartbeat for ${ago(n.last_heartbeat_at, now).replace(" ago", "")}.`
              : "Registered, but it has never sent a heartbeat."}{" "}
            Check that its process runs with this node's <code>VOX_NODE_SECRET</code> and can reach voxbridge.
          </div>
        )}
      </section>

      {can.operate(role) && allowedActions(n, role).length > 0 && (
        <section className="panel" aria-labelledby="lifecycle-h" data-testid="lifecycle">
          <h2 id="lifecycle-h">Lifecycle</h2>
          <div className="toolbar">
            {allowedActions(n, role).map((a) => (
              <button
                key={a}
                type="button"
                className={`btn ${a === "disable" || a === "shutdown" ? "btn-danger" : a === "resume" ? "btn-primary" : ""}`}
                onClick={() => setAction(a)}
              >
                {ACTION_LABEL[a]}
              </button>
            ))}
          </div>
          <p className="muted small">
            Every change needs a reason and is written to the audit trail below.
            {!can.administer(role) && n.desired_state !== "disabled" && " Disabling a node for good is for admins."}
          </p>
        </section>
      )}

      {n.kind === "fleet" && (
        <section className="panel" aria-labelledby="slots-h">
          <h2 id="slots-h">
            Worker slots{" "}
            <span className="muted small">
              {s.free} free of {s.total}
            </span>
          </h2>
          {n.workers.length === 0 ? (
            <Empty title="No worker slots reported">
              {n.online ? "The host reports no workers." : "Slots appear once the host heartbeats."}
            </Empty>
          ) : (
            <div className="slot-grid">
              {n.workers.map((w) => (
                <div key={w.index} className={`slot slot-${w.state}`} data-testid="worker-slot">
                  <div className="slot-index">#{w.index}</div>
                  <div>{w.state.replace("_", " ")}</div>
                  {w.call_id && (
                    <Link to={`/calls/${w.call_id}`} className="small">
                      {w.call_id}
                    </Link>
                  )}
                </div>
              ))}
            </div>
          )}
        </section>
      )}

      {can.administer(role) && (
        <section className="panel" aria-labelledby="admin-h">
          <h2 id="admin-h">Registration</h2>
          <div className="toolbar">
            <button type="button" className="btn" onClick={() => setEditing(true)}>
              Edit endpoint…
            </button>
            <button type="button" className="btn" onClick={() => setConfirmRotate(true)}>
              Rotate API secret…
            </button>
            <button type="button" className="btn btn-danger" onClick={() => setDeleting(true)}>
              Delete node…
            </button>
          </div>
        </section>
      )}

      <section className="panel" aria-labelledby="audit-h">
        <h2 id="audit-h">Audit trail</h2>
        <ErrorBox error={audit.error} onRetry={audit.reload} compact />
        {audit.data && audit.data.events.length === 0 && <Empty title="Nothing recorded for this node yet" />}
        {audit.data && audit.data.events.length > 0 && <AuditTable events={audit.data.events} />}
      </section>

      {action && (
        <LifecycleDialog
          node={n}
          action={action}
          onClose={() => setAction(null)}
          onDone={() => {
            setAction(null);
            node.reload();
            audit.reload();
          }}
        />
      )}
      {confirmRotate && (
        <RotateDialog
          node={n}
          onClose={() => setConfirmRotate(false)}
          onRotated={(r) => {
            setConfirmRotate(false);
            setSecret(r);
            audit.reload();
          }}
        />
      )}
      {secret && <SecretDialog result={secret} rotated onClose={() => setSecret(null)} />}
      {editing && (
        <EditNode
          node={n}
          onClose={() => setEditing(false)}
          onSaved={() => {
            setEditing(false);
            node.reload();
          }}
        />
      )}
      {deleting && <DeleteNode node={n} onClose={() => setDeleting(false)} />}
    </>
  );
}

export function AuditTable({ events, showTarget }: { events: AuditEvent[]; showTarget?: boolean }) {
  return (
    <div className="table-wrap">
      <table className="table" data-testid="audit-table">
        <thead>
          <tr>
            <th>When</th>
            <th>Who</th>
            <th>What</th>
            {showTarget && <th>On</th>}
            <th>Why</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr key={e.id}>
              <td className="nowrap">{dateTime(e.at)}</td>
              <td>{e.actor}</td>
              <td>
                <Badge tone="action">{e.action}</Badge>
              </td>
              {showTarget && (
                <td>
                  {e.target_id.startsWith("nd_") ? (
                    <Link to={`/nodes/${e.target_id}`}>{e.target_id}</Link>
                  ) : e.target_id.startsWith("rg_") ? (
                    <Link to={`/regions/${e.target_id}`}>{e.target_id}</Link>
                  ) : (
                    e.target_id
                  )}
                </td>
              )}
              <td>{e.reason || <span className="muted">—</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function LifecycleDialog({
  node,
  action,
  onClose,
  onDone,
}: {
  node: VoxNode;
  action: LifecycleAction;
  onClose: () => void;
  onDone: () => void;
}) {
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await post<VoxNode>(`${ACTION_LABEL[action]} ${node.name}`, `/nodes/${encodeURIComponent(node.id)}/lifecycle`, {
        action,
        reason: reason.trim(),
      });
      onDone();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal title={`${ACTION_LABEL[action]} ${node.name}?`} onClose={onClose}>
      <form onSubmit={submit} data-testid="lifecycle-dialog">
        <p className="consequence" data-testid="lifecycle-consequence">
          {consequence(action, node)}
        </p>
        <Field label="Reason" hint="Kept in the audit trail with your name.">
          <input
            name="reason"
            required
            autoFocus
            value={reason}
            onChange={(e) => setReason(e.target.value)}
            placeholder="kernel update"
          />
        </Field>
        <ErrorBox error={error} />
        <div className="form-actions">
          <button type="button" className="btn" onClick={onClose}>
            Cancel
          </button>
          <button
            type="submit"
            className={`btn ${action === "disable" || action === "shutdown" ? "btn-danger" : "btn-primary"}`}
            disabled={busy || !reason.trim()}
          >
            {busy ? "Sending…" : `Confirm ${ACTION_LABEL[action].toLowerCase()}`}
          </button>
        </div>
      </form>
    </Modal>
  );
}

function RotateDialog({
  node,
  onClose,
  onRotated,
}: {
  node: VoxNode;
  onClose: () => void;
  onRotated: (r: NodeWithSecret) => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const go = async () => {
    setBusy(true);
    try {
      onRotated(await post<NodeWithSecret>("Rotate the API secret", `/nodes/${encodeURIComponent(node.id)}/rotate-secret`));
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return (
    <Modal title={`Rotate ${node.name}'s API secret?`} onClose={onClose}>
      <p>
        A new secret is issued and shown once; the current one stops working at once, so the running node is refused
        until its config has the new secret and it restarts.
      </p>
      <ErrorBox error={error} />
      <div className="form-actions">
        <button type="button" className="btn" onClick={onClose}>
          Cancel
        </button>
        <button type="button" className="btn btn-danger" onClick={go} disabled={busy}>
          Rotate secret
        </button>
      </div>
    </Modal>
  );
}

function EditNode({ node, onClose, onSaved }: { node: VoxNode; onClose: () => void; onSaved: () => void }) {
  const [name, setName] = useState(node.name);
  const [endpoint, setEndpoint] = useState(node.endpoint);
  const [sip, setSip] = useState(String(node.sip_port || ""));
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const regional = node.kind === "fleet" || node.kind === "gateway";
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    try {
      await patch<VoxNode>("Save the node", `/nodes/${encodeURIComponent(node.id)}`, {
        name: name.trim(),
        endpoint: endpoint.trim(),
        sip_port: regional && sip ? Number(sip) : undefined,
      });
      onSaved();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal title={`Edit ${node.name}`} onClose={onClose}>
      <form onSubmit={submit}>
        <Field label="Name">
          <input value={name} required onChange={(e) => setName(e.target.value)} />
        </Field>
        <Field label="Endpoint / IP">
          <input value={endpoint} required onChange={(e) => setEndpoint(e.target.value)} />
        </Field>
        {regional && (
          <Field label="SIP port">
            <input type="number" min={1} max={65535} value={sip} onChange={(e) => setSip(e.target.value)} />
          </Field>
        )}
        <ErrorBox error={error} />
        <div className="form-actions">
          <button type="button" className="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={busy}>
            Save
          </button>
        </div>
      </form>
    </Modal>
  );
}

function DeleteNode({ node, onClose }: { node: VoxNode; onClose: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const go = async () => {
    setBusy(true);
    try {
      await del("Delete the node", `/nodes/${encodeURIComponent(node.id)}`);
      navigate("/nodes");
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return (
    <Modal title={`Delete ${node.name}?`} onClose={onClose}>
      <p>
        The node's registration and secret are removed; if its process still runs, its heartbeats are refused. Drain it
        first (Maintenance) so no live call is on it.
      </p>
      <ErrorBox error={error} />
      <div className="form-actions">
        <button type="button" className="btn" onClick={onClose}>
          Cancel
        </button>
        <button type="button" className="btn btn-danger" onClick={go} disabled={busy}>
          Delete node
        </button>
      </div>
    </Modal>
  );
}
