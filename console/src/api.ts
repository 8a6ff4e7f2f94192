// The console's only way out: JSON over voxgate's REST API under /api/v1, with the
// signed-in user's bearer token. Every failure becomes an ApiError that says what failed
// and what to do about it.

import type { Role } from "./types";

export const API = "/api/v1";

/** A failed request, worded for a person: `what` failed because `message`; `hint` says what to do. */
export class ApiError extends Error {
  constructor(
    readonly what: string,
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }

  /** The route itself is not there (a gateway older than this console). */
  get routeMissing(): boolean {
    return (this.status === 404 && this.message.startsWith("no route")) || this.status === 501;
  }
}

let token: string | null = null;
let onUnauthenticated: (() => void) | null = null;

export function setToken(t: string | null) {
  token = t;
}

/** Called when the API answers 401 to a signed-in request: the session is over. */
export function onSessionEnded(f: () => void) {
  onUnauthenticated = f;
}

function hintFor(status: number, code: string): string {
  switch (status) {
    case 0:
      return "Check that voxgate is running and reachable from this browser, then retry.";
    case 400:
      return "Correct the field named above and try again.";
    case 401:
      return "Sign in again.";
    case 403:
      return "Your role does not allow this; ask an admin.";
    case 404:
      return "It may have been deleted; go back to the list and refresh.";
    case 409:
      return "Choose another name.";
    case 412:
      return "Refresh to see its current state, then try again.";
    case 413:
      return "Send a smaller file.";
    case 429:
      return "Too many requests from this address; wait a few seconds and retry.";
    case 503:
      return code === "unavailable"
        ? "The control plane (voxbridge) is unreachable or busy; retry in a moment, and check its log if it persists."
        : "The service is unavailable; retry in a moment.";
    default:
      return status >= 500 ? "Retry; if it keeps failing, check the voxgate and voxbridge logs." : "";
  }
}

export interface RequestOptions {
  body?: unknown;
  /** Send the body as-is with this content type instead of JSON. */
  raw?: { body: string; contentType: string };
  signal?: AbortSignal;
  /** Do not treat 401 as the end of the session (sign-in itself). */
  anonymous?: boolean;
}

export async function request<T>(what: string, method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (token && !opts.anonymous) headers.Authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (opts.raw) {
    headers["Content-Type"] = opts.raw.contentType;
    body = opts.raw.body;
  } else if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  let res: Response;
  try {
    res = await fetch(API + path, { method, headers, body, signal: opts.signal });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(what, 0, "network", "voxgate did not answer (network error)", hintFor(0, ""));
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: handled below
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    const code = err?.code ?? `http_${res.status}`;
    const message = err?.message ?? (text.trim().slice(0, 200) || `HTTP ${res.status} ${res.statusText}`);
    if (res.status === 401 && !opts.anonymous && onUnauthenticated) onUnauthenticated();
    throw new ApiError(what, res.status, code, message, hintFor(res.status, code));
  }
  if (json === undefined) {
    throw new ApiError(what, res.status, "bad_response", "voxgate answered with something that is not JSON", hintFor(500, ""));
  }
  return json as T;
}

export const get = <T>(what: string, path: string, signal?: AbortSignal) => request<T>(what, "GET", path, { signal });
export const post = <T>(what: string, path: string, body?: unknown) => request<T>(what, "POST", path, { body });
export const put = <T>(what: string, path: string, body?: unknown) => request<T>(what, "PUT", path, { body });
export const patch = <T>(what: string, path: string, body?: unknown) => request<T>(what, "PATCH", path, { body });
export const del = (what: string, path: string) => request<void>(what, "DELETE", path);

/** A file the API sends (a CSV report): its text and the name it suggests. */
export async function download(what: string, path: string): Promise<{ text: string; filename: string }> {
  const headers: Record<string, string> = { Accept: "text/csv, application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(API + path, { headers });
  } catch {
    throw new ApiError(what, 0, "network", "voxgate did not answer (network error)", hintFor(0, ""));
  }
  const text = await res.text();
  if (!res.ok) {
    let err: { code?: string; message?: string } | undefined;
    try {
      err = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
    } catch {
      // not JSON
    }
    if (res.status === 401 && onUnauthenticated) onUnauthenticated();
    const code = err?.code ?? `http_${res.status}`;
    throw new ApiError(what, res.status, code, err?.message ?? `HTTP ${res.status}`, hintFor(res.status, code));
  }
  const named = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") ?? "");
  return { text, filename: named?.[1] ?? "download.csv" };
}

export function qs(params: Record<string, string | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : "";
}

/** What each role may do, mirroring voxbridge's checks so the UI hides what would be refused. */
export const can = {
  operate: (r: Role | undefined) => r === "admin" || r === "operator",
  administer: (r: Role | undefined) => r === "admin",
};

/**
 * Reads a Server-Sent Events stream with fetch (EventSource cannot send Authorization),
 * calling `onEvent` per event until the stream ends, fails or `signal` aborts.
 */
export async function readEventStream(
  what: string,
  path: string,
  signal: AbortSignal,
  onEvent: (event: string, data: string) => void,
): Promise<void> {
  const headers: Record<string, string> = { Accept: "text/event-stream" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(API + path, { headers, signal });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(what, 0, "network", "voxgate did not answer (network error)", hintFor(0, ""));
  }
  if (!res.ok || !res.body) {
    const text = await res.text().catch(() => "");
    let message = `HTTP ${res.status}`;
    let code = `http_${res.status}`;
    try {
      const e = JSON.parse(text).error;
      message = e.message ?? message;
      code = e.code ?? code;
    } catch {
      // keep the status line
    }
    if (res.status === 401 && onUnauthenticated) onUnauthenticated();
    throw new ApiError(what, res.status, code, message, hintFor(res.status, code));
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let cut: number;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = val;
        else if (field === "data") data.push(val);
      }
      if (data.length) onEvent(event, data.join("\n"));
    }
  }
}
