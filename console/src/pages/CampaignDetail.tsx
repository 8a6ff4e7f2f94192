// One campaign: status and start/pause/complete, counts, live pacing figures from the
// dialler, the abandon ledger and its compliance report, the numbers upload (CSV, with
// each rejected row's reason), its do-not-call list and its settings.

import { useRef, useState, type FormEvent } from "react";
import { can, download, post, qs, request } from "../api";
import { percent, stateLabel } from "../format";
import { useLive } from "../live";
import { Link } from "../router";
import { useRole } from "../session";
import type { AbandonLedger, AbandonPeriod, Campaign, NumbersAdded, Region } from "../types";
import { Badge, ErrorBox, Loading, Modal, PageHeader, useResource } from "../ui";
import { STATUS_TONE } from "./Campaigns";
import { DoNotCallPanel } from "./DoNotCall";

export function CampaignDetailPage({ id }: { id: string }) {
  const role = useRole();
  const path = `/campaigns/${encodeURIComponent(id)}`;
  const campaign = useResource<Campaign>("Load the campaign", path, 3000);
  const regions = useResource<{ regions: Region[] }>("Load the regions", "/regions");
  const [actionError, setActionError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [completing, setCompleting] = useState(false);

  if (campaign.error && !campaign.data) {
    return (
      <>
        <PageHeader title="Campaign" />
        <ErrorBox error={campaign.error} onRetry={campaign.reload} />
        <Link to="/campaigns">Back to campaigns</Link>
      </>
    );
  }
  if (!campaign.data) return <Loading what="Loading the campaign" />;
  const c = campaign.data;
  const s = c.spec;
  const region = regions.data?.regions.find((r) => r.id === s.region_id);

  const act = async (verb: "start" | "pause" | "complete", what: string) => {
    setBusy(true);
    setActionError(null);
    try {
      await post<Campaign>(what, `${path}/${verb}`);
      campaign.reload();
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
      setCompleting(false);
    }
  };

  const operator = can.operate(role);
  return (
    <>
      <div className="crumbs">
        <Link to="/campaigns">Campaigns</Link> / {s.name}
      </div>
      <PageHeader
        title={
          <>
            {s.name} <Badge tone={STATUS_TONE[c.status]}>{c.status}</Badge>
          </>
        }
        sub={
          <>
            {region?.name ?? s.region_id} · caller id {s.caller_id} · <code>{c.id}</code>
          </>
        }
        actions={
          operator && (
            <>
              {(c.status === "draft" || c.status === "paused") && (
                <button
                  type="button"
                  className="btn btn-primary"
                  disabled={busy}
                  onClick={() => act("start", "Start the campaign")}
                >
                  Start
                </button>
              )}
              {c.status === "running" && (
                <button type="button" className="btn" disabled={busy} onClick={() => act("pause", "Pause the campaign")}>
                  Pause
                </button>
              )}
              {c.status !== "completed" && (
                <>
                  <Link to={`/campaigns/${c.id}/edit`} className="btn">
                    Edit
                  </Link>
                  <button type="button" className="btn btn-danger" disabled={busy} onClick={() => setCompleting(true)}>
                    Complete…
                  </button>
                </>
              )}
            </>
          )
        }
      />
      <ErrorBox error={actionError} />
      <section className="stat-grid" aria-label="Calls">
        <div className="stat">
          <div className="stat-label">Numbers</div>
          <div className="stat-value" data-testid="count-total">
            {c.counts.total}
          </div>
        </div>
        <div className="stat">
          <div className="stat-label">Pending</div>
          <div className="stat-value">{c.counts.pending}</div>
        </div>
        <div className="stat stat-live">
          <div className="stat-label">Live</div>
          <div className="stat-value">{c.counts.live}</div>
        </div>
        <div className="stat">
          <div className="stat-label">Completed</div>
          <div className="stat-value">{c.counts.completed}</div>
        </div>
        <div className="stat">
          <div className="stat-label">Unsuccessful</div>
          <div className="stat-value">{c.counts.unsuccessful}</div>
          <div className="stat-note">ended without a conversation (no answer, busy, machine, failed…)</div>
        </div>
      </section>
      <p>
        <Link to={`/calls?campaign=${c.id}`}>See this campaign's calls →</Link>
      </p>
      <Pacing campaign={c} />
      <Ledger campaign={c} />
      {operator && c.status !== "completed" && <Upload campaign={c} onDone={campaign.reload} />}
      <DoNotCallPanel campaignId={c.id} />
      <Settings campaign={c} />
      {completing && (
        <Modal title={`Complete ${s.name}?`} onClose={() => setCompleting(false)}>
          <p>
            Final: the campaign's {c.counts.pending} pending call(s) are canceled and it never dials again. Its{" "}
            {c.counts.live} live call(s) finish normally.
          </p>
          <div className="form-actions">
            <button type="button" className="btn" onClick={() => setCompleting(false)}>
              Cancel
            </button>
            <button
              type="button"
              className="btn btn-danger"
              disabled={busy}
              onClick={() => act("complete", "Complete the campaign")}
            >
              Complete campaign
            </button>
          </div>
        </Modal>
      )}
    </>
  );
}

function Pacing({ campaign }: { campaign: Campaign }) {
  const { dialler } = useLive();
  const figures = dialler.state === "ok" ? dialler.status.campaigns.find((x) => x.campaign_id === campaign.id) : undefined;
  return (
    <section className="panel" aria-labelledby="pacing-h" data-testid="pacing">
      <h2 id="pacing-h">Live pacing</h2>
      {dialler.state === "loading" && <Loading what="Asking the dialler" />}
      {dialler.state === "not_running" && (
        <p className="muted">
          Dialler not running: no call is placed and there are no pacing figures. Start <code>voxdialler</code> to dial
          running campaigns.
        </p>
      )}
      {dialler.state === "missing" && (
        <p className="muted">This gateway does not report dialler figures yet (no /api/v1/dialler); upgrade voxgate.</p>
      )}
      {dialler.state === "error" && <ErrorBox error={dialler.error} compact />}
      {dialler.state === "ok" && !figures && (
        <p className="muted">
          The dialler ({dialler.status.leader ? "leader" : "standby"}, term {dialler.status.term}) is not pacing this
          campaign{campaign.status === "running" ? " yet" : `: it is ${campaign.status}`}.
        </p>
      )}
      {figures && (
        <div className="stat-grid compact">
          <div className="stat">
            <div className="stat-label">Dial ratio</div>
            <div className="stat-value">{figures.dial_ratio.toFixed(2)}</div>
            <div className="stat-note">{figures.mode}</div>
          </div>
          <div className="stat">
            <div className="stat-label">Answer rate</div>
            <div className="stat-value">{percent(figures.answer_rate)}</div>
          </div>
          <div className="stat">
            <div className="stat-label">AHT</div>
            <div className="stat-value">{Math.round(figures.aht_seconds)} s</div>
          </div>
          <div
            className={`stat ${figures.abandon_rate > (campaign.spec.pacing?.abandon_target || 0.03) ? "stat-bad" : ""}`}
          >
            <div className="stat-label">Abandon rate</div>
            <div className="stat-value">{percent(figures.abandon_rate)}</div>
            <div className="stat-note">target {percent(campaign.spec.pacing?.abandon_target ?? 0.03)}</div>
          </div>
          <div className="stat">
            <div className="stat-label">Active dials</div>
            <div className="stat-value">{figures.active_dials}</div>
            <div className="stat-note">
              {figures.calls_placed} placed · {figures.calls_answered} answered · {figures.calls_abandoned} abandoned
            </div>
          </div>
        </div>
      )}
    </section>
  );
}

const REGIME_LABEL = { fcc: "FCC (30 days)", ofcom: "Ofcom (24 hours)" } as const;

function PeriodStat({ label, period, limit, testId }: { label: string; period: AbandonPeriod; limit: number; testId: string }) {
  return (
    <div className={`stat ${period.abandon_rate > limit ? "stat-bad" : ""}`} data-testid={testId}>
      <div className="stat-label">{label}</div>
      <div className="stat-value">{percent(period.abandon_rate, 2)}</div>
      <div className="stat-note">
        {period.abandons} abandoned of {period.live_answers} live answers
        {period.machine_answers ? ` · ${period.machine_answers} machines (not counted)` : ""}
      </div>
    </div>
  );
}

/** The abandon ledger from the call records, and the compliance report of a period. */
function Ledger({ campaign }: { campaign: Campaign }) {
  const path = `/campaigns/${encodeURIComponent(campaign.id)}/ledger`;
  const ledger = useResource<AbandonLedger>("Load the abandon ledger", path, 15000);
  const today = new Date().toISOString().slice(0, 10);
  const monthAgo = new Date(Date.now() - 30 * 86400_000).toISOString().slice(0, 10);
  const [from, setFrom] = useState(monthAgo);
  const [to, setTo] = useState(today);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const report = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // Whole UTC days: from the start of `from` to the end of `to`.
      const end = new Date(Date.parse(`${to}T00:00:00Z`) + 86400_000).toISOString();
      const q = qs({ from: `${from}T00:00:00Z`, to: end });
      const file = await download("Download the compliance report", `/campaigns/${encodeURIComponent(campaign.id)}/compliance.csv${q}`);
      const url = URL.createObjectURL(new Blob([file.text], { type: "text/csv" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = file.filename;
      a.click();
      URL.revokeObjectURL(url);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const l = ledger.data;
  return (
    <section className="panel" aria-labelledby="ledger-h" data-testid="ledger">
      <h2 id="ledger-h">Abandon ledger</h2>
      {!!ledger.error && !l && <ErrorBox error={ledger.error} onRetry={ledger.reload} compact />}
      {!l && !ledger.error && <Loading what="Counting the call records" />}
      {l && (
        <>
          <p className="muted small">
            Abandons over live answers (people who answered; answering machines are not counted), from the call records.
            Regime {REGIME_LABEL[l.regime]}: at most {percent(l.limit)}.{" "}
            <span data-testid="ledger-verdict">
              {l.within_limit
                ? `Within the limit; ${Math.max(0, Math.floor(l.abandon_headroom))} more abandon(s) fit in the period.`
                : "Over the limit: the dialler places no call ahead of a free agent until it is back within."}
            </span>
          </p>
          <div className="stat-grid compact">
            <PeriodStat label="Last 24 hours" period={l.last_24_hours} limit={l.limit} testId="ledger-24h" />
            <PeriodStat label="Last 30 days" period={l.last_30_days} limit={l.limit} testId="ledger-30d" />
          </div>
        </>
      )}
      <form onSubmit={report} className="upload-row" aria-label="Compliance report">
        <label>
          From <input type="date" required value={from} onChange={(e) => setFrom(e.target.value)} />
        </label>
        <label>
          to <input type="date" required value={to} onChange={(e) => setTo(e.target.value)} />
        </label>
        <button type="submit" className="btn" disabled={busy} data-testid="compliance-report">
          {busy ? "Preparing…" : "Download compliance report (CSV)"}
        </button>
      </form>
      <p className="muted small">Every abandoned call of those days (UTC), with its ring time and the message played.</p>
      <ErrorBox error={error} />
    </section>
  );
}

function Upload({ campaign, onDone }: { campaign: Campaign; onDone: () => void }) {
  const input = useRef<HTMLInputElement>(null);
  const [file, setFile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [result, setResult] = useState<NumbersAdded | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!file) return;
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const text = await file.text();
      const r = await request<NumbersAdded>(
        `Upload ${file.name}`,
        "POST",
        `/campaigns/${encodeURIComponent(campaign.id)}/numbers`,
        { raw: { body: text, contentType: "text/csv" } },
      );
      setResult(r);
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel" aria-labelledby="upload-h">
      <h2 id="upload-h">Upload numbers</h2>
      <p className="muted small">
        A CSV file with one number per row in the first column (E.164, e.g. +14155550123); a header row such as{" "}
        <code>number</code> is fine. Valid rows are added as pending calls even when others are rejected; rows are
        numbered as a spreadsheet shows them.
      </p>
      <form onSubmit={submit} className="upload-row">
        <input
          ref={input}
          type="file"
          accept=".csv,text/csv"
          aria-label="CSV file of numbers"
          data-testid="csv-input"
          onChange={(e) => {
            setFile(e.target.files?.[0] ?? null);
            setResult(null);
          }}
        />
        <button type="submit" className="btn btn-primary" disabled={!file || busy}>
          {busy ? "Uploading…" : "Upload"}
        </button>
      </form>
      <ErrorBox error={error} />
      {result && (
        <div data-testid="upload-result">
          <div className={`alert ${result.rejected_count ? "alert-warn" : "alert-ok"}`} role="status">
            {result.accepted} number{result.accepted === 1 ? "" : "s"} added
            {result.rejected_count
              ? `; ${result.rejected_count} row${result.rejected_count === 1 ? "" : "s"} rejected. Fix ${result.rejected_count === 1 ? "it" : "them"} in the file and upload just those rows again.`
              : "."}
            {result.rejected_count > result.rejected.length &&
              ` The first ${result.rejected.length} are listed below.`}
          </div>
          {result.rejected.length > 0 && (
            <div className="table-wrap">
              <table className="table" data-testid="rejected-rows">
                <thead>
                  <tr>
                    <th className="num">Row</th>
                    <th>Value</th>
                    <th>Why it was rejected</th>
                  </tr>
                </thead>
                <tbody>
                  {result.rejected.map((r) => (
                    <tr key={`${r.row}-${r.input}`} data-testid={`rejected-row-${r.row}`}>
                      <td className="num">{r.row}</td>
                      <td>
                        <code>{r.input || "(empty)"}</code>
                      </td>
                      <td>{r.reason}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </div>
      )}
    </section>
  );
}

function Settings({ campaign }: { campaign: Campaign }) {
  const s = campaign.spec;
  const days = s.window?.days?.length
    ? s.window.days.map((d) => ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][d - 1]).join(", ")
    : "every day";
  return (
    <section className="panel" aria-labelledby="settings-h">
      <h2 id="settings-h">Settings</h2>
      <dl className="facts">
        <div>
          <dt>Agent</dt>
          <dd>
            {s.agent?.kind ?? "echo"}
            {s.agent?.prompt_key ? ` (${s.agent.prompt_key})` : ""}
            {s.agent?.external_url ? ` (${s.agent.external_url})` : ""}
          </dd>
        </div>
        <div>
          <dt>Window</dt>
          <dd>
            {s.window ? `${s.window.start}–${s.window.end} ${s.window.time_zone}, ${days}` : "—"}
          </dd>
        </div>
        <div>
          <dt>Retries</dt>
          <dd>
            {s.retry && s.retry.max_attempts > 1
              ? `${s.retry.max_attempts} attempts, ${s.retry.backoff_seconds} s backoff ×${s.retry.backoff_multiplier}, on ${s.retry.retry_on.map(stateLabel).join(", ") || "nothing"}`
              : "no retry"}
          </dd>
        </div>
        <div>
          <dt>Pacing</dt>
          <dd>
            {s.pacing?.mode.replace("_", " ") ?? "predictive"}
            {s.pacing?.mode === "fixed_ratio" ? ` ${s.pacing.fixed_ratio}` : ""}, abandon target{" "}
            {percent(s.pacing?.abandon_target ?? 0.03)}
            {s.pacing?.max_calls_per_second ? `, at most ${s.pacing.max_calls_per_second}/s` : ""}
          </dd>
        </div>
        <div>
          <dt>Compliance</dt>
          <dd data-testid="compliance-setting">
            {REGIME_LABEL[s.compliance?.regime ?? "fcc"]}, ring at least {s.compliance?.min_ring_seconds || 15} s
          </dd>
        </div>
        <div>
          <dt>Weight · max concurrency</dt>
          <dd>
            {s.weight} · {s.max_concurrency}
          </dd>
        </div>
      </dl>
    </section>
  );
}
