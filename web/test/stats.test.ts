import { describe, expect, it } from "vitest";
import {
  countColumn,
  fillSeries,
  isolatedIndices,
  parseRange,
  perMinute,
  recentPerMinute,
  rangeQuery,
  topByCalls,
  valueColumn,
} from "../src/lib/stats";
import type { StatGroup, StatsPoint } from "../src/types";

const group = (over: Partial<StatGroup> = {}): StatGroup => ({
  events: 0,
  calls: 0,
  errors: 0,
  error_rate: 0,
  bytes: 0,
  latency_avg_ms: null,
  p50_ms: null,
  p95_ms: null,
  p99_ms: null,
  ...over,
});
const point = (minute: number, over: Partial<StatGroup> = {}): StatsPoint => ({ minute, ...group(over) });
const NS_PER_MIN = 60e9;

describe("ranges", () => {
  it("parses range keys with a default", () => {
    expect(parseRange("24h")).toBe("24h");
    expect(parseRange("bogus")).toBe("1h");
    expect(parseRange(null)).toBe("1h");
  });

  it("builds the stats query", () => {
    const now = Date.UTC(2026, 0, 1, 12);
    expect(rangeQuery("15m", now)).toEqual({
      since: "2026-01-01T11:45:00.000Z",
      until: "2026-01-01T12:00:00.000Z",
      bucket: "minute",
    });
    expect(rangeQuery("7d", now).bucket).toBe("hour");
    expect(rangeQuery("24h", now).since).toBe("2025-12-31T12:00:00.000Z");
  });

  it("computes events per minute", () => {
    expect(perMinute(300, 15 * 60_000)).toBe(20);
    expect(perMinute(5, 0)).toBe(0);
  });
});

describe("fillSeries", () => {
  it("fills every minute bucket between since and until", () => {
    const since = 1000 * NS_PER_MIN;
    const until = 1005 * NS_PER_MIN;
    const cols = fillSeries({
      since,
      until,
      bucket: "minute",
      series: [point(1001, { events: 3 }), point(1003, { events: 1 })],
    });
    expect(cols.xs).toEqual([1000, 1001, 1002, 1003, 1004].map((m) => m * 60));
    expect(countColumn(cols.points, (p) => p.events)).toEqual([0, 3, 0, 1, 0]);
    expect(valueColumn(cols.points, (p) => p.p95_ms)).toEqual([null, null, null, null, null]);
  });

  it("aligns hour buckets", () => {
    const since = 90 * NS_PER_MIN; // 01:30
    const until = 240 * NS_PER_MIN; // 04:00
    const cols = fillSeries({ since, until, bucket: "hour", series: [point(120, { p95_ms: 12 })] });
    expect(cols.xs).toEqual([60, 120, 180].map((m) => m * 60));
    expect(valueColumn(cols.points, (p) => p.p95_ms)).toEqual([null, 12, null]);
  });

  it("keeps points outside the window, in order", () => {
    const cols = fillSeries({
      since: 10 * NS_PER_MIN,
      until: 12 * NS_PER_MIN,
      bucket: "minute",
      series: [point(5, { events: 1 })],
    });
    expect(cols.xs).toEqual([300, 600, 660]);
    expect(countColumn(cols.points, (p) => p.events)).toEqual([1, 0, 0]);
  });
});

describe("topByCalls", () => {
  it("sorts by calls then events and limits", () => {
    const rows = [
      { name: "a", ...group({ calls: 1, events: 9 }) },
      { name: "b", ...group({ calls: 5 }) },
      { name: "c", ...group({ calls: 1, events: 10 }) },
    ];
    expect(topByCalls(rows).map((r) => r.name)).toEqual(["b", "c", "a"]);
    expect(topByCalls(rows, 1).map((r) => r.name)).toEqual(["b"]);
  });
});

describe("isolatedIndices", () => {
  it("finds values with gaps on both sides", () => {
    expect(isolatedIndices([1, null, 2, 3, null, 4])).toEqual([0, 5]);
    expect(isolatedIndices([null, 5, null])).toEqual([1]);
    expect(isolatedIndices([1, 2])).toEqual([]);
    expect(isolatedIndices([])).toEqual([]);
  });
});

describe("recentPerMinute", () => {
  const point = (minute: number, events: number) => ({ minute, events }) as unknown as StatsPoint;
  const stats = (bucket: "minute" | "hour", series: StatsPoint[]) =>
    ({ bucket, series }) as unknown as Parameters<typeof recentPerMinute>[0];
  it("is the rate of the last five complete minutes, not the range's average", () => {
    const now = 1000 * 60_000 + 30_000; // half-way through minute 1000
    const s = stats("minute", [point(900, 6000), point(995, 10), point(999, 5), point(1000, 99)]);
    expect(recentPerMinute(s, now)).toBe(3); // minutes 995..999: 15 events / 5
  });
  it("is null for hourly buckets", () => {
    expect(recentPerMinute(stats("hour", [point(0, 5)]), 60_000)).toBeNull();
  });
});
