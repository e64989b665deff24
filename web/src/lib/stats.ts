// Time ranges for the stats pages and the turning of a sparse `series` into chart columns.

import type { Bucket, StatGroup, Stats, StatsPoint } from "../types";

export const RANGE_KEYS = ["15m", "1h", "24h", "7d"] as const;
export type RangeKey = (typeof RANGE_KEYS)[number];
export const DEFAULT_RANGE: RangeKey = "1h";

export const RANGES: Record<RangeKey, { label: string; ms: number; bucket: Bucket }> = {
  "15m": { label: "15 min", ms: 15 * 60_000, bucket: "minute" },
  "1h": { label: "1 hour", ms: 3_600_000, bucket: "minute" },
  "24h": { label: "24 hours", ms: 24 * 3_600_000, bucket: "hour" },
  "7d": { label: "7 days", ms: 7 * 24 * 3_600_000, bucket: "hour" },
};

export function parseRange(value: string | null | undefined): RangeKey {
  return (RANGE_KEYS as readonly string[]).includes(value ?? "") ? (value as RangeKey) : DEFAULT_RANGE;
}

export const BUCKET_MINUTES: Record<Bucket, number> = { minute: 1, hour: 60, day: 1440 };

/** The since/until/bucket query of GET /api/v1/stats for a range ending at `nowMs`. */
export function rangeQuery(key: RangeKey, nowMs: number): { since: string; until: string; bucket: Bucket } {
  const r = RANGES[key];
  return {
    since: new Date(nowMs - r.ms).toISOString(),
    until: new Date(nowMs).toISOString(),
    bucket: r.bucket,
  };
}

export interface Columns {
  /** Bucket starts in seconds since the epoch (uPlot's time unit). */
  xs: number[];
  /** The point of each bucket, null where the server had no data. */
  points: (StatsPoint | null)[];
}

/**
 * Every bucket from `since` to `until` (the server only returns buckets with data), so
 * that quiet periods show as zero instead of being bridged by a line.
 */
export function fillSeries(stats: Pick<Stats, "since" | "until" | "bucket" | "series">): Columns {
  const width = BUCKET_MINUTES[stats.bucket] ?? 60;
  const sinceMin = Math.floor(stats.since / 60e9);
  const untilMin = Math.floor((stats.until - 1) / 60e9);
  const first = Math.floor(sinceMin / width) * width;
  const last = Math.floor(untilMin / width) * width;
  const byMinute = new Map(stats.series.map((p) => [p.minute, p]));
  const xs: number[] = [];
  const points: (StatsPoint | null)[] = [];
  const maxBuckets = 5000;
  for (let m = first; m <= last && xs.length < maxBuckets; m += width) {
    xs.push(m * 60);
    points.push(byMinute.get(m) ?? null);
  }
  // Points outside the computed window (clock skew) are still shown, in order.
  for (const p of stats.series) {
    if (p.minute < first || p.minute > last) {
      xs.push(p.minute * 60);
      points.push(p);
    }
  }
  if (xs.length > 1) {
    const order = xs.map((_, i) => i).sort((a, b) => xs[a]! - xs[b]!);
    return { xs: order.map((i) => xs[i]!), points: order.map((i) => points[i]!) };
  }
  return { xs, points };
}

/** A count column: missing buckets are 0. */
export function countColumn(
  points: readonly (StatsPoint | null)[],
  pick: (p: StatGroup) => number | undefined,
): number[] {
  return points.map((p) => (p ? (pick(p) ?? 0) : 0));
}

/** A measurement column (latency): missing buckets are gaps (null). */
export function valueColumn(
  points: readonly (StatsPoint | null)[],
  pick: (p: StatGroup) => number | null | undefined,
): (number | null)[] {
  return points.map((p) => (p ? (pick(p) ?? null) : null));
}

/** Events per minute over a range. */
export function perMinute(count: number, rangeMs: number): number {
  return rangeMs > 0 ? count / (rangeMs / 60_000) : 0;
}

export const RECENT_MINUTES = 5;

/**
 * Events per minute over the last few minutes before `untilMs` (minute buckets), the current rate;
 * null when the buckets are coarser (the caller shows the range's average instead).
 */
export function recentPerMinute(stats: Stats, untilMs: number, minutes = RECENT_MINUTES): number | null {
  if (stats.bucket !== "minute") return null;
  const end = Math.floor(untilMs / 60_000);
  const start = end - minutes;
  let events = 0;
  for (const p of stats.series) if (p.minute >= start && p.minute < end) events += p.events;
  return events / minutes;
}

/** Rows sorted by calls (then events), largest first. */
export function topByCalls<T extends StatGroup>(rows: readonly T[], n = 10): T[] {
  return [...rows].sort((a, b) => b.calls - a.calls || b.events - a.events).slice(0, n);
}

/** Indices of values with no neighbour on either side: a line cannot show them, a dot can. */
export function isolatedIndices(values: ArrayLike<number | null | undefined>): number[] {
  const out: number[] = [];
  const has = (i: number) => i >= 0 && i < values.length && values[i] !== null && values[i] !== undefined;
  for (let i = 0; i < values.length; i++) {
    if (has(i) && !has(i - 1) && !has(i + 1)) out.push(i);
  }
  return out;
}
