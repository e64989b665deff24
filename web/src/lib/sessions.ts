// The Sessions table's filters and sort order (kept in the URL, so a view can be shared), applied
// to the sessions loaded so far.

import type { KmSession } from "../types";
import { parseTsMicros } from "./format";
import { visibleText } from "./invisible";
import { RANGE_KEYS, RANGES, type RangeKey } from "./stats";

export type SessionStatus = "" | "running" | "ended" | "failed" | "partial";
export type SortKey = "started" | "duration" | "events" | "errors" | "risk" | "server" | "client";
export const SORT_KEYS: readonly SortKey[] = ["started", "duration", "events", "errors", "risk", "server", "client"];

export interface SessionView {
  server: string;
  client: string;
  status: SessionStatus;
  errors: boolean;
  range: RangeKey | "";
  sort: SortKey;
  desc: boolean;
}

export const DEFAULT_VIEW: SessionView = {
  server: "",
  client: "",
  status: "",
  errors: false,
  range: "",
  sort: "started",
  desc: true,
};

const STATUSES: readonly SessionStatus[] = ["running", "ended", "failed", "partial"];

/** The view in a URL's query (unknown values: the default). */
export function parseView(search: string): SessionView {
  const p = new URLSearchParams(search);
  const status = p.get("status") ?? "";
  const range = p.get("range") ?? "";
  const sort = p.get("sort") ?? "";
  return {
    server: (p.get("server") ?? "").slice(0, 200),
    client: (p.get("client") ?? "").slice(0, 200),
    status: (STATUSES as readonly string[]).includes(status) ? (status as SessionStatus) : "",
    errors: p.get("errors") === "1",
    range: (RANGE_KEYS as readonly string[]).includes(range) ? (range as RangeKey) : "",
    sort: (SORT_KEYS as readonly string[]).includes(sort) ? (sort as SortKey) : "started",
    desc: p.get("dir") !== "asc",
  };
}

/** The query parameters of a view (defaults left out). */
export function viewQuery(v: SessionView): Record<string, string | undefined> {
  return {
    server: v.server || undefined,
    client: v.client || undefined,
    status: v.status || undefined,
    errors: v.errors ? "1" : undefined,
    range: v.range || undefined,
    sort: v.sort !== "started" ? v.sort : undefined,
    dir: v.desc ? undefined : "asc",
  };
}

function infoName(info: Record<string, unknown> | null): string | null {
  if (!info) return null;
  const name = typeof info.name === "string" ? info.name : null;
  const version = typeof info.version === "string" ? info.version : null;
  return name ? (version ? `${name} ${version}` : name) : null;
}

/** The client's name ("claude-ai 0.1.0") from the initialize request, if any. */
export function clientName(s: KmSession): string {
  return infoName(s.client) ?? "—";
}

/** The server's name: the session's own name, else the server's initialize answer. */
export function serverName(s: KmSession): string {
  // invisible and bidi characters escaped: a name is shown as what it is, not as it would render
  return visibleText(s.name ?? infoName(s.server) ?? (s.command.length ? s.command.join(" ") : "—"));
}

/** running, ended (exit 0 or unknown), failed (a non-zero exit) or partial (events dropped). */
export function sessionStatus(s: KmSession): Exclude<SessionStatus, ""> {
  if (s.dropped_events > 0) return "partial";
  if (!s.ended_at) return "running";
  return s.exit_code !== null && s.exit_code !== 0 ? "failed" : "ended";
}

const RISK_RANK: Record<string, number> = { none: 0, info: 0, low: 1, medium: 2, high: 3, critical: 4 };

function riskRank(s: KmSession): number {
  return RISK_RANK[s.risk?.level ?? "none"] ?? 0;
}

function contains(haystack: string, needle: string): boolean {
  return haystack.toLowerCase().includes(needle.trim().toLowerCase());
}

/** The sessions the view shows, in its order (`nowMs`: the end of a relative range). */
export function applyView(items: readonly KmSession[], v: SessionView, nowMs: number): KmSession[] {
  const sinceUs = v.range ? (nowMs - RANGES[v.range].ms) * 1000 : null;
  const shown = items.filter(
    (s) =>
      (!v.server || contains(serverName(s), v.server)) &&
      (!v.client || contains(clientName(s), v.client)) &&
      (!v.status || sessionStatus(s) === v.status) &&
      (!v.errors || s.error_count > 0) &&
      (sinceUs === null || parseTsMicros(s.ended_at ?? new Date(nowMs).toISOString()) >= sinceUs),
  );
  const key: Record<SortKey, (s: KmSession) => number | string> = {
    started: (s) => parseTsMicros(s.started_at),
    duration: (s) => s.duration_ms ?? (s.ended_at ? 0 : Number.POSITIVE_INFINITY),
    events: (s) => s.event_count,
    errors: (s) => s.error_count,
    risk: riskRank,
    server: (s) => serverName(s).toLowerCase(),
    client: (s) => clientName(s).toLowerCase(),
  };
  const get = key[v.sort];
  const dir = v.desc ? -1 : 1;
  return shown
    .map((s, i) => ({ s, i, k: get(s) }))
    .sort((a, b) => (a.k < b.k ? -dir : a.k > b.k ? dir : a.i - b.i))
    .map((x) => x.s);
}
