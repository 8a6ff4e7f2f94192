// Regions as cards with their country's flag, and the dialog that adds one.

import { useState, type FormEvent } from "react";
import { can, post } from "../api";
import { COUNTRIES, countryName, flag } from "../format";
import { Link, navigate } from "../router";
import { useRole } from "../session";
import type { Region, VoxNode } from "../types";
import { Empty, ErrorBox, Field, Loading, Modal, PageHeader, useResource } from "../ui";

export function RegionsPage() {
  const role = useRole();
  const regions = useResource<{ regions: Region[] }>("Load the regions", "/regions");
  const nodes = useResource<{ nodes: VoxNode[] }>("Load the nodes", "/nodes", 5000);
  const [adding, setAdding] = useState(false);

  const count = (id: string) => {
    const ns = (nodes.data?.nodes ?? []).filter((n) => n.region_id === id && n.desired_state !== "disabled");
    return { online: ns.filter((n) => n.online).length, total: ns.length };
  };

  return (
    <>
      <PageHeader
        title="Regions"
        sub="A region groups servers and their object storage in one place; nodes put its id in their config."
        actions={
          can.administer(role) && (
            <button type="button" className="btn btn-primary" onClick={() => setAdding(true)}>
              Add region
            </button>
          )
        }
      />
      <ErrorBox error={regions.error} onRetry={regions.reload} />
      {!regions.data && !regions.error && <Loading what="Loading regions" />}
      {regions.data && regions.data.regions.length === 0 && (
        <Empty title="No regions yet">
          {can.administer(role)
            ? "Add a region for each place you run servers, then register its proxy and backend nodes."
            : "An admin has not added any region yet."}
        </Empty>
      )}
      <div className="card-grid">
        {regions.data?.regions.map((r) => {
          const c = count(r.id);
          return (
            <Link key={r.id} to={`/regions/${r.id}`} className="card region-card" data-testid={`region-${r.name}`}>
              <div className="region-flag" aria-hidden="true">
                {flag(r.country)}
              </div>
              <div className="region-body">
                <div className="region-name">{r.name}</div>
                <div className="muted">
                  {countryName(r.country)} ({r.country})
                </div>
                <div className="region-meta">
                  <span className={c.total && c.online < c.total ? "text-bad" : ""}>
                    {c.online}/{c.total} nodes online
                  </span>
                  <span>{r.storage ? "S3 storage set" : "no storage"}</span>
                </div>
                <code className="muted small">{r.id}</code>
              </div>
            </Link>
          );
        })}
      </div>
      {adding && <AddRegion onClose={() => setAdding(false)} />}
    </>
  );
}

function AddRegion({ onClose }: { onClose: () => void }) {
  const [name, setName] = useState("");
  const [country, setCountry] = useState("US");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await post<Region>("Create the region", "/regions", { name: name.trim(), country });
      navigate(`/regions/${r.id}?tab=storage`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal title="Add region" onClose={onClose}>
      <form onSubmit={submit}>
        <Field label="Country" hint="Where the servers are; shown as the region's flag.">
          <select value={country} onChange={(e) => setCountry(e.target.value)} name="country">
            {COUNTRIES.map((c) => (
              <option key={c.code} value={c.code}>
                {flag(c.code)} {c.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Region name" hint="An internal identifier, e.g. us-east-1. The generated region id goes in node configs.">
          <input name="name" required value={name} onChange={(e) => setName(e.target.value)} placeholder="us-east-1" />
        </Field>
        <ErrorBox error={error} />
        <div className="form-actions">
          <button type="button" className="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={busy}>
            {busy ? "Creating…" : "Create region"}
          </button>
        </div>
      </form>
    </Modal>
  );
}
