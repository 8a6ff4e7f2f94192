// Webhooks (admins only): endpoints that receive the activity feed, signed the Standard
// Webhooks way. The signing secret is shown once, when the endpoint is made and when it
// is rotated. Below the endpoints: one endpoint's recent delivery attempts, the dead
// letters (deliveries that failed their last attempt) with a requeue per row and for all,
// and the queue the deliveries run on. Everything polls, so a retry shows up unasked.

import { useState, type FormEvent } from "react";
import { can, del, patch, post } from "../api";
import { dateTime, duration } from "../format";
import { Link } from "../router";
import { useRole } from "../session";
import type {
  Campaign,
  DeadWebhookDelivery,
  DeliveryOutcome,
  WebhookDelivery,
  WebhookEndpoint,
  WebhookQueue,
  WebhookSecret,
} from "../types";
import { Badge, CopyField, Empty, ErrorBox, Field, Loading, Modal, PageHeader, useAction, useResource } from "../ui";

/** The feed's event types, as voxbridge names them (vox-domain's feed::EVENT_TYPES). */
const EVENT_TYPES = [
  "call.created",
  "call.dialing",
  "call.ringing",
  "call.answered",
  "call.in_progress",
  "call.ended",
  "call.abandoned",
  "call.recording_ready",
  "call.recording_analyzed",
  "campaign.state_changed",
  "campaign.pacing",
];

const POLL_MS = 5000;

const OUTCOME_TONE: Record<DeliveryOutcome, string> = { delivered: "ok", retrying: "warn", dead_lettered: "bad" };
const OUTCOME_TEXT: Record<DeliveryOutcome, string> = {
  delivered: "delivered",
  retrying: "retrying",
  dead_lettered: "dead letter",
};

export function WebhooksPage() {
  const role = useRole();
  const admin = can.administer(role);
  const endpoints = useResource<{ endpoints: WebhookEndpoint[] }>(
    "Load the webhook endpoints",
    admin ? "/webhooks" : null,
    POLL_MS,
  );
  const [adding, setAdding] = useState(false);
  const [shown, setShown] = useState<{ title: string; secret: WebhookSecret } | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [error, act] = useAction();

  if (!admin) {
    return (
      <>
        <PageHeader title="Webhooks" />
        <Empty title="Admins only">Ask an admin to add a webhook endpoint for your integration.</Empty>
      </>
    );
  }

  const list = endpoints.data?.endpoints ?? [];
  const urlOf = (id: string) => list.find((e) => e.id === id)?.url ?? id;
  const path = (e: WebhookEndpoint) => `/webhooks/${encodeURIComponent(e.id)}`;

  const toggle = async (e: WebhookEndpoint) => {
    const verb = e.disabled ? "Enable" : "Disable";
    if (await act(() => patch<WebhookEndpoint>(`${verb} ${e.url}`, path(e), { disabled: !e.disabled }))) endpoints.reload();
  };
  const rotate = async (e: WebhookEndpoint) => {
    if (!window.confirm(`Rotate the secret of ${e.url}? The old secret keeps signing beside the new one for 24 hours.`)) return;
    await act(async () => {
      const s = await post<WebhookSecret>(`Rotate the secret of ${e.url}`, `${path(e)}/rotate-secret`, {});
      setShown({ title: "New signing secret", secret: s });
      endpoints.reload();
    });
  };
  const remove = async (e: WebhookEndpoint) => {
    if (!window.confirm(`Delete the endpoint ${e.url}? Nothing more is sent to it.`)) return;
    if (await act(() => del(`Delete ${e.url}`, path(e)))) {
      if (selected === e.id) setSelected(null);
      endpoints.reload();
    }
  };

  return (
    <>
      <PageHeader
        title="Webhooks"
        sub="Vox POSTs the events each endpoint asks for, signed with its secret (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature). A failed delivery is tried 3 times, then kept in the dead letters."
        actions={
          <button type="button" className="btn btn-primary" onClick={() => setAdding(true)}>
            Add endpoint
          </button>
        }
      />
      <QueueFigures />
      <ErrorBox error={endpoints.error} onRetry={endpoints.reload} />
      <ErrorBox error={error} />
      {!endpoints.data && !endpoints.error && <Loading what="Loading webhook endpoints" />}
      {endpoints.data && list.length === 0 && (
        <Empty title="No webhook endpoints yet">Add one to push call and campaign events to your CRM.</Empty>
      )}
      {list.length > 0 && (
        <div className="table-wrap">
          <table className="table" data-testid="webhooks-table">
            <thead>
              <tr>
                <th>Endpoint</th>
                <th>Events</th>
                <th>Campaign</th>
                <th>Status</th>
                <th>Created</th>
                <th>
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((e) => (
                <tr key={e.id} className={selected === e.id ? "selected" : undefined}>
                  <td>
                    <span className="mono">{e.url}</span>
                    {e.description && <div>{e.description}</div>}
                    <div className="muted small mono">{e.id}</div>
                  </td>
                  <td>{e.event_types.length ? e.event_types.join(", ") : <span className="muted">every event</span>}</td>
                  <td>
                    {e.campaign_id ? (
                      <Link to={`/campaigns/${encodeURIComponent(e.campaign_id)}`}>{e.campaign_id}</Link>
                    ) : (
                      <span className="muted">every campaign</span>
                    )}
                  </td>
                  <td>
                    {e.disabled ? <Badge tone="muted">disabled</Badge> : <Badge tone="ok">enabled</Badge>}
                    {e.previous_secret_expires_at && (
                      <div className="muted small">old secret signs until {dateTime(e.previous_secret_expires_at)}</div>
                    )}
                  </td>
                  <td className="nowrap">{dateTime(e.created_at)}</td>
                  <td className="row-actions">
                    <button type="button" className="btn btn-small" onClick={() => setSelected(selected === e.id ? null : e.id)}>
                      {selected === e.id ? "Hide deliveries" : "Deliveries"}
                    </button>
                    <button type="button" className="btn btn-small" onClick={() => toggle(e)}>
                      {e.disabled ? "Enable" : "Disable"}
                    </button>
                    <button type="button" className="btn btn-small" onClick={() => rotate(e)}>
                      Rotate secret
                    </button>
                    <button type="button" className="btn btn-small btn-danger" onClick={() => remove(e)}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {selected && <Deliveries endpointId={selected} url={urlOf(selected)} />}
      <DeadLetters urlOf={urlOf} />
      {adding && (
        <CreateEndpoint
          onClose={() => setAdding(false)}
          onDone={(s) => {
            setAdding(false);
            setShown({ title: "Endpoint added", secret: s });
            endpoints.reload();
          }}
        />
      )}
      {shown && (
        <Modal title={shown.title} onClose={() => setShown(null)}>
          <p>
            Give this signing secret to the receiver at <span className="mono">{shown.secret.endpoint.url}</span> now: it is
            shown this once, and Vox keeps it sealed.
          </p>
          <CopyField value={shown.secret.secret} label="Signing secret" testId="webhook-secret" />
          <div className="form-actions">
            <button type="button" className="btn btn-primary" onClick={() => setShown(null)}>
              Done
            </button>
          </div>
        </Modal>
      )}
    </>
  );
}

/** The queue the deliveries run on: depth by state, and how long the oldest ready job waits. */
function QueueFigures() {
  const q = useResource<WebhookQueue>("Load the webhook queue", "/webhooks/queue", POLL_MS);
  if (q.error && !q.data) return <ErrorBox error={q.error} onRetry={q.reload} compact />;
  if (!q.data) return null;
  const d = q.data;
  const figures: [string, string, string][] = [
    ["Ready", String(d.ready), "waiting for a deliverer"],
    ["Delayed", String(d.delayed), "waiting to retry"],
    ["In flight", String(d.in_flight), "being delivered"],
    ["Dead", String(d.dead), "failed every attempt"],
    ["Expired", String(d.expired), "dropped unsent"],
    ["Oldest ready", d.ready ? duration(d.oldest_ready_age_seconds * 1000) : "—", "time waiting"],
  ];
  return (
    <section className="stat-grid" aria-label="Webhook queue" data-testid="webhook-queue">
      {figures.map(([label, value, note]) => (
        <div key={label} className={label === "Dead" && d.dead ? "stat stat-bad" : "stat"}>
          <div className="stat-label">{label}</div>
          <div className="stat-value">{value}</div>
          <div className="stat-note">{note}</div>
        </div>
      ))}
    </section>
  );
}

function Deliveries({ endpointId, url }: { endpointId: string; url: string }) {
  const path = `/webhooks/${encodeURIComponent(endpointId)}/deliveries?limit=50`;
  const d = useResource<{ deliveries: WebhookDelivery[] }>("Load the deliveries", path, POLL_MS);
  return (
    <section className="panel" aria-labelledby="deliveries-h" data-testid="webhook-deliveries">
      <h2 id="deliveries-h">
        Recent deliveries to <span className="mono">{url}</span>
      </h2>
      <ErrorBox error={d.error} onRetry={d.reload} />
      {!d.data && !d.error && <Loading what="Loading deliveries" />}
      {d.data && d.data.deliveries.length === 0 && <Empty title="Nothing sent yet">Attempts show here as they happen.</Empty>}
      {d.data && d.data.deliveries.length > 0 && (
        <div className="table-wrap">
          <table className="table">
            <thead>
              <tr>
                <th>Time</th>
                <th>Event</th>
                <th className="num">Attempt</th>
                <th className="num">Status</th>
                <th className="num">Took</th>
                <th>Outcome</th>
                <th>Error</th>
              </tr>
            </thead>
            <tbody>
              {d.data.deliveries.map((a) => (
                <tr key={`${a.event_id}-${a.attempt}-${a.at}`}>
                  <td className="nowrap">{dateTime(a.at)}</td>
                  <td>
                    {a.event_type} <span className="muted small mono">#{a.event_id}</span>
                  </td>
                  <td className="num">{a.attempt}</td>
                  <td className="num">{a.status ?? <span className="muted">no answer</span>}</td>
                  <td className="num">{a.duration_ms} ms</td>
                  <td>
                    <Badge tone={OUTCOME_TONE[a.outcome]}>{OUTCOME_TEXT[a.outcome]}</Badge>
                  </td>
                  <td className="small">{a.error ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function DeadLetters({ urlOf }: { urlOf: (endpointId: string) => string }) {
  const dead = useResource<{ deliveries: DeadWebhookDelivery[] }>("Load the dead letters", "/webhooks/dead-letters", POLL_MS);
  const [error, act] = useAction();
  const [note, setNote] = useState<string | null>(null);
  const requeue = async (what: string, body: { job_id?: string }) => {
    setNote(null);
    await act(async () => {
      const r = await post<{ requeued: number }>(what, "/webhooks/dead-letters/requeue", body);
      setNote(`${r.requeued} requeued: each is tried again from its first attempt.`);
      dead.reload();
    });
  };
  const rows = dead.data?.deliveries ?? [];
  return (
    <section className="panel" aria-labelledby="dead-h" data-testid="dead-letters">
      <h2 id="dead-h">Dead letters</h2>
      <p className="muted small">Deliveries that failed their last attempt. Fix the receiver, then requeue them.</p>
      <ErrorBox error={dead.error} onRetry={dead.reload} />
      <ErrorBox error={error} />
      {note && (
        <div className="alert alert-ok" role="status">
          {note}
        </div>
      )}
      {!dead.data && !dead.error && <Loading what="Loading dead letters" />}
      {dead.data && rows.length === 0 && <p className="muted">None: every delivery went through or is still being tried.</p>}
      {rows.length > 0 && (
        <>
          <div className="form-actions">
            <button type="button" className="btn" onClick={() => requeue("Requeue every dead letter", {})}>
              Requeue all ({rows.length})
            </button>
          </div>
          <div className="table-wrap">
            <table className="table">
              <thead>
                <tr>
                  <th>Failed</th>
                  <th>Endpoint</th>
                  <th>Event</th>
                  <th className="num">Attempts</th>
                  <th>Last error</th>
                  <th>
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <tr key={r.job_id} data-testid={`dead-${r.job_id}`}>
                    <td className="nowrap">{dateTime(r.failed_at)}</td>
                    <td className="mono small">{urlOf(r.endpoint_id)}</td>
                    <td>
                      {r.event_type} <span className="muted small mono">#{r.event_id}</span>
                    </td>
                    <td className="num">{r.attempts}</td>
                    <td className="small">{r.last_error}</td>
                    <td className="row-actions">
                      <button
                        type="button"
                        className="btn btn-small"
                        onClick={() => requeue(`Requeue event ${r.event_id}`, { job_id: r.job_id })}
                      >
                        Requeue
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}

function CreateEndpoint({ onClose, onDone }: { onClose: () => void; onDone: (s: WebhookSecret) => void }) {
  const campaigns = useResource<{ campaigns: Campaign[] }>("Load the campaigns", "/campaigns");
  const [url, setUrl] = useState("");
  const [description, setDescription] = useState("");
  const [types, setTypes] = useState<string[]>([]);
  const [campaign, setCampaign] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const flip = (t: string) => setTypes((ts) => (ts.includes(t) ? ts.filter((x) => x !== t) : [...ts, t]));
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = { url: url.trim(), description: description.trim(), event_types: types, campaign_id: campaign || null };
      onDone(await post<WebhookSecret>("Add the endpoint", "/webhooks", body));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal title="Add webhook endpoint" onClose={onClose} wide>
      <form onSubmit={submit}>
        <Field label="URL" hint="https:// only: events carry phone numbers and call details.">
          <input
            name="url"
            type="url"
            required
            maxLength={2048}
            placeholder="https://crm.example.com/vox/events"
            value={url}
            onChange={(e) => setUrl(e.target.value)}
          />
        </Field>
        <Field label="Description" hint="What receives it, e.g. HubSpot sync.">
          <input name="description" maxLength={200} value={description} onChange={(e) => setDescription(e.target.value)} />
        </Field>
        <fieldset className="inline-checks">
          <legend>Event types (none ticked: every event)</legend>
          {EVENT_TYPES.map((t) => (
            <label key={t} className="check">
              <input type="checkbox" checked={types.includes(t)} onChange={() => flip(t)} /> <span className="mono">{t}</span>
            </label>
          ))}
        </fieldset>
        <Field label="Campaign" hint="Only this campaign's events.">
          <select name="campaign" value={campaign} onChange={(e) => setCampaign(e.target.value)}>
            <option value="">Every campaign</option>
            {campaigns.data?.campaigns.map((c) => (
              <option key={c.id} value={c.id}>
                {c.spec.name} ({c.id})
              </option>
            ))}
          </select>
        </Field>
        <ErrorBox error={error} />
        <div className="form-actions">
          <button type="button" className="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={busy}>
            Add endpoint
          </button>
        </div>
      </form>
    </Modal>
  );
}
