// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import {
  DASH,
  estimateTokens,
  eventLabel,
  formatAxisTime,
  formatBytes,
  formatClock,
  formatCompact,
  formatDateTime,
  formatInt,
  formatMs,
  formatNs,
  formatPercent,
  formatTokens,
  formatTokensShort,
  getZoneMode,
  groupTokens,
  isoToLocalInput,
  jsonText,
  localInputToIso,
  onZoneModeChange,
  parseTsMicros,
  plural,
  setZoneMode,
  zoneName,
} from "../src/lib/format";

describe("numbers", () => {
  it("formats integers with separators", () => {
    expect(formatInt(1234567)).toBe("1,234,567");
    expect(formatInt(0)).toBe("0");
    expect(formatInt(null)).toBe(DASH);
    expect(formatInt(Number.NaN)).toBe(DASH);
  });

  it("formats compact numbers", () => {
    expect(formatCompact(950)).toBe("950");
    expect(formatCompact(1234)).toBe("1.2k");
    expect(formatCompact(12_345)).toBe("12.3k");
    expect(formatCompact(999_999)).toBe("1M");
    expect(formatCompact(2_500_000)).toBe("2.5M");
    expect(formatCompact(3.25)).toBe("3.25");
    expect(formatCompact(42.5)).toBe("42.5");
    expect(formatCompact(undefined)).toBe(DASH);
  });

  it("formats bytes in binary units", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KB");
    expect(formatBytes(1024)).toBe("1 KB");
    expect(formatBytes(200 * 1024)).toBe("200 KB");
    expect(formatBytes(5 * 1024 * 1024)).toBe("5 MB");
    expect(formatBytes(null)).toBe(DASH);
  });

  it("formats latencies", () => {
    expect(formatMs(0.42)).toBe("0.42 ms");
    expect(formatMs(0.5)).toBe("0.5 ms");
    expect(formatMs(12.34)).toBe("12.3 ms");
    expect(formatMs(12)).toBe("12 ms");
    expect(formatMs(250.4)).toBe("250 ms");
    expect(formatMs(1234)).toBe("1.23 s");
    expect(formatMs(42_000)).toBe("42 s");
    expect(formatMs(125_000)).toBe("2m 5s");
    expect(formatMs(2 * 3600_000 + 60_000)).toBe("2h 1m");
    expect(formatMs(null)).toBe(DASH);
  });

  it("formats rates as percentages", () => {
    expect(formatPercent(0)).toBe("0%");
    expect(formatPercent(0.025)).toBe("2.5%");
    expect(formatPercent(0.5)).toBe("50%");
    expect(formatPercent(0.0004)).toBe("<0.1%");
    expect(formatPercent(1)).toBe("100%");
  });
});

describe("token estimate display", () => {
  it("estimates tokens as bytes / 4", () => {
    expect(estimateTokens(4000)).toBe(1000);
    expect(estimateTokens(6)).toBe(2);
    expect(estimateTokens(null)).toBeNull();
  });

  it("prefers the server's est_tokens and falls back to response_bytes / 4", () => {
    expect(groupTokens({ est_tokens: 1234, response_bytes: 999_999 })).toBe(1234);
    expect(groupTokens({ response_bytes: 8000 })).toBe(2000);
    expect(groupTokens({})).toBeNull();
  });

  it("always labels the number as an estimate", () => {
    expect(formatTokens(12_345)).toBe("≈ 12.3k tokens (est.)");
    expect(formatTokens(0)).toBe("≈ 0 tokens (est.)");
    expect(formatTokens(null)).toBe(DASH);
    expect(formatTokensShort(2500)).toBe("≈ 2.5k");
  });
});

describe("times", () => {
  it("parses RFC 3339 with microseconds", () => {
    const base = Date.UTC(2026, 10, 27, 22, 34, 35) * 1000;
    expect(parseTsMicros("2026-11-27T22:34:35.123456Z")).toBe(base + 123_456);
    expect(parseTsMicros("2026-11-27T22:34:35Z")).toBe(base);
    expect(parseTsMicros("2026-11-27T22:34:35.5Z")).toBe(base + 500_000);
    expect(parseTsMicros("2026-11-27T23:34:35.000001+01:00")).toBe(base + 1);
    expect(parseTsMicros("nonsense")).toBeNaN();
  });

  it("keeps sub-millisecond order that Date.parse loses", () => {
    const a = parseTsMicros("2026-11-27T22:34:35.123456Z");
    const b = parseTsMicros("2026-11-27T22:34:35.123789Z");
    expect(b - a).toBe(333);
  });

  it("round-trips datetime-local values through UTC", () => {
    const iso = localInputToIso("2026-03-04T05:06:07");
    expect(iso).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(isoToLocalInput(iso)).toBe("2026-03-04T05:06:07");
    expect(isoToLocalInput(localInputToIso("2026-03-04T05:06"))).toBe("2026-03-04T05:06:00");
    expect(localInputToIso("")).toBe("");
    expect(isoToLocalInput("garbage")).toBe("");
  });
});

describe("labels and JSON", () => {
  it("describes events", () => {
    expect(eventLabel({ method: "tools/call", tool: "search", kind: "request" })).toBe("tools/call search");
    expect(eventLabel({ method: "resources/read", tool: null, resource_uri: "file:///a", kind: "request" })).toBe(
      "resources/read file:///a",
    );
    expect(eventLabel({ method: null, tool: null, kind: "response" })).toBe("(response)");
    expect(eventLabel({ method: "ping", tool: null, kind: "request" })).toBe("ping");
  });

  it("renders JSON pretty or compact", () => {
    expect(jsonText({ a: [1, 2] }, true)).toBe('{\n  "a": [\n    1,\n    2\n  ]\n}');
    expect(jsonText({ a: [1, 2] }, false)).toBe('{"a":[1,2]}');
    expect(jsonText("<img src=x onerror=alert(1)>", true)).toBe('"<img src=x onerror=alert(1)>"');
    expect(jsonText(undefined, true)).toBe("");
  });
});

describe("one time format, local or UTC", () => {
  const iso = "2026-11-27T22:34:35.123456Z";
  it("shows date, time and zone in UTC when asked, and remembers it", () => {
    setZoneMode("utc");
    try {
      expect(getZoneMode()).toBe("utc");
      expect(formatDateTime(iso)).toBe("2026-11-27 22:34:35 UTC");
      expect(formatClock(iso)).toBe("22:34:35.123");
      expect(formatNs(Date.UTC(2026, 0, 2, 3, 4, 5) * 1e6)).toBe("2026-01-02 03:04:05 UTC");
      expect(formatAxisTime(Date.UTC(2026, 0, 2, 3, 4) / 1000, true)).toBe("01-02 03:04");
      expect(isoToLocalInput(iso)).toBe("2026-11-27T22:34:35");
      expect(localInputToIso("2026-11-27T22:34:35")).toBe("2026-11-27T22:34:35Z");
      expect(globalThis.localStorage.getItem("km_time_zone")).toBe("utc");
    } finally {
      setZoneMode("local");
    }
  });
  it("names the local zone on every full time and tells listeners about a switch", () => {
    const d = new Date(Date.parse(iso));
    const text = formatDateTime(iso);
    expect(text.startsWith(`${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`)).toBe(true);
    expect(text.endsWith(` ${zoneName(d.getTime())}`)).toBe(true);
    expect(zoneName(d.getTime())).not.toBe("");
    let calls = 0;
    const off = onZoneModeChange(() => calls++);
    setZoneMode("utc");
    setZoneMode("local");
    off();
    setZoneMode("utc");
    setZoneMode("local");
    expect(calls).toBe(2);
    expect(formatDateTime("not a time")).toBe("not a time");
    expect(formatDateTime(null)).toBe(DASH);
  });
});

describe("plural", () => {
  it("agrees the noun with the count", () => {
    expect(plural(1, "call")).toBe("1 call");
    expect(plural(0, "call")).toBe("0 calls");
    expect(plural(13, "error")).toBe("13 errors");
    expect(plural(1200, "entry", "entries")).toBe("1,200 entries");
  });
});
