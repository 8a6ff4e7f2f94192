// Users (admins only): add, change role, reset password, disable, delete.

import { useState, type FormEvent } from "react";
import { can, del, patch, post } from "../api";
import { dateTime } from "../format";
import { useRole, useSession } from "../session";
import type { Role, User } from "../types";
import { Badge, Empty, ErrorBox, Field, Loading, Modal, PageHeader, useAction, useResource } from "../ui";

const ROLES: { id: Role; text: string }[] = [
  { id: "viewer", text: "Viewer: reads everything, changes nothing" },
  { id: "operator", text: "Operator: also runs campaigns, cancels calls, drains nodes" },
  { id: "admin", text: "Admin: also manages users, regions and node registration" },
];

export function UsersPage() {
  const role = useRole();
  const me = useSession().user;
  const users = useResource<{ users: User[] }>("Load the users", can.administer(role) ? "/users" : null);
  const [adding, setAdding] = useState(false);
  const [editing, setEditing] = useState<User | null>(null);
  const [error, act] = useAction();

  if (!can.administer(role)) {
    return (
      <>
        <PageHeader title="Users" />
        <Empty title="Admins only">Ask an admin to add users or change roles.</Empty>
      </>
    );
  }

  const update = async (u: User, body: Partial<{ role: Role; disabled: boolean }>, what: string) => {
    if (await act(() => patch<User>(what, `/users/${encodeURIComponent(u.id)}`, body))) users.reload();
  };

  return (
    <>
      <PageHeader
        title="Users"
        sub="Who can sign in to the console and what each may do."
        actions={
          <button type="button" className="btn btn-primary" onClick={() => setAdding(true)}>
            Add user
          </button>
        }
      />
      <ErrorBox error={users.error} onRetry={users.reload} />
      <ErrorBox error={error} />
      {!users.data && !users.error && <Loading what="Loading users" />}
      {users.data && (
        <div className="table-wrap">
          <table className="table" data-testid="users-table">
            <thead>
              <tr>
                <th>Email</th>
                <th>Role</th>
                <th>Status</th>
                <th>Created</th>
                <th>
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {users.data.users.map((u) => (
                <tr key={u.id}>
                  <td>
                    {u.email} {u.id === me?.id && <span className="muted small">(you)</span>}
                  </td>
                  <td>
                    <select
                      aria-label={`Role of ${u.email}`}
                      value={u.role}
                      onChange={(e) => update(u, { role: e.target.value as Role }, `Change ${u.email}'s role`)}
                    >
                      {ROLES.map((r) => (
                        <option key={r.id} value={r.id}>
                          {r.id}
                        </option>
                      ))}
                    </select>
                  </td>
                  <td>{u.disabled ? <Badge tone="muted">disabled</Badge> : <Badge tone="ok">active</Badge>}</td>
                  <td className="nowrap">{dateTime(u.created_at)}</td>
                  <td className="row-actions">
                    <button
                      type="button"
                      className="btn btn-small"
                      onClick={() =>
                        update(u, { disabled: !u.disabled }, `${u.disabled ? "Enable" : "Disable"} ${u.email}`)
                      }
                    >
                      {u.disabled ? "Enable" : "Disable"}
                    </button>
                    <button type="button" className="btn btn-small" onClick={() => setEditing(u)}>
                      Password / delete…
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {adding && (
        <AddUser
          onClose={() => setAdding(false)}
          onDone={() => {
            setAdding(false);
            users.reload();
          }}
        />
      )}
      {editing && (
        <EditUser
          user={editing}
          onClose={() => setEditing(null)}
          onDone={() => {
            setEditing(null);
            users.reload();
          }}
        />
      )}
    </>
  );
}

function AddUser({ onClose, onDone }: { onClose: () => void; onDone: () => void }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await post<User>("Add the user", "/users", { email: email.trim(), password, role });
      onDone();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal title="Add user" onClose={onClose}>
      <form onSubmit={submit}>
        <Field label="Email">
          <input name="email" type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </Field>
        <Field label="Password" hint="At least 12 characters. Hand it over out of band.">
          <input
            name="password"
            type="password"
            autoComplete="new-password"
            minLength={12}
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </Field>
        <fieldset className="radios">
          <legend>Role</legend>
          {ROLES.map((r) => (
            <label key={r.id} className="check">
              <input type="radio" name="role" value={r.id} checked={role === r.id} onChange={() => setRole(r.id)} /> {r.text}
            </label>
          ))}
        </fieldset>
        <ErrorBox error={error} />
        <div className="form-actions">
          <button type="button" className="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={busy}>
            Add user
          </button>
        </div>
      </form>
    </Modal>
  );
}

function EditUser({ user, onClose, onDone }: { user: User; onClose: () => void; onDone: () => void }) {
  const [password, setPassword] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const setPw = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await patch<User>(`Set ${user.email}'s password`, `/users/${encodeURIComponent(user.id)}`, { password });
      onDone();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  const remove = async () => {
    setBusy(true);
    setError(null);
    try {
      await del(`Delete ${user.email}`, `/users/${encodeURIComponent(user.id)}`);
      onDone();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <Modal title={user.email} onClose={onClose}>
      <form onSubmit={setPw}>
        <Field label="New password" hint="At least 12 characters.">
          <input
            type="password"
            autoComplete="new-password"
            minLength={12}
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </Field>
        <ErrorBox error={error} />
        <div className="form-actions">
          <button type="button" className="btn btn-danger" onClick={remove} disabled={busy}>
            Delete user
          </button>
          <button type="submit" className="btn btn-primary" disabled={busy}>
            Set password
          </button>
        </div>
      </form>
    </Modal>
  );
}
