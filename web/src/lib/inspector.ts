// The session inspector's logic: calls (request + answer) with the notifications that refer to
// them, filtering within the session, the zoomable time window, and the parts of a tool result.

import type { KmEvent } from "../types";
import { buildWaterfall, type WaterfallRow } from "./waterfall";

export interface InspectorRow extends WaterfallRow {
  index: number;
  method: string | null;
  tool: string | null;
  /** Request and answer bytes together. */
  size: number;
  status: "ok" | "error" | "pending" | "notification";
  /** For a call: the notifications linked to it (progress, cancellation), oldest first. */
  linked: string[];
  /** For a notification: the call's row it refers to. */
  linkedTo: string | null;
}

function record(v: unknown): Record<string, unknown> | null {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

function params(e: KmEvent): Record<string, unknown> | null {
  return record(record(e.payload)?.params);
}

/** A JSON-RPC id or progress token as a map key ("s:abc" / "n:1"), null when absent. */
function tokenKey(v: unknown): string | null {
  if (typeof v === "string") return `s:${v}`;
  if (typeof v === "number" && Number.isFinite(v)) return `n:${v}`;
  return null;
}

/**
 * The rows of the inspector: one per call (its answer paired, see buildWaterfall), per
 * notification and per lone answer, in time order. Notifications are linked to the call they
 * refer to: `notifications/progress` by the `progressToken` the request set in `params._meta`,
 * `notifications/cancelled` by `requestId` (a request sent the other way).
 */
export function buildInspectorRows(events: readonly KmEvent[]): InspectorRow[] {
  const byId = new Map(events.map((e) => [e.id, e]));
  const base = buildWaterfall(events);
  const rows: InspectorRow[] = base.map((r, index) => {
    const req = byId.get(r.eventId);
    const resp = r.responseId && r.responseId !== r.eventId ? byId.get(r.responseId) : undefined;
    const status: InspectorRow["status"] =
      r.type === "notification" ? "notification" : r.isError ? "error" : r.end === null ? "pending" : "ok";
    return {
      ...r,
      index,
      method: req?.method ?? null,
      tool: req?.tool ?? req?.prompt_name ?? req?.resource_uri ?? null,
      size: (req?.size_bytes ?? 0) + (resp?.size_bytes ?? 0),
      status,
      linked: [],
      linkedTo: null,
    };
  });
  const byProgress = new Map<string, InspectorRow>();
  const byRequest = new Map<string, InspectorRow>();
  for (const row of rows) {
    if (row.type !== "call") continue;
    const req = byId.get(row.eventId);
    if (!req) continue;
    const token = tokenKey(record(params(req)?._meta)?.progressToken);
    if (token) byProgress.set(token, row);
    const id = tokenKey(req.jsonrpc_id);
    if (id) byRequest.set(`${req.direction}/${id}`, row);
  }
  for (const row of rows) {
    if (row.type !== "notification") continue;
    const e = byId.get(row.eventId);
    if (!e) continue;
    const p = params(e);
    let call: InspectorRow | undefined;
    if (e.method === "notifications/progress") {
      const token = tokenKey(p?.progressToken);
      call = token ? byProgress.get(token) : undefined;
    } else if (e.method === "notifications/cancelled") {
      const id = tokenKey(p?.requestId);
      // the side that sent the request cancels it: same direction as the request
      call = id ? byRequest.get(`${e.direction}/${id}`) : undefined;
    }
    if (call) {
      call.linked.push(row.eventId);
      row.linkedTo = call.eventId;
    }
  }
  return rows;
}

/**
 * Whether a row matches the filter box: every word (case-insensitive) is found in the row's
 * method, tool, status or the payload text of its request or answer.
 */
export function rowMatcher(query: string, byId: ReadonlyMap<string, KmEvent>): (row: InspectorRow) => boolean {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return () => true;
  const texts = new Map<string, string>();
  const text = (id: string | null): string => {
    if (!id) return "";
    let t = texts.get(id);
    if (t === undefined) {
      const e = byId.get(id);
      t = e ? (JSON.stringify(e.payload) ?? "").toLowerCase() : "";
      texts.set(id, t);
    }
    return t;
  };
  return (row) => {
    const head = `${row.label} ${row.status}`.toLowerCase();
    return words.every((w) => head.includes(w) || text(row.eventId).includes(w) || text(row.responseId).includes(w));
  };
}

export type Span = readonly [number, number];

/** The shortest window the timeline zooms to (µs). */
export const MIN_WINDOW_US = 1000;

/** `view` zoomed by `factor` (< 1 zooms in) around `center` (µs), kept within `full`. */
export function zoomSpan(view: Span, full: Span, factor: number, center?: number): [number, number] {
  const width = view[1] - view[0];
  const fullWidth = full[1] - full[0];
  const next = Math.min(fullWidth, Math.max(Math.min(MIN_WINDOW_US, fullWidth), width * factor));
  const c = center ?? (view[0] + view[1]) / 2;
  const ratio = width > 0 ? (c - view[0]) / width : 0.5;
  return clampSpan(c - next * ratio, next, full);
}

/** A window of the same width moved to start at `start` (or centred at `center`), within `full`. */
export function panSpan(view: Span, full: Span, start: number): [number, number] {
  return clampSpan(start, view[1] - view[0], full);
}

export function centerSpan(view: Span, full: Span, center: number): [number, number] {
  const width = view[1] - view[0];
  return clampSpan(center - width / 2, width, full);
}

function clampSpan(start: number, width: number, full: Span): [number, number] {
  const s = Math.min(Math.max(start, full[0]), full[1] - width);
  return [s, s + width];
}

/** Rows per bucket over the full span, for the overview strip (`buckets` counts). */
export function density(rows: readonly { start: number }[], full: Span, buckets: number): number[] {
  const out = new Array<number>(buckets).fill(0);
  const width = full[1] - full[0];
  if (width <= 0) return out;
  for (const r of rows) {
    const i = Math.min(buckets - 1, Math.max(0, Math.floor(((r.start - full[0]) / width) * buckets)));
    out[i]! += 1;
  }
  return out;
}

/** The index of the first row starting at or after `t` (rows sorted by start); rows.length when none. */
export function firstRowAt(rows: readonly { start: number }[], t: number): number {
  let lo = 0;
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (rows[mid]!.start < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export type ContentPart =
  { type: "text"; text: string } | { type: "image"; src: string; mimeType: string } | { type: "other"; value: unknown };

const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"]);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A data: URL for an image content item, or null unless it is a raster image type with valid
 *  base64 (SVG is refused: it is a document, not a picture). */
export function imageSrc(mimeType: unknown, data: unknown): string | null {
  if (typeof mimeType !== "string" || typeof data !== "string") return null;
  const mime = mimeType.trim().toLowerCase();
  if (!IMAGE_TYPES.has(mime)) return null;
  const b64 = data.replace(/\s+/g, "");
  if (b64.length === 0 || b64.length % 4 !== 0 || !BASE64.test(b64)) return null;
  return `data:${mime};base64,${b64}`;
}

/**
 * The content items of a tool result or prompt message list (`result.content`, or
 * `result.messages[].content`): text as text (line breaks kept), images as data: URLs,
 * anything else as JSON. Null when the payload has no content list.
 */
export function contentParts(payload: unknown): ContentPart[] | null {
  const result = record(record(payload)?.result);
  if (!result) return null;
  let items: unknown[] | null = Array.isArray(result.content) ? result.content : null;
  if (!items && Array.isArray(result.messages))
    items = result.messages.map((m) => record(m)?.content).filter((c) => c !== undefined);
  if (!items) return null;
  return items.map((item): ContentPart => {
    const it = record(item);
    if (it?.type === "text" && typeof it.text === "string") return { type: "text", text: it.text };
    if (it?.type === "image") {
      const src = imageSrc(it.mimeType, it.data);
      if (src) return { type: "image", src, mimeType: String(it.mimeType) };
    }
    return { type: "other", value: item };
  });
}

/** What the request asked: `params.arguments` of a call, else its `params`. */
export function requestArguments(e: KmEvent | undefined): unknown {
  const p = e ? params(e) : null;
  if (!p) return undefined;
  return "arguments" in p ? p.arguments : p;
}

/** What the answer said: its `result` or `error`. */
export function answerBody(e: KmEvent | undefined): unknown {
  const m = record(e?.payload);
  if (!m) return undefined;
  return "error" in m ? m.error : m.result;
}

/**
 * Read a session oldest first, page after page, handing each page on as it arrives (the first
 * rows show at once), until the end, `max` events, or `signal` aborts. Returns whether it stopped
 * at `max` with events left.
 */
export async function readSession(
  fetchPage: (cursor: string | null) => Promise<{ items: KmEvent[]; next_cursor: string | null }>,
  onPage: (items: KmEvent[]) => void,
  max: number,
  signal?: AbortSignal,
): Promise<boolean> {
  let cursor: string | null = null;
  let read = 0;
  for (;;) {
    const page = await fetchPage(cursor);
    if (signal?.aborted) return false;
    const items = page.items.slice(0, Math.max(0, max - read));
    read += items.length;
    onPage(items);
    cursor = page.next_cursor;
    if (cursor === null) return items.length < page.items.length;
    if (read >= max) return true;
  }
}
