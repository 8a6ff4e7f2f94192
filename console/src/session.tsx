// The signed-in session: the access token, who it belongs to and when it expires. It ends
// at its expiry, on any 401 from the API, or on sign-out; the next screen says why.

import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { onSessionEnded, request, setToken } from "./api";
import type { LoginResponse, User } from "./types";

const KEY = "vox.session";

interface Stored {
  token: string;
  expiresAt: string;
  user: User;
}

export interface Session {
  user: User | null;
  expiresAt: string | null;
  /** Why the last session ended, shown on the sign-in screen. */
  endedBecause: string | null;
  signIn(email: string, password: string): Promise<void>;
  signOut(reason?: string): void;
}

const Ctx = createContext<Session | null>(null);

/** The stored session if it is still valid; whether one had expired. */
function load(): { session: Stored | null; expired: boolean } {
  let expired = false;
  try {
    const s = JSON.parse(localStorage.getItem(KEY) ?? "null") as Stored | null;
    if (s && Date.parse(s.expiresAt) > Date.now() + 5000) return { session: s, expired };
    expired = s !== null;
  } catch {
    // a damaged entry is no session
  }
  localStorage.removeItem(KEY);
  return { session: null, expired };
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [initial] = useState(load);
  const [stored, setStored] = useState<Stored | null>(() => {
    setToken(initial.session?.token ?? null);
    return initial.session;
  });
  const [endedBecause, setEndedBecause] = useState<string | null>(
    initial.expired ? "Your session expired. Sign in again." : null,
  );

  const signOut = useCallback((reason?: string) => {
    localStorage.removeItem(KEY);
    setToken(null);
    setStored(null);
    setEndedBecause(reason ?? null);
  }, []);

  const signIn = useCallback(async (email: string, password: string) => {
    const r = await request<LoginResponse>("Sign in", "POST", "/auth/login", {
      body: { email, password },
      anonymous: true,
    });
    const s: Stored = { token: r.access_token, expiresAt: r.expires_at, user: r.user };
    localStorage.setItem(KEY, JSON.stringify(s));
    setToken(s.token);
    setEndedBecause(null);
    setStored(s);
  }, []);

  // Expiry: end the session when the token does, rather than on the next failed request.
  useEffect(() => {
    if (!stored) return;
    const left = Date.parse(stored.expiresAt) - Date.now();
    const t = window.setTimeout(
      () => signOut(`Your session expired at ${new Date(stored.expiresAt).toLocaleTimeString()}. Sign in again.`),
      Math.max(0, Math.min(left, 2 ** 31 - 1)),
    );
    return () => window.clearTimeout(t);
  }, [stored, signOut]);

  useEffect(() => {
    onSessionEnded(() => signOut("Your session is no longer valid (it expired or was revoked). Sign in again."));
  }, [signOut]);

  // Another tab signed out or in.
  useEffect(() => {
    const onStorage = (e: StorageEvent) => {
      if (e.key !== KEY) return;
      const s = load().session;
      setToken(s?.token ?? null);
      setStored(s);
    };
    window.addEventListener("storage", onStorage);
    return () => window.removeEventListener("storage", onStorage);
  }, []);

  const value = useMemo<Session>(
    () => ({ user: stored?.user ?? null, expiresAt: stored?.expiresAt ?? null, endedBecause, signIn, signOut }),
    [stored, endedBecause, signIn, signOut],
  );
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useSession(): Session {
  const s = useContext(Ctx);
  if (!s) throw new Error("useSession outside SessionProvider");
  return s;
}

/** The signed-in user's role (screens render only when signed in). */
export function useRole() {
  return useSession().user?.role;
}
