import { createContext } from "preact";
import { useCallback, useContext, useEffect, useRef, useState } from "preact/hooks";
import { isAbort } from "./api";
import type { Me } from "./types";

export interface AsyncState<T> {
  data: T | null;
  error: Error | null;
  loading: boolean;
  reload: () => void;
}

/** Run `load` when `deps` change (aborting the previous run) and keep its result. */
export function useApi<T>(load: (signal: AbortSignal) => Promise<T>, deps: readonly unknown[]): AsyncState<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
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
