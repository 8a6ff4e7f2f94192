// One call: who, where, its state timeline, and its recording played in the browser
// through a short-lived signed URL.

import { useState } from "react";
import { ApiError, can, get, post } from "../api";
import { callStateTone, dateTime, duration, bytes, stateLabel } from "../format";
import { Link } from "../router";
import { useRole } from "../session";
import type { Call, CallEvent, Campaign } from "../types";
import { ENDED_STATES } from "../types";
import { Badge, Empty, ErrorBox, Loading, Modal, PageHeader, useResource } from "../ui";

export function CallDetailPage({ id }: { id: string }) {
  const role = useRole();
  const path = `/calls/${encodeURIComponent(id)}`;
  const call = useResource<Call>("Load the call", path, 3000);
  const events = useResource<{ events: CallEvent[] }>("Load the call's timeline", `${path}/events`, 3000);
  const campaignId = call.data?.campaign_id;
  const campaign = useResource<Campaign>(
    "Load the call's campaign",
    campaignId ? `/campaigns/${encodeURIComponent(campaignId)}` : null,
  );
  const [canceling, setCanceling] = useState(false);

  if (call.error && !call.data) {
    return (
      <>
        <PageHeader title="Call" />
        <ErrorBox error={call.error} onRetry={call.reload} />
        <Link to="/calls">Back to calls</Link>
      </>
    );
  }
  if (!call.data) return <Loading what="Loading the call" />;
  const c = call.data;
  const ended = ENDED_STATES.includes(c.state);

  return (
    <>
      <div className="crumbs">
        <Link to="/calls">Calls</Link> / {c.id}
      </div>
      <PageHeader
        title={
          <>
            {c.direction === "outbound" ? `To ${c.to_number}` : `From ${c.from_number}`}{" "}
            <Badge tone={callStateTone(c.state)}>{stateLabel(c.state)}</Badge>
          </>
        }
        sub={
          <>
            {c.direction} {c.channel} call · attempt {c.attempt} · <code>{c.id}</code>
          </>
        }
        actions={
          can.operate(role) &&
          !ended && (
            <button type="button" className="btn btn-danger" onClick={() => setCanceling(true)}>
              Cancel call…
            </button>
          )
        }
      />
      <div className="two-col">
        <section className="panel">
          <h2>Details</h2>
          <dl className="facts">
            <div>
              <dt>From → to</dt>
              <dd>
                {c.from_number || "—"} → {c.to_number || "—"}
              </dd>
            </div>
            <div>
              <dt>Campaign</dt>
              <dd>
                {c.campaign_id ? (
                  <Link to={`/campaigns/${c.campaign_id}`}>{campaign.data?.spec.name ?? c.campaign_id}</Link>
                ) : (
                  "—"
                )}
              </dd>
            </div>
            <div>
              <dt>Created</dt>
              <dd>{dateTime(c.created_at)}</dd>
            </div>
            <div>
              <dt>Answered</dt>
              <dd>{dateTime(c.answered_at)}</dd>
            </div>
            <div>
              <dt>Ended</dt>
              <dd>
                {dateTime(c.ended_at)}
                {c.end_reason && <div className="muted small">{c.end_reason}</div>}
              </dd>
            </div>
            <div>
              <dt>Worker</dt>
              <dd>
                {c.node_id ? (
                  <>
                    <Link to={`/nodes/${c.node_id}`}>{c.node_id}</Link> #{c.worker_index}
                  </>
                ) : (
                  "—"
                )}
              </dd>
            </div>
            {c.retry_of && (
              <div>
                <dt>Retry of</dt>
                <dd>
                  <Link to={`/calls/${c.retry_of}`}>{c.retry_of}</Link>
                </dd>
              </div>
            )}
            {c.provider_call_id && (
              <div>
                <dt>Carrier id</dt>
                <dd>
                  <code>{c.provider_call_id}</code>
                </dd>
              </div>
            )}
          </dl>
        </section>
        <section className="panel">
          <h2>Recording</h2>
          <Recording call={c} />
        </section>
      </div>
      <section className="panel" aria-labelledby="timeline-h">
        <h2 id="timeline-h">Timeline</h2>
        <ErrorBox error={events.error} onRetry={events.reload} compact />
        {events.data && events.data.events.length === 0 && <Empty title="No events recorded" />}
        {events.data && events.data.events.length > 0 && (
          <ol className="timeline" data-testid="timeline">
            {events.data.events.map((e) => (
              <li key={e.seq}>
                <div className="timeline-when">{dateTime(e.at)}</div>
                <div>
                  {e.from_state ? (
                    <>
                      <Badge tone={callStateTone(e.from_state)}>{stateLabel(e.from_state)}</Badge> →{" "}
                    </>
                  ) : (
                    "created as "
                  )}
                  <Badge tone={callStateTone(e.to_state)}>{stateLabel(e.to_state)}</Badge>
                  <span className="muted small">
                    {" "}
                    by {e.actor}
                    {e.reason ? ` · ${e.reason}` : ""}
                    {e.fencing_term ? ` · term ${e.fencing_term}` : ""}
                  </span>
                </div>
              </li>
            ))}
          </ol>
        )}
      </section>
      {canceling && (
        <CancelCall
          call={c}
          onClose={() => setCanceling(false)}
          onDone={() => {
            setCanceling(false);
            call.reload();
            events.reload();
          }}
        />
      )}
    </>
  );
}

function Recording({ call }: { call: Call }) {
  const [url, setUrl] = useState<{ url: string; expires_at: string } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  if (!call.recording) {
    return (
      <p className="muted">
        {ENDED_STATES.includes(call.state)
          ? "No recording: the call was not answered, or its upload has not been confirmed."
          : "The recording is uploaded when the call ends."}
      </p>
    );
  }
  const load = async () => {
    setBusy(true);
    setError(null);
    try {
      setUrl(await get<{ url: string; expires_at: string }>("Get a link to the recording", `/calls/${encodeURIComponent(call.id)}/recording`));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const missing = error instanceof ApiError && error.routeMissing;
  return (
    <div data-testid="recording">
      <p className="small">
        {duration(call.recording.duration_ms)} · {bytes(call.recording.size_bytes)} · stereo (caller left, agent right)
      </p>
      {url ? (
        <>
          <audio controls autoPlay src={url.url} className="audio">
            Your browser cannot play this recording.
          </audio>
          <p className="muted small">The link expires at {new Date(url.expires_at).toLocaleTimeString()}; play again for a new one.</p>
        </>
      ) : (
        <button type="button" className="btn btn-primary" onClick={load} disabled={busy}>
          {busy ? "Getting a link…" : "▶ Play recording"}
        </button>
      )}
      {missing ? (
        <div className="alert alert-info">
          This gateway cannot hand out recording links yet (no GET /api/v1/calls/&#123;id&#125;/recording). The file is
          stored under <code>{call.recording.key}</code>.
        </div>
      ) : (
        <ErrorBox error={error} compact />
      )}
    </div>
  );
}

function CancelCall({ call, onClose, onDone }: { call: Call; onClose: () => void; onDone: () => void }) {
  const [reason, setReason] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const go = async () => {
    setBusy(true);
    try {
      await post<Call>("Cancel the call", `/calls/${encodeURIComponent(call.id)}/cancel`, { reason: reason.trim() });
      onDone();
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return (
    <Modal title="Cancel this call?" onClose={onClose}>
      <p>
        The call moves to canceled and is neither dialled nor retried; the change is kept on its timeline.
      </p>
      <label className="field">
        <span className="field-label">Reason (kept on the timeline)</span>
        <input value={reason} onChange={(e) => setReason(e.target.value)} />
      </label>
      <ErrorBox error={error} />
      <div className="form-actions">
        <button type="button" className="btn" onClick={onClose}>
          Keep it
        </button>
        <button type="button" className="btn btn-danger" onClick={go} disabled={busy}>
          Cancel call
        </button>
      </div>
    </Modal>
  );
}
