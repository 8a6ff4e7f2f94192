// Shared building blocks: data loading with polling, errors that say what to do, empty
// states, dialogs with keyboard handling, copy buttons, badges and sparklines.

import { useCallback, useEffect, useId, useRef, useState, type ReactNode } from "react";
import { ApiError, get } from "./api";

/**
 * An action a button runs (a change through the API): `run` clears the last failure, runs
 * it and keeps its failure to show with `<ErrorBox error={error} />`; it resolves to
 * whether the action succeeded.
 */
export function useAction(): [unknown, (action: () => Promise<unknown>) => Promise<boolean>] {
  const [error, setError] = useState<unknown>(null);
  const run = useCallback(async (action: () => Promise<unknown>) => {
    setError(null);
    try {
      await action();
      return true;
    } catch (e) {
      setError(e);
      return false;
    }
  }, []);
  return [error, run];
}

export interface Resource<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/**
 * GETs `path` (null: nothing to load yet), again every `pollMs` when given. A failed poll
 * keeps the last data and shows the error beside it.
 */
export function useResource<T>(what: string, path: string | null, pollMs?: number): Resource<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(path !== null);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);

  useEffect(() => {
    setData(undefined);
    setError(null);
  }, [path]);

  useEffect(() => {
    if (path === null) return;
    const ctl = new AbortController();
    let timer: number | undefined;
    let stopped = false;
    const run = async () => {
      setLoading(true);
      try {
        const v = await get<T>(what, path, ctl.signal);
        if (stopped) return;
        setData(v);
        setError(null);
      } catch (e) {
        if (stopped || (e as Error).name === "AbortError") return;
        setError(e);
      } finally {
        if (!stopped) setLoading(false);
      }
      if (pollMs && !stopped) timer = window.setTimeout(run, pollMs);
    };
    run();
    return () => {
      stopped = true;
      ctl.abort();
      window.clearTimeout(timer);
    };
  }, [what, path, pollMs, tick]);

  return { data, error, loading, reload };
}

/** Re-renders every `ms`, for "12 s ago" figures. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = window.setInterval(() => setNow(Date.now()), ms);
    return () => window.clearInterval(t);
  }, [ms]);
  return now;
}

export function errorText(e: unknown): { title: string; detail: string; hint: string } {
  if (e instanceof ApiError) {
    return { title: `${e.what} failed`, detail: e.message, hint: e.hint };
  }
  return { title: "Something went wrong", detail: String((e as Error)?.message ?? e), hint: "Reload the page and retry." };
}

export function ErrorBox({ error, onRetry, compact }: { error: unknown; onRetry?: () => void; compact?: boolean }) {
  if (!error) return null;
  const t = errorText(error);
  return (
    <div className={`alert alert-error${compact ? " compact" : ""}`} role="alert">
      <div>
        <strong>{t.title}:</strong> {t.detail}
        {t.hint && <div className="hint">{t.hint}</div>}
      </div>
      {onRetry && (
        <button type="button" className="btn btn-small" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <div className="empty-title">{title}</div>
      {children && <div className="empty-body">{children}</div>}
    </div>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <div className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> {what}…
    </div>
  );
}

export function PageHeader({ title, sub, actions }: { title: ReactNode; sub?: ReactNode; actions?: ReactNode }) {
  return (
    <div className="page-header">
      <div>
        <h1>{title}</h1>
        {sub && <div className="page-sub">{sub}</div>}
      </div>
      {actions && <div className="page-actions">{actions}</div>}
    </div>
  );
}

export function Badge({ tone = "muted", children, title }: { tone?: string; children: ReactNode; title?: string }) {
  return (
    <span className={`badge badge-${tone}`} title={title}>
      {children}
    </span>
  );
}

/** A dialog: labelled, focus moves in and stays in, Escape closes, focus returns after. */
export function Modal({
  title,
  onClose,
  children,
  wide,
}: {
  title: string;
  onClose: () => void;
  children: ReactNode;
  wide?: boolean;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const id = useId();
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    const el = ref.current;
    const first = el?.querySelector<HTMLElement>("[autofocus], input, select, textarea, button:not(.modal-x)");
    (first ?? el)?.focus();
    return () => before?.focus?.();
  }, []);
  const onKey = (e: React.KeyboardEvent) => {
    if (e.key === "Escape") {
      e.stopPropagation();
      onClose();
    }
    if (e.key === "Tab" && ref.current) {
      const f = [...ref.current.querySelectorAll<HTMLElement>("a[href], button, input, select, textarea, [tabindex]")].filter(
        (x) => !x.hasAttribute("disabled") && x.tabIndex >= 0,
      );
      if (!f.length) return;
      const i = f.indexOf(document.activeElement as HTMLElement);
      if (e.shiftKey && i <= 0) {
        e.preventDefault();
        f[f.length - 1].focus();
      } else if (!e.shiftKey && i === f.length - 1) {
        e.preventDefault();
        f[0].focus();
      }
    }
  };
  return (
    <div className="modal-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div
        className={`modal${wide ? " modal-wide" : ""}`}
        role="dialog"
        aria-modal="true"
        aria-labelledby={id}
        ref={ref}
        tabIndex={-1}
        onKeyDown={onKey}
      >
        <div className="modal-head">
          <h2 id={id}>{title}</h2>
          <button type="button" className="modal-x" aria-label="Close" onClick={onClose}>
            ×
          </button>
        </div>
        {children}
      </div>
    </div>
  );
}

async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall back below
  }
  // Plain-HTTP pages on another host have no clipboard API.
  const ta = document.createElement("textarea");
  ta.value = text;
  ta.setAttribute("readonly", "");
  ta.style.position = "fixed";
  ta.style.opacity = "0";
  document.body.appendChild(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

export function CopyButton({ text, label = "Copy", name }: { text: string; label?: string; name?: string }) {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  useEffect(() => {
    if (state === "idle") return;
    const t = window.setTimeout(() => setState("idle"), 2000);
    return () => window.clearTimeout(t);
  }, [state]);
  return (
    <button
      type="button"
      className="btn btn-small"
      onClick={async () => setState((await copyText(text)) ? "copied" : "failed")}
      aria-label={name && state === "idle" ? name : undefined}
      aria-live="polite"
    >
      {state === "copied" ? "Copied ✓" : state === "failed" ? "Select and copy by hand" : label}
    </button>
  );
}

/** A value with a copy button; `secret` values are selectable monospace. */
export function CopyField({ value, label, testId }: { value: string; label: string; testId?: string }) {
  return (
    <div className="copy-field">
      <code data-testid={testId} aria-label={label}>
        {value}
      </code>
      <CopyButton text={value} name={`Copy ${label.toLowerCase()}`} />
    </div>
  );
}

export interface Sample {
  t: number;
  v: number | null;
}

/** A hand-drawn line chart of the last `windowMs`, newest on the right. */
export function Sparkline({
  label,
  samples,
  windowMs,
  now,
  format = (v) => String(Math.round(v)),
  unavailable,
  tone = "blue",
}: {
  label: string;
  samples: Sample[];
  windowMs: number;
  now: number;
  format?: (v: number) => string;
  unavailable?: string;
  tone?: string;
}) {
  const W = 300;
  const H = 64;
  const from = now - windowMs;
  const pts = samples.filter((s) => s.t >= from && s.v !== null) as { t: number; v: number }[];
  const max = Math.max(1, ...pts.map((p) => p.v));
  const x = (t: number) => ((t - from) / windowMs) * W;
  const y = (v: number) => H - 4 - (v / max) * (H - 10);
  const line = pts.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
  const last = pts.length ? pts[pts.length - 1].v : null;
  const minutes = Math.round(windowMs / 60000);
  return (
    <figure className={`spark spark-${tone}`}>
      <figcaption>
        <span>{label}</span>
        <strong>{unavailable ? "—" : last !== null ? format(last) : samples.length ? "—" : "…"}</strong>
      </figcaption>
      {unavailable ? (
        <div className="spark-none">{unavailable}</div>
      ) : (
        <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={`${label}, last ${minutes} minutes`}>
          <line x1="0" x2={W} y1={H - 4} y2={H - 4} className="spark-axis" />
          {pts.length > 1 && (
            <>
              <polygon
                className="spark-area"
                points={`${x(pts[0].t).toFixed(1)},${H - 4} ${line} ${x(pts[pts.length - 1].t).toFixed(1)},${H - 4}`}
              />
              <polyline className="spark-line" points={line} />
            </>
          )}
        </svg>
      )}
      <div className="spark-scale">
        <span>−{minutes} min</span>
        <span>max {unavailable ? "—" : format(max)}</span>
        <span>now</span>
      </div>
    </figure>
  );
}

export function Tabs<T extends string>({
  tabs,
  value,
  onChange,
}: {
  tabs: { id: T; label: string }[];
  value: T;
  onChange: (t: T) => void;
}) {
  const onKey = (e: React.KeyboardEvent, i: number) => {
    if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
    const n = (i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length;
    onChange(tabs[n].id);
    (e.currentTarget.parentElement?.children[n] as HTMLElement | undefined)?.focus();
  };
  return (
    <div className="tabs" role="tablist">
      {tabs.map((t, i) => (
        <button
          key={t.id}
          type="button"
          role="tab"
          aria-selected={t.id === value}
          tabIndex={t.id === value ? 0 : -1}
          className={t.id === value ? "tab active" : "tab"}
          onClick={() => onChange(t.id)}
          onKeyDown={(e) => onKey(e, i)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

/** A form field: the label wraps the control, with an optional hint below. */
export function Field({ label, hint, children }: { label: string; hint?: ReactNode; children: ReactNode }) {
  return (
    <label className="field">
      <span className="field-label">{label}</span>
      {children}
      {hint && <span className="field-hint">{hint}</span>}
    </label>
  );
}
