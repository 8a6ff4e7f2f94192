// Live figures for the whole signed-in app: the dashboard stream (SSE read with fetch, so
// it can carry the bearer token) with a rolling history for the charts, and the dialler's
// pacing figures, polled. Kept above the screens so the charts keep their last minutes
// while the operator looks elsewhere.

import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import { ApiError, get, readEventStream } from "./api";
import type { Dashboard, DiallerStatus } from "./types";
import type { Sample } from "./ui";

export const HISTORY_MS = 10 * 60 * 1000;

export type StreamState = "connecting" | "live" | "reconnecting";

export type Dialler =
  | { state: "loading" }
  | { state: "ok"; status: DiallerStatus; at: number }
  | { state: "not_running"; message: string }
  | { state: "missing" }
  | { state: "error"; error: unknown };

export interface Live {
  dashboard: Dashboard | null;
  stream: StreamState;
  streamError: unknown;
  receivedAt: number | null;
  inProgress: Sample[];
  pending: Sample[];
  abandon: Sample[];
  dialler: Dialler;
}

const Ctx = createContext<Live | null>(null);

function push(list: Sample[], s: Sample): Sample[] {
  const from = s.t - HISTORY_MS;
  const kept = list.length && list[0].t < from ? list.filter((x) => x.t >= from) : list;
  return [...kept, s];
}

/** The share of answered calls abandoned across campaigns, weighted by answers. */
export function overallAbandonRate(d: DiallerStatus): number | null {
  const answered = d.campaigns.reduce((n, c) => n + c.calls_answered, 0);
  if (!d.campaigns.length) return null;
  if (!answered) return 0;
  return d.campaigns.reduce((n, c) => n + c.abandon_rate * c.calls_answered, 0) / answered;
}

export function LiveProvider({ children }: { children: ReactNode }) {
  const [dashboard, setDashboard] = useState<Dashboard | null>(null);
  const [stream, setStream] = useState<StreamState>("connecting");
  const [streamError, setStreamError] = useState<unknown>(null);
  const [receivedAt, setReceivedAt] = useState<number | null>(null);
  const [inProgress, setInProgress] = useState<Sample[]>([]);
  const [pending, setPending] = useState<Sample[]>([]);
  const [abandon, setAbandon] = useState<Sample[]>([]);
  const [dialler, setDialler] = useState<Dialler>({ state: "loading" });

  useEffect(() => {
    const ctl = new AbortController();
    let attempt = 0;
    let timer: number | undefined;
    const connect = async () => {
      try {
        await readEventStream("The live dashboard stream", "/dashboard/stream", ctl.signal, (event, data) => {
          if (event === "dashboard") {
            const d = JSON.parse(data) as Dashboard;
            const t = Date.now();
            attempt = 0;
            setDashboard(d);
            setStream("live");
            setStreamError(null);
            setReceivedAt(t);
            setInProgress((l) => push(l, { t, v: d.live.phone + d.live.web }));
            setPending((l) => push(l, { t, v: d.pipeline.pending }));
          } else if (event === "error") {
            let message = data;
            try {
              message = JSON.parse(data).error.message;
            } catch {
              // plain text
            }
            setStreamError(new ApiError("The live dashboard stream", 503, "stream_error", message, "Reconnecting by itself."));
          }
        });
      } catch (e) {
        if ((e as Error).name === "AbortError") return;
        setStreamError(e);
        if (e instanceof ApiError && e.status === 401) return;
      }
      if (ctl.signal.aborted) return;
      setStream("reconnecting");
      attempt++;
      timer = window.setTimeout(connect, Math.min(10_000, 500 * 2 ** Math.min(attempt, 5)));
    };
    connect();
    return () => {
      ctl.abort();
      window.clearTimeout(timer);
    };
  }, []);

  useEffect(() => {
    const ctl = new AbortController();
    let timer: number | undefined;
    const poll = async () => {
      let next = 5000;
      try {
        const status = await get<DiallerStatus>("Read the dialler's figures", "/dialler", ctl.signal);
        const t = Date.now();
        setDialler({ state: "ok", status, at: t });
        setAbandon((l) => push(l, { t, v: overallAbandonRate(status) }));
      } catch (e) {
        if ((e as Error).name === "AbortError") return;
        if (e instanceof ApiError && e.routeMissing) {
          setDialler({ state: "missing" });
          return; // this gateway has no dialler route: stop asking
        }
        if (e instanceof ApiError && e.status === 503) {
          setDialler({ state: "not_running", message: e.message });
          next = 15000;
        } else {
          setDialler({ state: "error", error: e });
          next = 15000;
        }
      }
      timer = window.setTimeout(poll, next);
    };
    poll();
    return () => {
      ctl.abort();
      window.clearTimeout(timer);
    };
  }, []);

  return (
    <Ctx.Provider value={{ dashboard, stream, streamError, receivedAt, inProgress, pending, abandon, dialler }}>
      {children}
    </Ctx.Provider>
  );
}

export function useLive(): Live {
  const l = useContext(Ctx);
  if (!l) throw new Error("useLive outside LiveProvider");
  return l;
}
