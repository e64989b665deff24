// The live stream: message parsing (GET /api/v1/live, `event: event` / `data: <Event JSON>`)
// and the bounded buffer between the stream and the DOM.

import { KINDS, type KmEvent } from "../types";
import { formatInt, plural } from "./format";
import { filtersToSearch, liveFilters, type EventFilters } from "./query";

export const LIVE_PATH = "/api/v1/live";
/** The SSE event name the server uses for new events. */
export const LIVE_EVENT = "event";
/** The SSE event name for events the server dropped because this stream fell behind. */
export const LIVE_LAGGED = "lagged";

/** The number of events a `lagged` message says were skipped (0 for anything else). */
export function parseLagged(data: string): number {
  const n = /^\s*\d{1,15}\s*$/.test(data) ? Number(data) : 0;
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

/** What the empty list says while paused with events waiting (null: it waits for events). */
export function pausedWaitingText(paused: boolean, buffered: number): string | null {
  if (!paused || buffered <= 0) return null;
  return buffered === 1
    ? "Paused: 1 new event is waiting. Resume to show it."
    : `Paused: ${formatInt(buffered)} new events are waiting. Resume to show them.`;
}

/** The counts line's note on skipped events (null when none were). */
export function skippedText(skipped: number): string | null {
  if (skipped <= 0) return null;
  return `${plural(skipped, "event was", "events were")} skipped because this tab fell behind`;
}

/** The stream URL for the filters (time bounds do not apply to a live stream). */
export function liveUrl(filters: EventFilters): string {
  return LIVE_PATH + filtersToSearch(liveFilters(filters));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const optionalString = (v: unknown): string | null => (typeof v === "string" ? v : null);
const optionalNumber = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/**
 * The event in one SSE `data:` field, or null when it is not an Event (bad JSON, missing
 * id/session/ts/kind). Fields are normalised to their documented types so the renderers
 * never see e.g. an object where a string belongs.
 */
export function parseLiveEvent(data: string): KmEvent | null {
  let raw: unknown;
  try {
    raw = JSON.parse(data);
  } catch {
    return null;
  }
  if (!isObject(raw)) return null;
  const { id, session_id, ts, kind, direction } = raw;
  if (typeof id !== "string" || typeof session_id !== "string" || typeof ts !== "string") return null;
  if (typeof kind !== "string" || !(KINDS as readonly string[]).includes(kind)) return null;
  const error = isObject(raw.error)
    ? { code: optionalNumber(raw.error.code), message: optionalString(raw.error.message) }
    : null;
  const event: KmEvent = {
    id,
    session_id,
    ts,
    direction: direction === "server_to_client" ? "server_to_client" : "client_to_server",
    kind: kind as KmEvent["kind"],
    jsonrpc_id: raw.jsonrpc_id ?? null,
    method: optionalString(raw.method),
    tool: optionalString(raw.tool),
    resource_uri: optionalString(raw.resource_uri),
    prompt_name: optionalString(raw.prompt_name),
    latency_ms: optionalNumber(raw.latency_ms),
    size_bytes: optionalNumber(raw.size_bytes) ?? 0,
    is_error: raw.is_error === true,
    error,
    truncated: raw.truncated === true,
    request_event_id: optionalString(raw.request_event_id),
    payload: raw.payload ?? null,
  };
  if (isObject(raw.risk)) {
    const r = raw.risk;
    event.risk = {
      score: optionalNumber(r.score) ?? 0,
      level: optionalString(r.level) ?? "none",
      findings: Array.isArray(r.findings) ? r.findings.filter(isObject).map(toFinding) : [],
    };
  }
  return event;
}

function toFinding(f: Record<string, unknown>) {
  return {
    rule: String(f.rule ?? ""),
    severity: String(f.severity ?? "info"),
    path: String(f.path ?? ""),
    message: String(f.message ?? ""),
  };
}

/**
 * Events between the stream and the screen. Arrivals are pushed as they come; once per
 * animation frame `drain()` hands over what to draw, newest first, at most `cap` of them
 * (older ones would be trimmed off the list right away, so they are never built).
 * While paused nothing is drained and `bufferedCount` says how many arrived meanwhile;
 * memory stays bounded because only the newest `cap` are kept.
 */
export class LiveFeed {
  private pending: KmEvent[] = [];
  private pausedAt = 0;
  received = 0;
  /** Events the server skipped because this stream fell behind (its `lagged` messages). */
  skipped = 0;
  paused = false;

  constructor(readonly cap: number) {}

  push(event: KmEvent): void {
    this.received++;
    this.pending.push(event);
    if (this.pending.length > this.cap * 2) this.pending.splice(0, this.pending.length - this.cap);
  }

  /** The events to draw now, newest first (empty while paused). */
  drain(): KmEvent[] {
    if (this.paused || this.pending.length === 0) return [];
    const take = this.pending.slice(-this.cap).reverse();
    this.pending = [];
    return take;
  }

  /** Counts a `lagged` message's skipped events. */
  lagged(count: number): void {
    this.skipped += count;
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.pausedAt = this.received;
  }

  resume(): void {
    this.paused = false;
  }

  /** Events that arrived since pause() (0 when not paused). */
  get bufferedCount(): number {
    return this.paused ? this.received - this.pausedAt : 0;
  }

  get pendingCount(): number {
    return this.pending.length;
  }
}
