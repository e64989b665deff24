// The Findings page's state <-> URL (shareable, back/forward), and the link from a finding to
// its event: the session page, anchored to the event's row.

import type { FindingQuery } from "../api";
import { SEVERITIES, type Severity, type SeverityCounts } from "../types";
import { toQueryString } from "./query";

export type FindingSort = "newest" | "oldest" | "severity";
export type FindingGroupBy = "" | "rule" | "server";

export interface FindingFilters {
  /** Only findings at this severity or above; "" for any. */
  min_severity: Severity | "";
  /** A rule id, or a family ending in * (secret.*). */
  rule: string;
  /** A server's name, or a glob (file*). */
  server: string;
  session_id: string;
  tool: string;
  /** RFC 3339 (UTC) bounds; "" when open. */
  since: string;
  until: string;
  sort: FindingSort;
  group: FindingGroupBy;
}

export const EMPTY_FINDING_FILTERS: Readonly<FindingFilters> = Object.freeze({
  min_severity: "",
  rule: "",
  server: "",
  session_id: "",
  tool: "",
  since: "",
  until: "",
  sort: "newest",
  group: "",
});

const TEXT = ["rule", "server", "session_id", "tool", "since", "until"] as const;
const SORTS: readonly FindingSort[] = ["newest", "oldest", "severity"];
const GROUPS: readonly FindingGroupBy[] = ["rule", "server"];
const MAX_FIELD = 200;

export function isSeverity(value: string | null): value is Severity {
  return (SEVERITIES as readonly string[]).includes(value ?? "");
}

/** Filters from location.search (unknown keys and invalid values are ignored). */
export function findingFiltersFromSearch(search: string): FindingFilters {
  const sp = new URLSearchParams(search);
  const f: FindingFilters = { ...EMPTY_FINDING_FILTERS };
  for (const key of TEXT) {
    const value = sp.get(key);
    if (value !== null) f[key] = value.trim().slice(0, MAX_FIELD);
  }
  const min = sp.get("min_severity");
  f.min_severity = isSeverity(min) ? min : "";
  const sort = sp.get("sort") ?? "";
  f.sort = (SORTS as readonly string[]).includes(sort) ? (sort as FindingSort) : "newest";
  const group = sp.get("group") ?? "";
  f.group = (GROUPS as readonly string[]).includes(group) ? (group as FindingGroupBy) : "";
  return f;
}

/** The query string of the filters, in a stable order; the defaults are left out. */
export function findingFiltersToSearch(f: FindingFilters): string {
  return toQueryString({
    min_severity: f.min_severity,
    rule: f.rule.trim(),
    server: f.server.trim(),
    session_id: f.session_id.trim(),
    tool: f.tool.trim(),
    since: f.since,
    until: f.until,
    sort: f.sort === "newest" ? "" : f.sort,
    group: f.group,
  });
}

/** The API's parameters for the filters (the grouping is the page's, not the list's). */
export function findingQuery(f: FindingFilters): FindingQuery {
  return {
    min_severity: f.min_severity || undefined,
    rule: f.rule.trim() || undefined,
    server: f.server.trim() || undefined,
    session_id: f.session_id.trim() || undefined,
    tool: f.tool.trim() || undefined,
    since: f.since || undefined,
    until: f.until || undefined,
  };
}

/** The fragment that anchors a session page at one event's row. */
export function eventAnchor(eventId: string): string {
  return `event-${eventId}`;
}

/** The event id in a session page's fragment (#event-<id>), or null. */
export function anchoredEvent(hash: string): string | null {
  const m = /^#event-([0-9A-Za-z-]{1,64})$/.exec(hash);
  return m ? m[1]! : null;
}

/** Where a finding leads: its session page, scrolled to its event. */
export function findingHref(sessionPath: string, eventId: string): string {
  return `${sessionPath}#${eventAnchor(eventId)}`;
}

/** Filters that narrow the list to one group (a rule or a server) of a summary. */
export function narrowToGroup(f: FindingFilters, key: string): FindingFilters {
  if (f.group === "rule") return { ...f, rule: key, group: "" };
  if (f.group === "server") return { ...f, server: key, group: "" };
  return f;
}

/** Severities with a count, the highest first: [["critical", 2], ["low", 1]]. */
export function severityBreakdown(counts: Partial<SeverityCounts>): [Severity, number][] {
  const out: [Severity, number][] = [];
  for (const s of [...SEVERITIES].reverse()) {
    const n = counts[s] ?? 0;
    if (n > 0) out.push([s, n]);
  }
  return out;
}

/** "/findings?…" for a page of the app that links to the findings it shows. */
export function findingsPath(base: string, f: Partial<FindingFilters>): string {
  return base + findingFiltersToSearch({ ...EMPTY_FINDING_FILTERS, ...f });
}
