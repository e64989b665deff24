// Display formatting. Pure functions: numbers, sizes, latencies, times, token estimates.
import { visibleText } from "./invisible";

export const DASH = "—";

const intFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

function isNum(n: unknown): n is number {
  return typeof n === "number" && Number.isFinite(n);
}

/** 1234567 -> "1,234,567". */
export function formatInt(n: number | null | undefined): string {
  return isNum(n) ? intFmt.format(n) : DASH;
}

function trimFixed(n: number, digits: number): string {
  return n.toFixed(digits).replace(/\.0+$|(\.\d*?)0+$/, "$1");
}

/** 950 -> "950", 1234 -> "1.2k", 2500000 -> "2.5M". */
export function formatCompact(n: number | null | undefined): string {
  if (!isNum(n)) return DASH;
  const abs = Math.abs(n);
  if (abs < 1000) return trimFixed(n, abs < 10 && !Number.isInteger(n) ? 2 : abs < 100 ? 1 : 0);
  for (const [size, unit] of [
    [1e12, "T"],
    [1e9, "B"],
    [1e6, "M"],
    [1e3, "k"],
  ] as const) {
    if (abs >= size * 0.9995) return `${trimFixed(n / size, Math.abs(n / size) < 100 ? 1 : 0)}${unit}`;
  }
  return String(n); // not reached
}

/** A count with its noun: 1 -> "1 call", 13 -> "13 calls" (`many`: an irregular plural). */
export function plural(n: number | null | undefined, one: string, many = `${one}s`): string {
  return `${formatInt(n)} ${n === 1 ? one : many}`;
}

/** Bytes in binary units: 512 -> "512 B", 1536 -> "1.5 KB". */
export function formatBytes(n: number | null | undefined): string {
  if (!isNum(n)) return DASH;
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let i = 0;
  while (Math.abs(value) >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(value)} B` : `${trimFixed(value, Math.abs(value) < 10 ? 1 : 0)} ${units[i]}`;
}

/** A latency or duration in ms: 0.42 -> "0.42 ms", 12.34 -> "12.3 ms", 1234 -> "1.23 s", 125000 -> "2m 5s". */
export function formatMs(ms: number | null | undefined): string {
  if (!isNum(ms)) return DASH;
  if (ms < 1) return `${trimFixed(ms, 2)} ms`;
  if (ms < 100) return `${trimFixed(ms, 1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${trimFixed(s, s < 10 ? 2 : 1)} s`;
  const totalSeconds = Math.round(s);
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const sec = totalSeconds % 60;
  return h > 0 ? `${h}h ${m}m` : `${m}m ${sec}s`;
}

/** A ratio 0..1 as a percentage: 0.025 -> "2.5%". */
export function formatPercent(rate: number | null | undefined): string {
  if (!isNum(rate)) return DASH;
  const pct = rate * 100;
  if (pct === 0) return "0%";
  if (pct < 0.1) return "<0.1%";
  return `${trimFixed(pct, pct < 10 ? 1 : 0)}%`;
}

/** Estimated tokens from bytes, the documented heuristic (bytes / 4). */
export function estimateTokens(bytes: number | null | undefined): number | null {
  return isNum(bytes) ? Math.round(bytes / 4) : null;
}

/** Tokens a group's results put into the model's context: the server's est_tokens, else bytes / 4. */
export function groupTokens(g: { est_tokens?: number | null; response_bytes?: number | null }): number | null {
  if (isNum(g.est_tokens)) return g.est_tokens;
  return estimateTokens(g.response_bytes);
}

/** "≈ 12.3k tokens (est.)": always marked as an estimate. */
export function formatTokens(tokens: number | null | undefined): string {
  if (!isNum(tokens)) return DASH;
  return `≈ ${formatCompact(tokens)} tokens (est.)`;
}

/** Short form for tables and chart axes: "≈ 12.3k". */
export function formatTokensShort(tokens: number | null | undefined): string {
  return isNum(tokens) ? `≈ ${formatCompact(tokens)}` : DASH;
}

const TS_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * Microseconds since the epoch from an RFC 3339 time, keeping the sub-millisecond
 * digits that Date.parse drops. NaN when the text is not a time. (Numbers stay exact:
 * 2^53 µs is year 2255.)
 */
export function parseTsMicros(text: string): number {
  const m = TS_RE.exec(text);
  if (!m) return Number.NaN;
  const [, y, mo, d, h, mi, s, frac = "", zone = "Z"] = m;
  let ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  if (zone.toUpperCase() !== "Z") {
    const sign = zone.startsWith("-") ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4))) * 60_000;
  }
  const micros = Number((frac + "000000").slice(0, 6));
  return ms * 1000 + micros;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

// One time format everywhere: "2026-11-27 22:34:35 CET", in the browser's time zone or in UTC
// (the toggle in the sidebar; the choice is kept in this origin's storage).

export type ZoneMode = "local" | "utc";
const ZONE_KEY = "km_time_zone";
const ZONE_EVENT = "km:time-zone";
let zoneMode: ZoneMode = readZoneMode();

function readZoneMode(): ZoneMode {
  try {
    return globalThis.localStorage?.getItem(ZONE_KEY) === "utc" ? "utc" : "local";
  } catch {
    return "local";
  }
}

/** Whether times are shown in the browser's time zone or in UTC. */
export function getZoneMode(): ZoneMode {
  return zoneMode;
}

/** Show times in `mode` from now on (remembered), and tell the components that show them. */
export function setZoneMode(mode: ZoneMode): void {
  zoneMode = mode;
  try {
    globalThis.localStorage?.setItem(ZONE_KEY, mode);
  } catch {
    // storage disabled: this tab still switches
  }
  globalThis.dispatchEvent?.(new Event(ZONE_EVENT));
}

/** Calls `listener` whenever the time zone mode changes; returns the unsubscribe function. */
export function onZoneModeChange(listener: () => void): () => void {
  globalThis.addEventListener?.(ZONE_EVENT, listener);
  return () => globalThis.removeEventListener?.(ZONE_EVENT, listener);
}

/** The shown zone's short name at a moment: "UTC", or the local one ("CET", "GMT+1", "PST"). */
export function zoneName(ms: number = Date.now()): string {
  if (zoneMode === "utc") return "UTC";
  try {
    const part = new Intl.DateTimeFormat("en-US", { timeZoneName: "short" })
      .formatToParts(new Date(ms))
      .find((p) => p.type === "timeZoneName");
    if (part?.value) return part.value;
  } catch {
    // no Intl time zone data: an offset below
  }
  const offset = -new Date(ms).getTimezoneOffset();
  const sign = offset < 0 ? "-" : "+";
  const abs = Math.abs(offset);
  return `UTC${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

function zoneParts(micros: number): { date: string; time: string; ms: string } {
  const d = new Date(Math.floor(micros / 1000));
  if (zoneMode === "utc")
    return {
      date: `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`,
      time: `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`,
      ms: pad(d.getUTCMilliseconds(), 3),
    };
  return {
    date: `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`,
    time: `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`,
    ms: pad(d.getMilliseconds(), 3),
  };
}

/** "2026-11-27 22:34:35 CET": date, time and zone (DASH when missing, the text when unparseable). */
export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return DASH;
  const us = parseTsMicros(iso);
  if (Number.isNaN(us)) return iso;
  const p = zoneParts(us);
  return `${p.date} ${p.time} ${zoneName(us / 1000)}`;
}

/** "22:34:35.123" in the shown zone, for dense event lists (their header names the zone). */
export function formatClock(iso: string | null | undefined): string {
  if (!iso) return DASH;
  const us = parseTsMicros(iso);
  if (Number.isNaN(us)) return iso;
  const p = zoneParts(us);
  return `${p.time}.${p.ms}`;
}

/** A server time in ns (e.g. created_ns) as date, time and zone. */
export function formatNs(ns: number | null | undefined): string {
  if (!isNum(ns)) return DASH;
  const us = ns / 1000;
  const p = zoneParts(us);
  return `${p.date} ${p.time} ${zoneName(us / 1000)}`;
}

/** Seconds since the epoch (a chart's time axis) as "22:34" or "11-27 22:34" in the shown zone. */
export function formatAxisTime(seconds: number, withDate: boolean): string {
  const p = zoneParts(seconds * 1e6);
  const hm = p.time.slice(0, 5);
  return withDate ? `${p.date.slice(5)} ${hm}` : hm;
}

/** RFC 3339 UTC -> the value of an <input type="datetime-local"> (in the shown zone, to the second). */
export function isoToLocalInput(iso: string): string {
  const us = parseTsMicros(iso);
  if (Number.isNaN(us)) return "";
  const p = zoneParts(us);
  return `${p.date}T${p.time}`;
}

/** An <input type="datetime-local"> value (in the shown zone) -> RFC 3339 UTC ("" when empty/invalid). */
export function localInputToIso(value: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(value);
  if (!m) return "";
  const [, y, mo, d, h, mi, s = "0"] = m;
  const parts = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)] as const;
  const date = zoneMode === "utc" ? new Date(Date.UTC(...parts)) : new Date(...parts);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString().replace(/\.000Z$/, "Z");
}

/** Arrow for a message direction: → client to server, ← server to client. */
export function directionArrow(direction: string): string {
  return direction === "client_to_server" ? "→" : direction === "server_to_client" ? "←" : "·";
}

/** What an event is about: "tools/call search_docs", "resources/read file:///x", … */
export function eventLabel(e: {
  method: string | null;
  tool: string | null;
  resource_uri?: string | null;
  prompt_name?: string | null;
  kind: string;
}): string {
  const subject = e.tool ?? e.prompt_name ?? e.resource_uri ?? null;
  const method = e.method ?? (e.kind === "response" || e.kind === "error" ? `(${e.kind})` : e.kind);
  return visibleText(subject ? `${method} ${subject}` : method); // bidi/invisible characters escaped
}

/** A JSON value as text: pretty (2-space indent) or compact; strings stay strings. */
export function jsonText(value: unknown, pretty: boolean): string {
  if (value === undefined) return "";
  try {
    return JSON.stringify(value, null, pretty ? 2 : undefined) ?? String(value);
  } catch {
    return String(value);
  }
}
