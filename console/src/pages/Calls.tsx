// Calls, newest first, filtered by campaign, state and creation date, a page at a time.

import { useEffect, useState } from "react";
import { ApiError, get } from "../api";
import { dateTime, stateLabel, callStateTone } from "../format";
import { Link, navigate, useLocation } from "../router";
import type { Call, CallPage, Campaign } from "../types";
import { CALL_STATES, ENDED_STATES } from "../types";
import { Badge, Empty, ErrorBox, Loading, PageHeader, useResource } from "../ui";

const GROUPS: Record<string, string> = {
  live: "leased,dialing,ringing,answered,attaching,in_progress",
  ended: ENDED_STATES.join(","),
  unsuccessful: "no_answer,busy,failed,abandoned,canceled,machine",
};

/** A date input's value (local midnight) as RFC 3339; `endOfDay` moves it to the next midnight. */
function dayBound(day: string, endOfDay: boolean): string | undefined {
  if (!day) return undefined;
  const d = new Date(`${day}T00:00:00`);
  if (Number.isNaN(d.getTime())) return undefined;
  if (endOfDay) d.setDate(d.getDate() + 1);
  return d.toISOString();
}

export function CallsPage() {
  const { query } = useLocation();
  const campaign = query.get("campaign") ?? "";
  const state = query.get("state") ?? "";
  const from = query.get("from") ?? "";
  const to = query.get("to") ?? "";
  const campaigns = useResource<{ campaigns: Campaign[] }>("Load the campaigns", "/campaigns");
  const [calls, setCalls] = useState<Call[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [tick, setTick] = useState(0);

  const params = (pageToken?: string) => {
    const p = new URLSearchParams();
    if (campaign) p.set("campaign_id", campaign);
    if (state) p.set("state", GROUPS[state] ?? state);
    const after = dayBound(from, false);
    const before = dayBound(to, true);
    if (after) p.set("created_after", after);
    if (before) p.set("created_before", before);
    p.set("limit", "50");
    if (pageToken) p.set("page_token", pageToken);
    return p.toString();
  };

  useEffect(() => {
    const ctl = new AbortController();
    setLoading(true);
    setError(null);
    get<CallPage>("Load the calls", `/calls?${params()}`, ctl.signal)
      .then((r) => {
        setCalls(r.calls);
        setNext(r.next_page_token);
      })
      .catch((e) => {
        if ((e as Error).name !== "AbortError") setError(e);
      })
      .finally(() => setLoading(false));
    return () => ctl.abort();
  }, [campaign, state, from, to, tick]);

  const more = async () => {
    if (!next) return;
    setLoading(true);
    try {
      const r = await get<CallPage>("Load more calls", `/calls?${params(next)}`);
      setCalls((c) => [...(c ?? []), ...r.calls]);
      setNext(r.next_page_token);
    } catch (e) {
      setError(e);
    } finally {
      setLoading(false);
    }
  };

  const setFilter = (k: string, v: string) => {
    const q = new URLSearchParams(location.search);
    if (v) q.set(k, v);
    else q.delete(k);
    navigate(`/calls${q.toString() ? `?${q}` : ""}`, { replace: true });
  };
  const campaignName = (id: string | null) =>
    id ? (campaigns.data?.campaigns.find((c) => c.id === id)?.spec.name ?? id) : "—";
  const filtered = Boolean(campaign || state || from || to);

  return (
    <>
      <PageHeader title="Calls" sub="Newest first. Open a call for its timeline and recording." />
      <div className="filters" role="search">
        <label>
          Campaign{" "}
          <select value={campaign} onChange={(e) => setFilter("campaign", e.target.value)}>
            <option value="">Any campaign</option>
            {campaigns.data?.campaigns.map((c) => (
              <option key={c.id} value={c.id}>
                {c.spec.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          State{" "}
          <select value={state} onChange={(e) => setFilter("state", e.target.value)}>
            <option value="">Any state</option>
            <option value="live">Live (leased … in progress)</option>
            <option value="ended">Ended</option>
            <option value="unsuccessful">Unsuccessful</option>
            {CALL_STATES.map((s) => (
              <option key={s} value={s}>
                {stateLabel(s)}
              </option>
            ))}
          </select>
        </label>
        <label>
          From <input type="date" value={from} onChange={(e) => setFilter("from", e.target.value)} />
        </label>
        <label>
          To <input type="date" value={to} onChange={(e) => setFilter("to", e.target.value)} />
        </label>
        {filtered && (
          <button type="button" className="btn btn-small btn-ghost" onClick={() => navigate("/calls", { replace: true })}>
            Clear filters
          </button>
        )}
        <button type="button" className="btn btn-small" onClick={() => setTick((t) => t + 1)}>
          Refresh
        </button>
      </div>
      <ErrorBox
        error={error}
        onRetry={() => setTick((t) => t + 1)}
      />
      {error instanceof ApiError && error.status === 400 && <p className="muted">Check the filter values above.</p>}
      {calls === null && loading && <Loading what="Loading calls" />}
      {calls && calls.length === 0 && (
        <Empty title={filtered ? "No call matches these filters" : "No calls yet"}>
          {filtered
            ? "Widen the dates or clear the filters."
            : "Calls appear when a campaign with numbers runs, or when a carrier or browser calls in."}
        </Empty>
      )}
      {calls && calls.length > 0 && (
        <div className="table-wrap">
          <table className="table stack" data-testid="calls-table">
            <thead>
              <tr>
                <th>Created</th>
                <th>To</th>
                <th>From</th>
                <th>State</th>
                <th>Campaign</th>
                <th className="num">Attempt</th>
                <th>Ended because</th>
              </tr>
            </thead>
            <tbody>
              {calls.map((c) => (
                <tr key={c.id}>
                  <td className="nowrap" data-label="Created">
                    <Link to={`/calls/${c.id}`}>{dateTime(c.created_at)}</Link>
                  </td>
                  <td data-label="To">{c.to_number}</td>
                  <td data-label="From">{c.from_number}</td>
                  <td data-label="State">
                    <Badge tone={callStateTone(c.state)}>{stateLabel(c.state)}</Badge>
                  </td>
                  <td data-label="Campaign">{campaignName(c.campaign_id)}</td>
                  <td className="num" data-label="Attempt">
                    {c.attempt}
                  </td>
                  <td data-label="Ended because">{c.end_reason ?? <span className="muted">—</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {next && (
        <button type="button" className="btn" onClick={more} disabled={loading}>
          {loading ? "Loading…" : "Load more"}
        </button>
      )}
    </>
  );
}
