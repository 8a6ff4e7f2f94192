import { useState, type FormEvent } from "react";
import { ApiError } from "../api";
import { useSession } from "../session";
import { Field } from "../ui";

function signInError(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 401) return "Wrong email or password.";
    if (e.status === 429) return "Too many sign-in attempts from this address. Wait a minute, then try again.";
    if (e.status === 403) return `This account cannot sign in: ${e.message}`;
    if (e.status === 0) return "voxgate did not answer. Check that it is running (bash ops/run.sh) and reload.";
    if (e.status === 503)
      return `The control plane is unreachable (${e.message}). Check that voxbridge is running, then retry.`;
    return `Sign-in failed: ${e.message}`;
  }
  return `Sign-in failed: ${String(e)}`;
}

export function Login() {
  const { signIn, endedBecause } = useSession();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(email.trim(), password);
    } catch (err) {
      setError(signInError(err));
      setBusy(false);
    }
  };

  return (
    <div className="login-page">
      <main className="login-card">
        <div className="login-brand">
          <img src="/favicon.svg" alt="" width={40} height={40} />
          <div>
            <h1>Vox console</h1>
            <div className="page-sub">Regions, nodes, campaigns and calls</div>
          </div>
        </div>
        {endedBecause && !error && (
          <div className="alert alert-info" role="status" data-testid="session-ended">
            {endedBecause}
          </div>
        )}
        <form onSubmit={submit} aria-describedby={error ? "login-error" : undefined}>
          <Field label="Email">
            <input
              type="email"
              name="email"
              autoComplete="username"
              required
              autoFocus
              value={email}
              onChange={(e) => setEmail(e.target.value)}
            />
          </Field>
          <Field label="Password">
            <input
              type="password"
              name="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          </Field>
          {error && (
            <div className="alert alert-error" role="alert" id="login-error">
              {error}
            </div>
          )}
          <button type="submit" className="btn btn-primary btn-block" disabled={busy}>
            {busy ? "Signing in…" : "Sign in"}
          </button>
        </form>
        <p className="login-help">
          First run? <code>bash ops/run.sh</code> creates the admin <code>admin@vox.local</code> and writes its password to{" "}
          <code>vox-data/credentials.toml</code>.
        </p>
      </main>
    </div>
  );
}
