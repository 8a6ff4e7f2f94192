// Create or edit a campaign's settings. voxbridge validates; its messages name the field.

import { useEffect, useState, type FormEvent } from "react";
import { can, post, put } from "../api";
import { stateLabel } from "../format";
import { Link, navigate } from "../router";
import { useRole } from "../session";
import type { AgentKind, Campaign, CampaignSpec, CallState, ComplianceRegime, PacingMode, Region } from "../types";
import { Empty, ErrorBox, Field, Loading, PageHeader, useResource } from "../ui";

const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const RETRYABLE: CallState[] = ["no_answer", "busy", "failed", "abandoned", "machine"];

interface Form {
  name: string;
  region_id: string;
  caller_id: string;
  agent: AgentKind;
  prompt_key: string;
  external_url: string;
  weight: string;
  max_concurrency: string;
  time_zone: string;
  start: string;
  end: string;
  days: number[];
  max_attempts: string;
  backoff_seconds: string;
  backoff_multiplier: string;
  retry_on: CallState[];
  mode: PacingMode;
  fixed_ratio: string;
  abandon_target_pct: string;
  max_cps: string;
  regime: ComplianceRegime;
  min_ring_seconds: string;
}

function defaults(): Form {
  let tz = "UTC";
  try {
    tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    // keep UTC
  }
  return {
    name: "",
    region_id: "",
    caller_id: "",
    agent: "echo",
    prompt_key: "",
    external_url: "",
    weight: "1",
    max_concurrency: "10",
    time_zone: tz,
    start: "09:00",
    end: "21:00",
    days: [1, 2, 3, 4, 5],
    max_attempts: "3",
    backoff_seconds: "600",
    backoff_multiplier: "2",
    retry_on: ["no_answer", "busy"],
    mode: "predictive",
    fixed_ratio: "1.5",
    abandon_target_pct: "3",
    max_cps: "0",
    regime: "fcc",
    min_ring_seconds: "15",
  };
}

function fromSpec(s: CampaignSpec): Form {
  const d = defaults();
  return {
    name: s.name,
    region_id: s.region_id,
    caller_id: s.caller_id,
    agent: s.agent?.kind ?? "echo",
    prompt_key: s.agent?.prompt_key ?? "",
    external_url: s.agent?.external_url ?? "",
    weight: String(s.weight || 1),
    max_concurrency: String(s.max_concurrency || 10),
    time_zone: s.window?.time_zone || d.time_zone,
    start: s.window?.start || d.start,
    end: s.window?.end || d.end,
    days: s.window?.days ?? [],
    max_attempts: String(s.retry?.max_attempts || 1),
    backoff_seconds: String(s.retry?.backoff_seconds ?? 0),
    backoff_multiplier: String(s.retry?.backoff_multiplier || 1),
    retry_on: s.retry?.retry_on ?? [],
    mode: s.pacing?.mode ?? "predictive",
    fixed_ratio: String(s.pacing?.fixed_ratio || 1.5),
    abandon_target_pct: String(((s.pacing?.abandon_target || 0.03) * 100).toFixed(2).replace(/\.?0+$/, "")),
    max_cps: String(s.pacing?.max_calls_per_second ?? 0),
    regime: s.compliance?.regime ?? "fcc",
    min_ring_seconds: String(s.compliance?.min_ring_seconds || 15),
  };
}

function toSpec(f: Form): CampaignSpec {
  const num = (v: string) => (v.trim() === "" ? 0 : Number(v));
  return {
    name: f.name.trim(),
    region_id: f.region_id,
    caller_id: f.caller_id.trim(),
    agent: {
      kind: f.agent,
      prompt_key: f.agent === "prompt" ? f.prompt_key.trim() : null,
      external_url: f.agent === "external" ? f.external_url.trim() : null,
      params: {},
    },
    weight: num(f.weight),
    max_concurrency: num(f.max_concurrency),
    window: { time_zone: f.time_zone.trim(), start: f.start, end: f.end, days: f.days },
    retry: {
      max_attempts: num(f.max_attempts),
      backoff_seconds: num(f.backoff_seconds),
      backoff_multiplier: num(f.backoff_multiplier),
      retry_on: f.retry_on,
    },
    pacing: {
      mode: f.mode,
      fixed_ratio: f.mode === "fixed_ratio" ? num(f.fixed_ratio) : 0,
      abandon_target: num(f.abandon_target_pct) / 100,
      max_calls_per_second: num(f.max_cps),
    },
    compliance: { regime: f.regime, min_ring_seconds: num(f.min_ring_seconds) },
  };
}

export function CampaignFormPage({ id }: { id?: string }) {
  const role = useRole();
  const existing = useResource<Campaign>("Load the campaign", id ? `/campaigns/${encodeURIComponent(id)}` : null);
  const regions = useResource<{ regions: Region[] }>("Load the regions", "/regions");
  const [form, setForm] = useState<Form | null>(id ? null : defaults());
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    if (existing.data && !form) setForm(fromSpec(existing.data.spec));
  }, [existing.data, form]);
  useEffect(() => {
    if (form && !form.region_id && regions.data?.regions.length) {
      setForm({ ...form, region_id: regions.data.regions[0].id });
    }
  }, [form, regions.data]);

  if (!can.operate(role)) {
    return (
      <>
        <PageHeader title={id ? "Edit campaign" : "New campaign"} />
        <Empty title="Operators and admins only">Viewers can look at campaigns but not change them.</Empty>
      </>
    );
  }
  if (existing.error) return <ErrorBox error={existing.error} onRetry={existing.reload} />;
  if (!form) return <Loading what="Loading the campaign" />;

  const set = <K extends keyof Form>(k: K, v: Form[K]) => setForm({ ...form, [k]: v });
  // An external agent receives every call's audio: only admins choose where it goes
  // (voxbridge refuses an operator's new or changed URL). Operators keep the URL a
  // campaign already has.
  const savedExternal = existing.data?.spec.agent?.kind === "external" ? (existing.data.spec.agent.external_url ?? "") : null;
  const choosesAgentUrl = can.administer(role);
  const toggle = <T,>(list: T[], v: T) => (list.includes(v) ? list.filter((x) => x !== v) : [...list, v]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const c = id
        ? await put<Campaign>("Save the campaign", `/campaigns/${encodeURIComponent(id)}`, toSpec(form))
        : await post<Campaign>("Create the campaign", "/campaigns", toSpec(form));
      navigate(`/campaigns/${c.id}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <>
      <div className="crumbs">
        <Link to="/campaigns">Campaigns</Link> / {id ? (existing.data?.spec.name ?? id) : "New"}
      </div>
      <PageHeader title={id ? "Edit campaign" : "New campaign"} />
      {regions.data && regions.data.regions.length === 0 && (
        <div className="alert alert-warn">
          There is no region yet; an admin must <Link to="/regions">add one</Link> before a campaign can be created.
        </div>
      )}
      <form className="campaign-form" onSubmit={submit} data-testid="campaign-form">
        <section className="panel">
          <h2>Basics</h2>
          <div className="grid-2">
            <Field label="Name">
              <input name="name" required value={form.name} onChange={(e) => set("name", e.target.value)} />
            </Field>
            <Field label="Region" hint="Where its calls are placed and recorded.">
              <select name="region_id" required value={form.region_id} onChange={(e) => set("region_id", e.target.value)}>
                {regions.data?.regions.map((r) => (
                  <option key={r.id} value={r.id}>
                    {r.name}
                  </option>
                ))}
              </select>
            </Field>
            <Field label="Caller id" hint="E.164, e.g. +14155550100.">
              <input
                name="caller_id"
                required
                value={form.caller_id}
                onChange={(e) => set("caller_id", e.target.value)}
                placeholder="+14155550100"
              />
            </Field>
            <Field label="Agent">
              <select name="agent" value={form.agent} onChange={(e) => set("agent", e.target.value as AgentKind)}>
                <option value="echo">Echo: plays the caller's audio back (testing)</option>
                <option value="prompt">Prompt: plays a WAV, then DTMF choices</option>
                <option value="external" disabled={!choosesAgentUrl && savedExternal === null}>
                  External: your agent server over WebSocket{!choosesAgentUrl && savedExternal === null ? " (admins only)" : ""}
                </option>
              </select>
            </Field>
            {form.agent === "prompt" && (
              <Field label="Prompt key" hint="Storage key of the WAV in the region's bucket.">
                <input required value={form.prompt_key} onChange={(e) => set("prompt_key", e.target.value)} />
              </Field>
            )}
            {form.agent === "external" && (
              <Field
                label="Agent server URL"
                hint={
                  choosesAgentUrl
                    ? "wss:// (plain ws:// only where voxbridge allows it, for local testing)"
                    : "Every call's audio goes here; only an admin can change it."
                }
              >
                <input
                  name="external_url"
                  required
                  readOnly={!choosesAgentUrl}
                  value={form.external_url}
                  onChange={(e) => set("external_url", e.target.value)}
                />
              </Field>
            )}
            <Field label="Weight" hint="Share of dialling capacity among running campaigns (1–1000).">
              <input type="number" min={1} max={1000} value={form.weight} onChange={(e) => set("weight", e.target.value)} />
            </Field>
            <Field label="Max concurrency" hint="Most live calls at once.">
              <input
                type="number"
                min={1}
                value={form.max_concurrency}
                onChange={(e) => set("max_concurrency", e.target.value)}
              />
            </Field>
          </div>
        </section>
        <section className="panel">
          <h2>Calling window</h2>
          <div className="grid-3">
            <Field label="Time zone" hint="IANA name, e.g. America/New_York.">
              <input required value={form.time_zone} onChange={(e) => set("time_zone", e.target.value)} />
            </Field>
            <Field label="From">
              <input type="time" required value={form.start} onChange={(e) => set("start", e.target.value)} />
            </Field>
            <Field label="Until">
              <input type="time" required value={form.end} onChange={(e) => set("end", e.target.value)} />
            </Field>
          </div>
          <fieldset className="inline-checks">
            <legend>Days (none ticked: every day)</legend>
            {DAYS.map((d, i) => (
              <label key={d} className="check">
                <input type="checkbox" checked={form.days.includes(i + 1)} onChange={() => set("days", toggle(form.days, i + 1))} />{" "}
                {d}
              </label>
            ))}
          </fieldset>
        </section>
        <section className="panel">
          <h2>Retries</h2>
          <div className="grid-3">
            <Field label="Attempts per number" hint="1 means no retry.">
              <input type="number" min={1} value={form.max_attempts} onChange={(e) => set("max_attempts", e.target.value)} />
            </Field>
            <Field label="Backoff (seconds)">
              <input
                type="number"
                min={0}
                value={form.backoff_seconds}
                onChange={(e) => set("backoff_seconds", e.target.value)}
              />
            </Field>
            <Field label="Backoff multiplier" hint="1 = constant.">
              <input
                type="number"
                min={1}
                step="0.1"
                value={form.backoff_multiplier}
                onChange={(e) => set("backoff_multiplier", e.target.value)}
              />
            </Field>
          </div>
          <fieldset className="inline-checks">
            <legend>Retry when the call ends</legend>
            {RETRYABLE.map((s) => (
              <label key={s} className="check">
                <input type="checkbox" checked={form.retry_on.includes(s)} onChange={() => set("retry_on", toggle(form.retry_on, s))} />{" "}
                {stateLabel(s)}
              </label>
            ))}
          </fieldset>
        </section>
        <section className="panel">
          <h2>Pacing</h2>
          <div className="grid-3">
            <Field label="Mode">
              <select value={form.mode} onChange={(e) => set("mode", e.target.value as PacingMode)}>
                <option value="predictive">Predictive: from answer rate and talk time</option>
                <option value="progressive">Progressive: one call per free slot</option>
                <option value="fixed_ratio">Fixed ratio: N calls per free slot</option>
              </select>
            </Field>
            {form.mode === "fixed_ratio" && (
              <Field label="Calls per free slot">
                <input type="number" min={1} step="0.1" value={form.fixed_ratio} onChange={(e) => set("fixed_ratio", e.target.value)} />
              </Field>
            )}
            <Field label="Abandon target (%)" hint="Highest share of answers left without an agent.">
              <input
                type="number"
                min={0}
                max={100}
                step="0.1"
                value={form.abandon_target_pct}
                onChange={(e) => set("abandon_target_pct", e.target.value)}
              />
            </Field>
            <Field label="Max calls per second" hint="0 = no cap for this campaign.">
              <input type="number" min={0} value={form.max_cps} onChange={(e) => set("max_cps", e.target.value)} />
            </Field>
          </div>
        </section>
        <section className="panel">
          <h2>Compliance</h2>
          <div className="grid-3">
            <Field
              label="Regime"
              hint="The period abandons are judged over: at most 3% of live answers per 30 days (FCC) or 24 hours (Ofcom)."
            >
              <select
                name="regime"
                data-testid="regime"
                value={form.regime}
                onChange={(e) => set("regime", e.target.value as ComplianceRegime)}
              >
                <option value="fcc">FCC / TCPA (US): 3% over 30 days</option>
                <option value="ofcom">Ofcom (UK): 3% over 24 hours</option>
              </select>
            </Field>
            <Field label="Ring at least (seconds)" hint="Unanswered calls ring this long whatever the carrier's timeout; 15–120.">
              <input
                type="number"
                name="min_ring_seconds"
                min={15}
                max={120}
                value={form.min_ring_seconds}
                onChange={(e) => set("min_ring_seconds", e.target.value)}
              />
            </Field>
          </div>
        </section>
        <ErrorBox error={error} />
        <div className="form-actions">
          <Link to={id ? `/campaigns/${id}` : "/campaigns"} className="btn">
            Cancel
          </Link>
          <button type="submit" className="btn btn-primary" disabled={busy}>
            {busy ? "Saving…" : id ? "Save campaign" : "Create campaign"}
          </button>
        </div>
      </form>
    </>
  );
}
