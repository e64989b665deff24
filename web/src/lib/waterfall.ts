// Session timeline: pair requests with their responses and lay the pairs out as bars.

import type { KmEvent } from "../types";
import { eventLabel, parseTsMicros } from "./format";

export interface WaterfallRow {
  /** The event a click opens: the request (or the lone response/notification). */
  eventId: string;
  responseId: string | null;
  label: string;
  /** µs since the epoch. */
  start: number;
  /** µs since the epoch; null while unanswered. */
  end: number | null;
  latencyMs: number | null;
  isError: boolean;
  type: "call" | "notification" | "response";
  direction: KmEvent["direction"];
}

/**
 * One row per request (with its response when present, matched by request_event_id),
 * per notification, and per response whose request is not in the list (its start is
 * inferred from latency_ms). Sorted by start time.
 */
export function buildWaterfall(events: readonly KmEvent[]): WaterfallRow[] {
  const responses = new Map<string, KmEvent>();
  for (const e of events) {
    if ((e.kind === "response" || e.kind === "error") && e.request_event_id) responses.set(e.request_event_id, e);
  }
  const requestIds = new Set(events.filter((e) => e.kind === "request").map((e) => e.id));
  const rows: WaterfallRow[] = [];
  for (const e of events) {
    const ts = parseTsMicros(e.ts);
    if (Number.isNaN(ts)) continue;
    if (e.kind === "request") {
      const resp = responses.get(e.id) ?? null;
      const end = resp ? parseTsMicros(resp.ts) : null;
      rows.push({
        eventId: e.id,
        responseId: resp?.id ?? null,
        label: eventLabel(e),
        start: ts,
        end: end !== null && !Number.isNaN(end) ? Math.max(end, ts) : null,
        latencyMs: resp?.latency_ms ?? (end !== null && !Number.isNaN(end) ? (end - ts) / 1000 : null),
        isError: resp ? resp.is_error || resp.kind === "error" : false,
        type: "call",
        direction: e.direction,
      });
    } else if (e.kind === "notification" || e.kind === "invalid") {
      rows.push({
        eventId: e.id,
        responseId: null,
        label: eventLabel(e),
        start: ts,
        end: ts,
        latencyMs: null,
        isError: e.is_error || e.kind === "invalid",
        type: "notification",
        direction: e.direction,
      });
    } else if (!e.request_event_id || !requestIds.has(e.request_event_id)) {
      const latencyUs = (e.latency_ms ?? 0) * 1000;
      rows.push({
        eventId: e.id,
        responseId: e.id,
        label: eventLabel(e),
        start: ts - latencyUs,
        end: ts,
        latencyMs: e.latency_ms,
        isError: e.is_error || e.kind === "error",
        type: "response",
        direction: e.direction,
      });
    }
  }
  rows.sort((a, b) => a.start - b.start || a.eventId.localeCompare(b.eventId));
  return rows;
}

/** The time span [t0, t1] the timeline covers (µs): the session bounds widened to the rows. */
export function timelineSpan(
  rows: readonly WaterfallRow[],
  sessionStart: number | null,
  sessionEnd: number | null,
): [number, number] {
  let t0 = sessionStart ?? Number.POSITIVE_INFINITY;
  let t1 = sessionEnd ?? Number.NEGATIVE_INFINITY;
  for (const r of rows) {
    t0 = Math.min(t0, r.start);
    t1 = Math.max(t1, r.end ?? r.start);
  }
  if (!Number.isFinite(t0) || !Number.isFinite(t1)) return [0, 1];
  if (t1 <= t0) t1 = t0 + 1000; // 1 ms minimum span
  return [t0, t1];
}

/**
 * A bar's position in percent of the span. Pending calls run to the end; every bar is
 * at least `minWidth` percent wide so that instant calls stay visible and clickable.
 */
export function layoutBar(
  row: WaterfallRow,
  span: readonly [number, number],
  minWidth = 0.4,
): { left: number; width: number } {
  const [t0, t1] = span;
  const total = t1 - t0;
  const clamp = (v: number) => Math.min(100, Math.max(0, v));
  const left = clamp(((row.start - t0) / total) * 100);
  const end = clamp((((row.end ?? t1) - t0) / total) * 100);
  let width = Math.max(minWidth, end - left);
  if (left + width > 100) width = Math.max(minWidth, 100 - left);
  const fixedLeft = left + width > 100 ? 100 - width : left;
  return { left: round3(fixedLeft), width: round3(width) };
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}
