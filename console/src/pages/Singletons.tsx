// The two singleton nodes of the seed: the console (frontend) node, with its version and
// CPU/RAM, and the background node, with its endpoint and key, and "run cleanup now".

import { useState } from "react";
import { can, post } from "../api";
import { ago, bytes, stateLabel } from "../format";
import { RegisterNodeDialog, SecretDialog, StatusBadge } from "../nodes";
import { Link } from "../router";
import { useRole } from "../session";
import type { CleanupResult, NodeKind, NodeWithSecret, VoxNode } from "../types";
import { Empty, ErrorBox, Loading, PageHeader, useNow, useResource } from "../ui";

function SingletonCard({
  kind,
  title,
  why,
  nodes,
  onRegister,
  children,
}: {
  kind: NodeKind;
  title: string;
  why: string;
  nodes: VoxNode[] | undefined;
  onRegister: (k: NodeKind) => void;
  children?: React.ReactNode;
}) {
  const role = useRole();
  const now = useNow();
  const node = nodes?.find((n) => n.kind === kind);
  return (
    <section className="panel singleton" aria-labelledby={`${kind}-h`} data-testid={`singleton-${kind}`}>
      <h2 id={`${kind}-h`}>{title}</h2>
      <p className="muted">{why}</p>
      {!nodes && <Loading />}
      {nodes && !node && (
        <Empty title={`No ${kind} node registered`}>
          {can.administer(role) ? (
            <button type="button" className="btn btn-primary" onClick={() => onRegister(kind)}>
              Register the {kind} node
            </button>
          ) : (
            "An admin registers it."
          )}
        </Empty>
      )}
      {node && (
        <dl className="facts">
          <div>
            <dt>Node</dt>
            <dd>
              <Link to={`/nodes/${node.id}`}>{node.name}</Link>
            </dd>
          </div>
          <div>
            <dt>Status</dt>
            <dd>
              <StatusBadge node={node} now={now} />
            </dd>
          </div>
          <div>
            <dt>Endpoint</dt>
            <dd>
              <code>{node.endpoint}</code>
            </dd>
          </div>
          <div>
            <dt>Version</dt>
            <dd>{node.version || "—"}</dd>
          </div>
          <div>
            <dt>CPU</dt>
            <dd>{node.version ? `${node.cpu_percent.toFixed(1)}%` : "—"}</dd>
          </div>
          <div>
            <dt>RAM</dt>
            <dd>
              {node.memory_total_bytes ? `${bytes(node.memory_used_bytes)} of ${bytes(node.memory_total_bytes)}` : "—"}
            </dd>
          </div>
          <div>
            <dt>API key</dt>
            <dd>
              <span className="muted">set at registration; shown once</span>{" "}
              {can.administer(role) && <Link to={`/nodes/${node.id}`}>rotate on its page</Link>}
            </dd>
          </div>
          <div>
            <dt>Last heartbeat</dt>
            <dd>{ago(node.last_heartbeat_at, now)}</dd>
          </div>
        </dl>
      )}
      {children}
    </section>
  );
}

function Cleanup() {
  const role = useRole();
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<CleanupResult | null>(null);
  const [error, setError] = useState<unknown>(null);
  if (!can.operate(role)) return null;
  const run = async () => {
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      setResult(await post<CleanupResult>("Run the cleanup", "/jobs/cleanup"));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="job">
      <h3>Jobs</h3>
      <p className="muted small">
        Cleanup runs the stale-call reaper now: expired leases go back to pending, and calls stuck dialing, ringing,
        answered, attaching or in progress past their deadlines end as failed. It also runs on its own every 30 s.
      </p>
      <button type="button" className="btn btn-primary" onClick={run} disabled={busy}>
        {busy ? "Running…" : "Run cleanup now"}
      </button>
      <ErrorBox error={error} />
      {result && (
        <div className="alert alert-ok" role="status" data-testid="cleanup-result">
          {result.total === 0
            ? "Cleanup ran: nothing was stuck."
            : `Cleanup ran: ${result.total} call(s) moved (${result.reaped.map((r) => `${r.count} ${stateLabel(r.from_state)}`).join(", ")}).`}
        </div>
      )}
    </div>
  );
}

export function SingletonsPage() {
  const nodes = useResource<{ nodes: VoxNode[] }>("Load the singleton nodes", "/nodes", 5000);
  const [registering, setRegistering] = useState<NodeKind | null>(null);
  const [secret, setSecret] = useState<NodeWithSecret | null>(null);
  const singles = nodes.data?.nodes.filter((n) => n.kind === "console" || n.kind === "background");
  return (
    <>
      <PageHeader title="Singletons" sub="One per cluster: the console (frontend) node and the background node." />
      <ErrorBox error={nodes.error} onRetry={nodes.reload} />
      <div className="two-col">
        <SingletonCard
          kind="console"
          title="Console node"
          why="The server of this dashboard: check its build version and its CPU/RAM. This console is served by voxgate; a console node shows figures once a process heartbeats with its secret."
          nodes={singles}
          onRegister={setRegistering}
        />
        <SingletonCard
          kind="background"
          title="Background node"
          why="The background processor's endpoint and API key, so job triggers such as “Run cleanup now” know where to go."
          nodes={singles}
          onRegister={setRegistering}
        >
          <Cleanup />
        </SingletonCard>
      </div>
      {registering && (
        <RegisterNodeDialog
          kind={registering}
          onClose={() => setRegistering(null)}
          onRegistered={(r) => {
            setRegistering(null);
            setSecret(r);
            nodes.reload();
          }}
        />
      )}
      {secret && <SecretDialog result={secret} onClose={() => setSecret(null)} />}
    </>
  );
}
