import { createContext } from "preact";
import { useCallback, useContext, useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { isAbort } from "./api";
import { getZoneMode, onZoneModeChange, type ZoneMode } from "./lib/format";
import type { Me } from "./types";

export interface AsyncState<T> {
  data: T | null;
  error: Error | null;
  loading: boolean;
  reload: () => void;
}

/** Run `load` when `deps` change (aborting the previous run) and keep its result.
 *  The request leaves in the commit of the render that asked for it (a layout effect): a plain
 *  effect would wait for the next frame, which on a first load is tens of milliseconds. */
export function useApi<T>(load: (signal: AbortSignal) => Promise<T>, deps: readonly unknown[]): AsyncState<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useLayoutEffect(() => {
    const ctl = new AbortController();
    setLoading(true);
    setError(null);
    loadRef.current(ctl.signal).then(
      (value) => {
        if (ctl.signal.aborted) return;
        setData(value);
        setLoading(false);
      },
      (err: unknown) => {
        if (ctl.signal.aborted || isAbort(err)) return;
        setError(err instanceof Error ? err : new Error(String(err)));
        setLoading(false);
      },
    );
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload };
}

export interface Session {
  me: Me;
  setMe: (me: Me | null) => void;
}

export const MeContext = createContext<Session | null>(null);

export function useMe(): Session {
  const ctx = useContext(MeContext);
  if (!ctx) throw new Error("useMe() outside <MeContext.Provider>");
  return ctx;
}

export function canManage(me: Me): boolean {
  return me.role === "owner" || me.role === "admin";
}

/** Members may create ingest keys (onboarding) and revoke their own; viewers only read. */
export function canCreateKeys(me: Me): boolean {
  return canManage(me) || me.role === "member";
}

/** Set document.title for the page. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Kilometers` : "Kilometers";
  }, [title]);
}

/** The time zone mode (local or UTC), re-rendering the caller when it is switched. */
export function useZoneMode(): ZoneMode {
  const [mode, setMode] = useState<ZoneMode>(getZoneMode);
  useEffect(() => onZoneModeChange(() => setMode(getZoneMode())), []);
  return mode;
}

/** Whether the tab is visible (document.visibilityState), re-rendering the caller on change. */
export function useTabVisible(): boolean {
  const [visible, setVisible] = useState(() => document.visibilityState !== "hidden");
  useEffect(() => {
    const update = () => setVisible(document.visibilityState !== "hidden");
    document.addEventListener("visibilitychange", update);
    return () => document.removeEventListener("visibilitychange", update);
  }, []);
  return visible;
}

export const AUTO_REFRESH_MS = 30_000;

/**
 * Calls `refresh` every `ms` while the tab is visible, and once at once when it becomes visible
 * again after the interval has passed unseen: a hidden tab asks the server for nothing.
 */
export function useAutoRefresh(refresh: () => void, ms: number = AUTO_REFRESH_MS): void {
  const visible = useTabVisible();
  const ref = useRef(refresh);
  ref.current = refresh;
  const last = useRef(Date.now());
  useEffect(() => {
    if (!visible) return;
    const tick = () => {
      // the timer may fire before the effect of a visibilitychange has run and cleared it
      if (document.visibilityState === "hidden") return;
      last.current = Date.now();
      ref.current();
    };
    if (Date.now() - last.current >= ms) tick();
    const timer = window.setInterval(tick, ms);
    return () => window.clearInterval(timer);
  }, [visible, ms]);
}
