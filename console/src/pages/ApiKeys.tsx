// API keys (admins only): credentials for integrations (a CRM, a contact-centre's own
// system), each with a role and optionally one campaign. The secret is shown once.

import { useState, type FormEvent } from "react";
import { can, post } from "../api";
import { dateTime } from "../format";
import { Link } from "../router";
import { useRole } from "../session";
import type { ApiKey, Campaign, CreatedApiKey, Role } from "../types";
import { Badge, CopyField, Empty, ErrorBox, Field, Loading, Modal, PageHeader, useAction, useResource } from "../ui";

const ROLES: { id: Role; text: string }[] = [
  { id: "viewer", text: "Viewer: reads campaigns and calls" },
  { id: "operator", text: "Operator: also cancels calls and runs campaigns" },
  { id: "admin", text: "Admin: everything (avoid for integrations)" },
];

export function ApiKeysPage() {
  const role = useRole();
  const keys = useResource<{ keys: ApiKey[] }>("Load the API keys", can.administer(role) ? "/api-keys" : null);
  const [adding, setAdding] = useState(false);
  const [created, setCreated] = useState<CreatedApiKey | null>(null);
  const [error, act] = useAction();

  if (!can.administer(role)) {
    return (
      <>
        <PageHeader title="API keys" />
        <Empty title="Admins only">Ask an admin for a key for your integration.</Empty>
      </>
    );
  }

  const revoke = async (k: ApiKey) => {
    if (!window.confirm(`Revoke "${k.name}"? Integrations using it are refused from their next request.`)) return;
    if (await act(() => post<ApiKey>(`Revoke ${k.name}`, `/api-keys/${encodeURIComponent(k.id)}/revoke`, {}))) {
      keys.reload();
    }
  };

  return (
    <>
      <PageHeader
        title="API keys"
        sub="Credentials for integrations, sent as Authorization: Bearer <secret>. A key limited to a campaign sees nothing else."
        actions={
          <button type="button" className="btn btn-primary" onClick={() => setAdding(true)}>
            Create key
          </button>
        }
      />
      <ErrorBox error={keys.error} onRetry={keys.reload} />
      <ErrorBox error={error} />
      {!keys.data && !keys.error && <Loading what="Loading API keys" />}
      {keys.data && keys.data.keys.length === 0 && <Empty title="No API keys yet">Create one for each integration.</Empty>}
      {keys.data && keys.data.keys.length > 0 && (
        <div className="table-wrap">
          <table className="table" data-testid="api-keys-table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Role</th>
                <th>Campaign</th>
                <th>Status</th>
                <th>Last used</th>
                <th>Created</th>
                <th>
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {keys.data.keys.map((k) => (
                <tr key={k.id}>
                  <td>
                    {k.name} <span className="muted small mono">{k.id}</span>
                  </td>
                  <td>{k.role}</td>
                  <td>{k.campaign_id ? <Link to={`/campaigns/${encodeURIComponent(k.campaign_id)}`}>{k.campaign_id}</Link> : <span className="muted">every campaign</span>}</td>
                  <td>{k.revoked_at ? <Badge tone="muted" title={`revoked ${dateTime(k.revoked_at)}`}>revoked</Badge> : <Badge tone="ok">active</Badge>}</td>
                  <td className="nowrap">{k.last_used_at ? dateTime(k.last_used_at) : <span className="muted">never</span>}</td>
                  <td className="nowrap">
                    {dateTime(k.created_at)}
                    <div className="muted small">by {k.created_by.replace(/^user:/, "")}</div>
                  </td>
                  <td className="row-actions">
                    {!k.revoked_at && (
                      <button type="button" className="btn btn-small btn-danger" onClick={() => revoke(k)}>
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {adding && (
        <CreateKey
          onClose={() => setAdding(false)}
          onDone={(c) => {
            setAdding(false);
            setCreated(c);
            keys.reload();
          }}
        />
      )}
      {created && (
        <Modal title={`Key "${created.key.name}" created`} onClose={() => setCreated(null)}>
          <p>Copy the secret now: it is shown this once, and Vox keeps only its hash.</p>
          <CopyField value={created.secret} label="Secret" testId="api-key-secret" />
          <div className="form-actions">
            <button type="button" className="btn btn-primary" onClick={() => setCreated(null)}>
              Done
            </button>
          </div>
        </Modal>
      )}
    </>
  );
}

function CreateKey({ onClose, onDone }: { onClose: () => void; onDone: (c: CreatedApiKey) => void }) {
  const campaigns = useResource<{ campaigns: Campaign[] }>("Load the campaigns", "/campaigns");
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const [campaign, setCampaign] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = { name: name.trim(), role, campaign_id: campaign || null };
      onDone(await post<CreatedApiKey>("Create the key", "/api-keys", body));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal title="Create API key" onClose={onClose}>
      <form onSubmit={submit}>
        <Field label="Name" hint="What the key is for, e.g. HubSpot sync.">
          <input name="name" required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
        </Field>
        <fieldset className="radios">
          <legend>Role</legend>
          {ROLES.map((r) => (
            <label key={r.id} className="check">
              <input type="radio" name="role" value={r.id} checked={role === r.id} onChange={() => setRole(r.id)} /> {r.text}
            </label>
          ))}
        </fieldset>
        <Field label="Campaign" hint="Limit the key to one campaign: it then sees and acts on nothing else.">
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
            Create key
          </button>
        </div>
      </form>
    </Modal>
  );
}
