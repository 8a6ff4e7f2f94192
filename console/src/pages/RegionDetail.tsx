// One region: its nodes (add proxy / backend), its S3 storage (the secret key is
// write-only) and its settings.

import { useEffect, useState, type FormEvent } from "react";
import { ApiError, can, del, patch, post, put } from "../api";
import { COUNTRIES, countryName, flag } from "../format";
import { NodeTable, RegisterNodeDialog, SecretDialog } from "../nodes";
import { Link, navigate, useLocation } from "../router";
import { useRole } from "../session";
import type { NodeKind, NodeWithSecret, Region, VoxNode } from "../types";
import { CopyButton, Empty, ErrorBox, Field, Loading, Modal, PageHeader, Tabs, useNow, useResource } from "../ui";

type Tab = "nodes" | "storage" | "settings";

export function RegionDetailPage({ id }: { id: string }) {
  const { query } = useLocation();
  const role = useRole();
  const tab = (["nodes", "storage", "settings"].includes(query.get("tab") ?? "") ? query.get("tab") : "nodes") as Tab;
  const region = useResource<Region>("Load the region", `/regions/${encodeURIComponent(id)}`);
  const setTab = (t: Tab) => navigate(`/regions/${encodeURIComponent(id)}?tab=${t}`, { replace: true });

  if (region.error && !region.data) {
    return (
      <>
        <PageHeader title="Region" />
        <ErrorBox error={region.error} onRetry={region.reload} />
        <Link to="/regions">Back to regions</Link>
      </>
    );
  }
  if (!region.data) return <Loading what="Loading the region" />;
  const r = region.data;
  const tabs: { id: Tab; label: string }[] = [
    { id: "nodes", label: "Nodes" },
    { id: "storage", label: "S3 storage" },
  ];
  if (can.administer(role)) tabs.push({ id: "settings", label: "Settings" });
  return (
    <>
      <div className="crumbs">
        <Link to="/regions">Regions</Link> / {r.name}
      </div>
      <PageHeader
        title={
          <>
            <span aria-hidden="true">{flag(r.country)}</span> {r.name}
          </>
        }
        sub={
          <>
            {countryName(r.country)} · region id <code data-testid="region-id">{r.id}</code> <CopyButton text={r.id} label="Copy id" />
          </>
        }
      />
      <Tabs tabs={tabs} value={tab} onChange={setTab} />
      <div className="tab-panel" role="tabpanel">
        {tab === "nodes" && <RegionNodes region={r} />}
        {tab === "storage" && <StorageTab region={r} onSaved={region.reload} />}
        {tab === "settings" && <RegionSettings region={r} onSaved={region.reload} />}
      </div>
    </>
  );
}

function RegionNodes({ region }: { region: Region }) {
  const role = useRole();
  const now = useNow();
  const nodes = useResource<{ nodes: VoxNode[] }>(
    "Load the region's nodes",
    `/nodes?region_id=${encodeURIComponent(region.id)}`,
    3000,
  );
  const [adding, setAdding] = useState<NodeKind | null>(null);
  const [secret, setSecret] = useState<NodeWithSecret | null>(null);
  return (
    <>
      {can.administer(role) && (
        <div className="toolbar">
          <button type="button" className="btn btn-primary" onClick={() => setAdding("gateway")}>
            Add proxy
          </button>
          <button type="button" className="btn btn-primary" onClick={() => setAdding("fleet")}>
            Add backend
          </button>
        </div>
      )}
      <ErrorBox error={nodes.error} onRetry={nodes.reload} />
      {!nodes.data && !nodes.error && <Loading what="Loading nodes" />}
      {nodes.data && nodes.data.nodes.length === 0 && (
        <Empty title="No nodes in this region">
          Proxy nodes (voxgate) take carrier traffic; backend nodes (voxcore hosts) hold the calls.
          {can.administer(role) ? " Add one of each to take calls here." : ""}
        </Empty>
      )}
      {nodes.data && nodes.data.nodes.length > 0 && <NodeTable nodes={nodes.data.nodes} now={now} showRegion={false} />}
      {adding && (
        <RegisterNodeDialog
          kind={adding}
          regionId={region.id}
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

interface StorageForm {
  endpoint_url: string;
  bucket: string;
  access_key: string;
  secret_key: string;
  use_ssl: boolean;
  signing_region: string;
  force_path_style: boolean;
}

function StorageTab({ region, onSaved }: { region: Region; onSaved: () => void }) {
  const role = useRole();
  const admin = can.administer(role);
  const s = region.storage;
  const blank = (): StorageForm => ({
    endpoint_url: s?.endpoint_url ?? "",
    bucket: s?.bucket ?? "",
    access_key: s?.access_key ?? "",
    secret_key: "",
    use_ssl: s?.use_ssl ?? false,
    signing_region: s?.signing_region ?? "",
    force_path_style: s?.force_path_style ?? true,
  });
  const [form, setForm] = useState<StorageForm>(blank);
  const [editingSecret, setEditingSecret] = useState(!s?.secret_key_set);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const [test, setTest] = useState<{ ok: boolean; text: string } | null>(null);
  const [testing, setTesting] = useState(false);
  useEffect(() => {
    setForm(blank());
    setEditingSecret(!region.storage?.secret_key_set);
  }, [region.updated_at]);

  const set = <K extends keyof StorageForm>(k: K, v: StorageForm[K]) => {
    setForm((f) => {
      const next = { ...f, [k]: v };
      // SSL and the endpoint's scheme say the same thing; keep them in step.
      if (k === "endpoint_url") {
        const url = String(v).trim().toLowerCase();
        if (url.startsWith("https://")) next.use_ssl = true;
        else if (url.startsWith("http://")) next.use_ssl = false;
      }
      if (k === "use_ssl") {
        next.endpoint_url = v
          ? f.endpoint_url.replace(/^http:\/\//i, "https://")
          : f.endpoint_url.replace(/^https:\/\//i, "http://");
      }
      return next;
    });
    setSaved(false);
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setSaved(false);
    try {
      await put<Region>("Save the storage settings", `/regions/${encodeURIComponent(region.id)}/storage`, {
        endpoint_url: form.endpoint_url.trim(),
        bucket: form.bucket.trim(),
        access_key: form.access_key.trim(),
        secret_key: editingSecret && form.secret_key ? form.secret_key : undefined,
        use_ssl: form.use_ssl,
        signing_region: form.signing_region.trim(),
        force_path_style: form.force_path_style,
      });
      setSaved(true);
      onSaved();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const runTest = async () => {
    setTesting(true);
    setTest(null);
    try {
      const r = await post<{ ok: boolean; detail: string }>(
        "Test the storage connection",
        `/regions/${encodeURIComponent(region.id)}/storage/test`,
      );
      setTest({ ok: r.ok, text: r.detail || (r.ok ? "Wrote and read back a test object." : "The test failed.") });
    } catch (err) {
      if (err instanceof ApiError && err.routeMissing) {
        setTest({
          ok: false,
          text: "This gateway cannot test storage yet (no POST /api/v1/regions/{id}/storage/test). Upgrade voxgate; the settings themselves are saved.",
        });
      } else if (err instanceof ApiError && err.code === "storage_failed") {
        setTest({ ok: false, text: `${err.message}. Check the endpoint, bucket, keys and SSL, save, then test again.` });
      } else if (err instanceof ApiError) {
        setTest({ ok: false, text: `${err.message}${err.hint ? ` ${err.hint}` : ""}` });
      } else {
        setTest({ ok: false, text: String(err) });
      }
    } finally {
      setTesting(false);
    }
  };

  return (
    <form className="panel form-narrow" onSubmit={submit} data-testid="storage-form">
      <p className="muted">
        Recordings of calls in this region go to this bucket, so audio never crosses an ocean during a live call.
      </p>
      {!s && <div className="alert alert-info">No storage is set for this region yet.</div>}
      <fieldset disabled={!admin}>
        <Field label="Endpoint URL" hint="e.g. http://rustfs:9000 or https://s3.us-east-1.amazonaws.com">
          <input
            name="endpoint_url"
            required
            value={form.endpoint_url}
            onChange={(e) => set("endpoint_url", e.target.value)}
            placeholder="http://rustfs:9000"
          />
        </Field>
        <Field label="Bucket">
          <input name="bucket" required value={form.bucket} onChange={(e) => set("bucket", e.target.value)} />
        </Field>
        <Field label="Access key">
          <input
            name="access_key"
            required
            autoComplete="off"
            value={form.access_key}
            onChange={(e) => set("access_key", e.target.value)}
          />
        </Field>
        <div className="field">
          <span className="field-label">Secret key</span>
          {editingSecret ? (
            <>
              <input
                name="secret_key"
                type="password"
                autoComplete="new-password"
                required={!s?.secret_key_set}
                value={form.secret_key}
                onChange={(e) => set("secret_key", e.target.value)}
                aria-label="Secret key"
              />
              <span className="field-hint">
                Write-only: it is encrypted at rest and never shown again.
                {s?.secret_key_set && (
                  <>
                    {" "}
                    <button type="button" className="link-btn" onClick={() => setEditingSecret(false)}>
                      Keep the stored one
                    </button>
                  </>
                )}
              </span>
            </>
          ) : (
            <div className="secret-masked">
              <span data-testid="secret-masked" aria-label="Secret key is set">
                ••••••••••••
              </span>
              <span className="muted small">set (write-only, never shown)</span>
              {admin && (
                <button type="button" className="btn btn-small" onClick={() => setEditingSecret(true)}>
                  Replace
                </button>
              )}
            </div>
          )}
        </div>
        <label className="check">
          <input type="checkbox" name="use_ssl" checked={form.use_ssl} onChange={(e) => set("use_ssl", e.target.checked)} />{" "}
          SSL: reach the endpoint over HTTPS
        </label>
        <label className="check">
          <input
            type="checkbox"
            name="force_path_style"
            checked={form.force_path_style}
            onChange={(e) => set("force_path_style", e.target.checked)}
          />{" "}
          Path-style addressing (MinIO, RustFS)
        </label>
        <Field label="Signing region" hint="SigV4 region, e.g. us-east-1; optional for MinIO and RustFS.">
          <input name="signing_region" value={form.signing_region} onChange={(e) => set("signing_region", e.target.value)} />
        </Field>
      </fieldset>
      <ErrorBox error={error} />
      {saved && (
        <div className="alert alert-ok" role="status">
          Storage settings saved.
        </div>
      )}
      {test && (
        <div className={`alert ${test.ok ? "alert-ok" : "alert-error"}`} role="status" data-testid="storage-test-result">
          <strong>{test.ok ? "Connection works." : "Connection test did not pass."}</strong> {test.text}
        </div>
      )}
      <div className="form-actions">
        {admin && (
          <button type="button" className="btn" onClick={runTest} disabled={testing || !s}>
            {testing ? "Testing…" : "Test connection"}
          </button>
        )}
        {admin && (
          <button type="submit" className="btn btn-primary" disabled={busy}>
            {busy ? "Saving…" : "Save storage"}
          </button>
        )}
      </div>
      {admin && !s && <p className="muted small">Save the settings first; the test writes and reads a small object.</p>}
      {!admin && <p className="muted small">Only admins change storage settings.</p>}
    </form>
  );
}

function RegionSettings({ region, onSaved }: { region: Region; onSaved: () => void }) {
  const [name, setName] = useState(region.name);
  const [country, setCountry] = useState(region.country);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const [deleting, setDeleting] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await patch<Region>("Save the region", `/regions/${encodeURIComponent(region.id)}`, { name: name.trim(), country });
      setSaved(true);
      onSaved();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <form className="panel form-narrow" onSubmit={submit}>
        <Field label="Region name">
          <input value={name} required onChange={(e) => setName(e.target.value)} />
        </Field>
        <Field label="Country">
          <select value={country} onChange={(e) => setCountry(e.target.value)}>
            {COUNTRIES.map((c) => (
              <option key={c.code} value={c.code}>
                {flag(c.code)} {c.name}
              </option>
            ))}
          </select>
        </Field>
        <ErrorBox error={error} />
        {saved && <div className="alert alert-ok">Saved.</div>}
        <div className="form-actions">
          <button type="button" className="btn btn-danger" onClick={() => setDeleting(true)}>
            Delete region…
          </button>
          <button type="submit" className="btn btn-primary" disabled={busy}>
            Save
          </button>
        </div>
      </form>
      {deleting && <DeleteRegion region={region} onClose={() => setDeleting(false)} />}
    </>
  );
}

function DeleteRegion({ region, onClose }: { region: Region; onClose: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const go = async () => {
    setBusy(true);
    try {
      await del("Delete the region", `/regions/${encodeURIComponent(region.id)}`);
      navigate("/regions");
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return (
    <Modal title={`Delete ${region.name}?`} onClose={onClose}>
      <p>
        The region and its storage settings are removed. voxbridge refuses while nodes or campaigns still use it: delete
        or move those first.
      </p>
      <ErrorBox error={error} />
      <div className="form-actions">
        <button type="button" className="btn" onClick={onClose}>
          Cancel
        </button>
        <button type="button" className="btn btn-danger" onClick={go} disabled={busy}>
          Delete region
        </button>
      </div>
    </Modal>
  );
}
