// The seed's real-time pulse: live conversations, the outbound pipeline, capacity as
// online/registered with the "registered but not heartbeating" case spelled out, worker
// slots, and charts of the last minutes. Figures come from the live stream; the list of
// silent nodes from polling the nodes.

import { useEffect } from "react";
import { ago, KIND_LABEL, percent } from "../format";
import { HISTORY_MS, useLive } from "../live";
import { Link } from "../router";
import type { Region, VoxNode } from "../types";
import { ErrorBox, Loading, PageHeader, Sparkline, useNow, useResource } from "../ui";

function Ratio({
  label,
  online,
  total,
  testId,
  what,
}: {
  label: string;
  online: number;
  total: number;
  testId: string;
  what: string;
}) {
  const silent = total - online;
  const tone = total === 0 ? "muted" : silent > 0 ? (online === 0 ? "bad" : "warn") : "ok";
  return (
    <div className={`stat stat-${tone}`} data-testid={testId}>
      <div className="stat-label">{label}</div>
      <div className="stat-value">
        <span data-testid={`${testId}-value`}>
          {online}/{total}
        </span>
      </div>
      <div className="stat-note">
        {total === 0
          ? `no ${what} registered`
          : silent === 0
            ? "all online"
            : `${silent} registered but not heartbeating`}
      </div>
    </div>
  );
}

export function DashboardPage() {
  const live = useLive();
  const now = useNow(1000);
  const nodes = useResource<{ nodes: VoxNode[] }>("Load the nodes", "/nodes", 3000);
  const regions = useResource<{ regions: Region[] }>("Load the regions", "/regions", 30000);
  const d = live.dashboard;
  // The list of silent nodes follows the live figures at once rather than at the next poll.
  const presence = d
    ? `${d.capacity.fleet_nodes_online}/${d.capacity.fleet_nodes_total}/${d.capacity.gateway_nodes_online}/${d.capacity.gateway_nodes_total}`
    : "";
  const reloadNodes = nodes.reload;
  useEffect(() => {
    if (presence) reloadNodes();
  }, [presence, reloadNodes]);
  const regionName = (id: string | null) => regions.data?.regions.find((r) => r.id === id)?.name ?? id ?? "—";

  const silent = (nodes.data?.nodes ?? []).filter(
    (n) => (n.kind === "fleet" || n.kind === "gateway") && !n.online && n.desired_state !== "disabled",
  );
  const updated = live.receivedAt ? Math.max(0, Math.round((now - live.receivedAt) / 1000)) : null;

  const dialler = live.dialler;
  const abandonUnavailable =
    dialler.state === "not_running"
      ? "dialler not running"
      : dialler.state === "missing"
        ? "this gateway has no dialler figures yet"
        : dialler.state === "error"
          ? "dialler figures failed to load"
          : undefined;

  return (
    <>
      <PageHeader
        title="Dashboard"
        sub={
          updated === null
            ? "Waiting for the first figures…"
            : `Real-time pulse of the whole cluster · updated ${updated < 2 ? "just now" : `${updated} s ago`}`
        }
      />
      {live.streamError !== null && <ErrorBox error={live.streamError} />}
      {!d && !live.streamError && <Loading what="Connecting to the live stream" />}
      {d && (
        <>
          {silent.length > 0 && (
            <div className="alert alert-error health" role="alert" data-testid="silent-nodes">
              <div>
                <strong>
                  {silent.length} node{silent.length > 1 ? "s are" : " is"} registered but not heartbeating.
                </strong>{" "}
                They take no calls. Check that each one's process is running, that its firewall lets it reach voxbridge
                (its <code>--bridge-url</code>), and that its <code>VOX_NODE_SECRET</code> is the secret shown at
                registration.
                <ul>
                  {silent.map((n) => (
                    <li key={n.id}>
                      <Link to={`/nodes/${n.id}`}>{n.name || n.id}</Link> · {KIND_LABEL[n.kind]} node in{" "}
                      {regionName(n.region_id)} · last heartbeat {ago(n.last_heartbeat_at, now)}
                    </li>
                  ))}
                </ul>
              </div>
            </div>
          )}
          <section className="stat-grid" aria-label="Current figures">
            <div className="stat stat-live" data-testid="live-conversations">
              <div className="stat-label">Live conversations</div>
              <div className="stat-value">{d.live.phone + d.live.web}</div>
              <div className="stat-note">
                {d.live.phone} phone · {d.live.web} web
              </div>
            </div>
            <div className="stat" data-testid="pipeline">
              <div className="stat-label">Outbound pipeline</div>
              <div className="stat-pair">
                <div>
                  <div className="stat-value">{d.pipeline.processing}</div>
                  <div className="stat-note">processing</div>
                </div>
                <div>
                  <div className="stat-value">{d.pipeline.pending}</div>
                  <div className="stat-note">pending</div>
                </div>
              </div>
            </div>
            <Ratio
              label="Backend nodes"
              what="backend nodes"
              online={d.capacity.fleet_nodes_online}
              total={d.capacity.fleet_nodes_total}
              testId="capacity-backend"
            />
            <Ratio
              label="Proxy nodes"
              what="proxy nodes"
              online={d.capacity.gateway_nodes_online}
              total={d.capacity.gateway_nodes_total}
              testId="capacity-proxy"
            />
            <div
              className={`stat ${d.capacity.worker_slots_total === 0 ? "stat-bad" : d.capacity.worker_slots_free === 0 ? "stat-warn" : ""}`}
              data-testid="worker-slots"
            >
              <div className="stat-label">Worker slots free</div>
              <div className="stat-value">
                {d.capacity.worker_slots_free}/{d.capacity.worker_slots_total}
              </div>
              <div className="meter" aria-hidden="true">
                <span
                  style={{
                    width: `${d.capacity.worker_slots_total ? (100 * d.capacity.worker_slots_free) / d.capacity.worker_slots_total : 0}%`,
                  }}
                />
              </div>
              <div className="stat-note">
                {d.capacity.worker_slots_total === 0
                  ? "no slot online: no call can be taken"
                  : `${d.capacity.worker_slots_total - d.capacity.worker_slots_free} in use or draining`}
              </div>
            </div>
          </section>
          <section className="chart-grid" aria-label="Last 10 minutes">
            <Sparkline label="Calls in progress" samples={live.inProgress} windowMs={HISTORY_MS} now={now} />
            <Sparkline label="Pending" samples={live.pending} windowMs={HISTORY_MS} now={now} tone="amber" />
            <Sparkline
              label="Abandon rate"
              samples={live.abandon}
              windowMs={HISTORY_MS}
              now={now}
              tone="red"
              format={(v) => percent(v)}
              unavailable={abandonUnavailable}
            />
          </section>
          <p className="muted small">
            Charts cover the last 10 minutes seen by this browser tab. Dialler:{" "}
            {dialler.state === "ok"
              ? `${dialler.status.healthy ? "healthy" : `unhealthy (${dialler.status.unhealthy_reason})`}, ${dialler.status.leader ? "leader" : "standby"} at term ${dialler.status.term}, ${dialler.status.campaigns.length} campaign(s) paced`
              : dialler.state === "not_running"
                ? "not running"
                : dialler.state === "missing"
                  ? "no figures from this gateway"
                  : dialler.state === "loading"
                    ? "…"
                    : "figures failed to load"}
            .
          </p>
          {nodes.error !== null && <ErrorBox error={nodes.error} compact />}
        </>
      )}
    </>
  );
}
