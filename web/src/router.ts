// Client-side routing with the History API. The server answers index.html for every
// app path (/, /overview, /live, /sessions, /sessions/<id>, /events/<id>, /search, /findings, /pins,
// /analytics, /onboarding, /settings, /login).

import { useEffect, useState } from "preact/hooks";
import { safeHref } from "./lib/dom";

export type Route =
  | { name: "overview" }
  | { name: "live" }
  | { name: "sessions" }
  | { name: "session"; id: string }
  | { name: "event"; id: string }
  | { name: "search" }
  | { name: "findings" }
  | { name: "pins" }
  | { name: "analytics" }
  | { name: "onboarding" }
  | { name: "settings" }
  | { name: "login" }
  | { name: "notfound" };

const STATIC: Record<string, Route> = {
  "/": { name: "overview" },
  "/overview": { name: "overview" },
  "/live": { name: "live" },
  "/sessions": { name: "sessions" },
  "/search": { name: "search" },
  "/findings": { name: "findings" },
  "/pins": { name: "pins" },
  "/analytics": { name: "analytics" },
  "/onboarding": { name: "onboarding" },
  "/settings": { name: "settings" },
  "/login": { name: "login" },
};

function decodeSegment(segment: string): string | null {
  try {
    const id = decodeURIComponent(segment);
    return id && !id.includes("/") ? id : null;
  } catch {
    return null;
  }
}

export function matchRoute(pathname: string): Route {
  const path = pathname.length > 1 ? pathname.replace(/\/+$/, "") : pathname;
  const fixed = STATIC[path];
  if (fixed) return fixed;
  const m = /^\/(sessions|events)\/([^/]+)$/.exec(path);
  if (m) {
    const id = decodeSegment(m[2]!);
    if (id) return m[1] === "sessions" ? { name: "session", id } : { name: "event", id };
  }
  return { name: "notfound" };
}

/** Every link target of the app; ids are percent-encoded. */
export const paths = {
  overview: "/overview",
  live: "/live",
  sessions: "/sessions",
  search: "/search",
  findings: "/findings",
  pins: "/pins",
  analytics: "/analytics",
  onboarding: "/onboarding",
  settings: "/settings",
  login: "/login",
  session: (id: string) => `/sessions/${encodeURIComponent(id)}`,
  event: (id: string) => `/events/${encodeURIComponent(id)}`,
};

const CHANGE = "km:navigate";

/** Go to an app path (same origin only), pushing a history entry unless `replace`. */
export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  const href = safeHref(to);
  if (href === "#") return;
  const current = location.pathname + location.search + location.hash;
  if (href === current && !opts.replace) return;
  if (opts.replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  if (!opts.replace && !new URL(href, location.href).hash) window.scrollTo(0, 0);
  window.dispatchEvent(new Event(CHANGE));
}

export interface Loc {
  pathname: string;
  search: string;
  /** The fragment ("#event-…" anchors a session page at an event), "" when none. */
  hash: string;
}

function currentLoc(): Loc {
  return { pathname: location.pathname, search: location.search, hash: location.hash };
}

/** The current location, re-rendering on navigate() and on back/forward. */
export function useLocation(): Loc {
  const [loc, setLoc] = useState<Loc>(currentLoc);
  useEffect(() => {
    const update = () =>
      setLoc((prev) => {
        const next = currentLoc();
        return prev.pathname === next.pathname && prev.search === next.search && prev.hash === next.hash ? prev : next;
      });
    window.addEventListener("popstate", update);
    window.addEventListener("hashchange", update);
    window.addEventListener(CHANGE, update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener("hashchange", update);
      window.removeEventListener(CHANGE, update);
    };
  }, []);
  return loc;
}

/**
 * Click handler for same-origin app links: plain left clicks navigate in place,
 * modified clicks (new tab, etc.) are left to the browser.
 */
export function handleLinkClick(ev: MouseEvent, to: string): void {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  navigate(to);
}
