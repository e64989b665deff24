// Filter state <-> URL query string, shared by Search and Live so a URL is shareable.

import { KINDS, LEVELS, type Kind, type Level } from "../types";

export type QueryValue = string | number | boolean | null | undefined;

/** `?a=1&b=x` from the non-empty values (false, "", null and undefined are left out); "" when none. */
export function toQueryString(params: Record<string, QueryValue>): string {
  const sp = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === false || value === "") continue;
    sp.set(key, value === true ? "true" : String(value));
  }
  const text = sp.toString();
  return text ? `?${text}` : "";
}

export interface EventFilters {
  session_id: string;
  method: string;
  tool: string;
  kind: Kind | "";
  /** Only errors (JSON-RPC errors and tool results with isError). */
  errors: boolean;
  /** Text in the payload (case-insensitive). */
  q: string;
  /** RFC 3339 (UTC) bounds; "" when open. */
  since: string;
  until: string;
  /** Only events at this risk level or above; "" for any. */
  min_level: RiskFloor;
}

/** A minimum risk level a filter can ask for ("" = any, findings or not). */
export type RiskFloor = Exclude<Level, "none"> | "";
export const RISK_FLOORS: readonly Exclude<Level, "none">[] = ["low", "medium", "high", "critical"];

/** A minimum risk level from a URL value ("" when absent or not a level). */
export function riskFloor(value: string | null): RiskFloor {
  return (RISK_FLOORS as readonly string[]).includes(value ?? "") ? (value as RiskFloor) : "";
}

/** Whether a risk level (an event's or a session's) reaches the floor. */
export function meetsFloor(level: string | null | undefined, floor: RiskFloor): boolean {
  if (!floor) return true;
  return LEVELS.indexOf((level ?? "none") as Level) >= LEVELS.indexOf(floor);
}

export const EMPTY_FILTERS: Readonly<EventFilters> = Object.freeze({
  session_id: "",
  method: "",
  tool: "",
  kind: "",
  errors: false,
  q: "",
  since: "",
  until: "",
  min_level: "",
});

const TEXT_FIELDS = ["session_id", "method", "tool", "q", "since", "until"] as const;
const MAX_FIELD = 500;

function isKind(value: string): value is Kind {
  return (KINDS as readonly string[]).includes(value);
}

function truthy(value: string | null): boolean {
  return value !== null && ["1", "true", "yes", "on"].includes(value.toLowerCase());
}

/** Filters from a location.search string (unknown keys and invalid values are ignored). */
export function filtersFromSearch(search: string): EventFilters {
  const sp = new URLSearchParams(search);
  const f: EventFilters = { ...EMPTY_FILTERS };
  for (const key of TEXT_FIELDS) {
    const value = sp.get(key);
    if (value !== null) f[key] = value.trim().slice(0, MAX_FIELD);
  }
  const kind = sp.get("kind") ?? "";
  f.kind = isKind(kind) ? kind : "";
  f.errors = truthy(sp.get("errors"));
  f.min_level = riskFloor(sp.get("min_level"));
  return f;
}

/** The query string for the filters, in a stable key order ("" when nothing is set). */
export function filtersToSearch(f: EventFilters, extra: Record<string, QueryValue> = {}): string {
  return toQueryString({
    session_id: f.session_id.trim(),
    method: f.method.trim(),
    tool: f.tool.trim(),
    kind: f.kind,
    errors: f.errors,
    q: f.q.trim(),
    since: f.since,
    until: f.until,
    min_level: f.min_level,
    ...extra,
  });
}

/** The subset the live stream understands (no time bounds). */
export function liveFilters(f: EventFilters): EventFilters {
  return { ...f, since: "", until: "" };
}

export function hasFilters(f: EventFilters): boolean {
  return filtersToSearch(f) !== "";
}

export function filtersEqual(a: EventFilters, b: EventFilters): boolean {
  return filtersToSearch(a) === filtersToSearch(b);
}
