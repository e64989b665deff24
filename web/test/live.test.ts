import { describe, expect, it } from "vitest";
import { LiveFeed, liveUrl, parseLagged, parseLiveEvent, pausedWaitingText, skippedText } from "../src/lib/live";
import { EMPTY_FILTERS } from "../src/lib/query";
import type { KmEvent } from "../src/types";

const sample = {
  id: "0190a0b1-0000-7000-8000-000000000001",
  session_id: "0190a0b1-0000-7000-8000-0000000000aa",
  ts: "2026-11-27T22:34:35.123456Z",
  direction: "client_to_server",
  kind: "request",
  jsonrpc_id: 7,
  method: "tools/call",
  tool: "search",
  resource_uri: null,
  prompt_name: null,
  latency_ms: null,
  size_bytes: 120,
  is_error: false,
  error: null,
  truncated: false,
  request_event_id: null,
  payload: { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "search" } },
};

function ev(n: number): KmEvent {
  return parseLiveEvent(JSON.stringify({ ...sample, id: `id-${n}` }))!;
}

describe("parseLiveEvent", () => {
  it("parses an Event", () => {
    const e = parseLiveEvent(JSON.stringify(sample));
    expect(e).not.toBeNull();
    expect(e!.id).toBe(sample.id);
    expect(e!.tool).toBe("search");
    expect(e!.payload).toEqual(sample.payload);
    expect(e!.risk).toBeUndefined();
  });

  it("rejects non-events", () => {
    expect(parseLiveEvent("")).toBeNull();
    expect(parseLiveEvent("not json")).toBeNull();
    expect(parseLiveEvent("[]")).toBeNull();
    expect(parseLiveEvent("null")).toBeNull();
    expect(parseLiveEvent(JSON.stringify({ ...sample, id: 5 }))).toBeNull();
    expect(parseLiveEvent(JSON.stringify({ ...sample, kind: "<b>" }))).toBeNull();
    const { ts: _ts, ...noTs } = sample;
    expect(parseLiveEvent(JSON.stringify(noTs))).toBeNull();
  });

  it("normalises field types so renderers only see strings where strings belong", () => {
    const e = parseLiveEvent(
      JSON.stringify({
        ...sample,
        method: { toString: 1 },
        tool: ["x"],
        latency_ms: "12",
        size_bytes: "9",
        is_error: "yes",
      }),
    )!;
    expect(e.method).toBeNull();
    expect(e.tool).toBeNull();
    expect(e.latency_ms).toBeNull();
    expect(e.size_bytes).toBe(0);
    expect(e.is_error).toBe(false);
  });

  it("keeps hostile strings as plain data", () => {
    const e = parseLiveEvent(JSON.stringify({ ...sample, tool: "<img src=x onerror=alert(1)>" }))!;
    expect(e.tool).toBe("<img src=x onerror=alert(1)>");
  });

  it("reads risk findings", () => {
    const e = parseLiveEvent(
      JSON.stringify({
        ...sample,
        risk: {
          score: 70,
          level: "high",
          findings: [{ rule: "secret.aws", severity: "high", path: "/params", message: "m" }, 3],
        },
      }),
    )!;
    expect(e.risk).toEqual({
      score: 70,
      level: "high",
      findings: [{ rule: "secret.aws", severity: "high", path: "/params", message: "m" }],
    });
  });
});

describe("liveUrl", () => {
  it("carries the filters but not time bounds", () => {
    expect(liveUrl(EMPTY_FILTERS)).toBe("/api/v1/live");
    expect(liveUrl({ ...EMPTY_FILTERS, tool: "t", errors: true, since: "2026-01-01T00:00:00Z" })).toBe(
      "/api/v1/live?tool=t&errors=true",
    );
  });
});

describe("LiveFeed", () => {
  it("drains newest first", () => {
    const f = new LiveFeed(10);
    f.push(ev(1));
    f.push(ev(2));
    f.push(ev(3));
    expect(f.drain().map((e) => e.id)).toEqual(["id-3", "id-2", "id-1"]);
    expect(f.drain()).toEqual([]);
    expect(f.received).toBe(3);
  });

  it("never hands over more than the cap", () => {
    const f = new LiveFeed(5);
    for (let i = 0; i < 1000; i++) f.push(ev(i));
    const out = f.drain();
    expect(out).toHaveLength(5);
    expect(out[0]!.id).toBe("id-999");
    expect(out[4]!.id).toBe("id-995");
    expect(f.received).toBe(1000);
  });

  it("keeps memory bounded", () => {
    const f = new LiveFeed(100);
    for (let i = 0; i < 10_000; i++) f.push(ev(i));
    expect(f.pendingCount).toBeLessThanOrEqual(200);
  });

  it("counts what arrives while paused and releases it on resume", () => {
    const f = new LiveFeed(10);
    f.push(ev(1));
    f.pause();
    expect(f.bufferedCount).toBe(0);
    f.push(ev(2));
    f.push(ev(3));
    expect(f.drain()).toEqual([]);
    expect(f.bufferedCount).toBe(2);
    f.resume();
    expect(f.bufferedCount).toBe(0);
    expect(f.drain().map((e) => e.id)).toEqual(["id-3", "id-2", "id-1"]);
  });
});

describe("lagged messages and the paused list", () => {
  it("reads the number of skipped events, and nothing else", () => {
    expect(parseLagged("12")).toBe(12);
    expect(parseLagged(" 3 ")).toBe(3);
    for (const bad of ["", "0", "-4", "1.5", "12abc", "<b>1</b>", "9".repeat(40)]) expect(parseLagged(bad)).toBe(0);
  });

  it("adds up skipped events in the feed", () => {
    const feed = new LiveFeed(10);
    feed.lagged(parseLagged("5"));
    feed.lagged(parseLagged("7"));
    expect(feed.skipped).toBe(12);
    expect(skippedText(feed.skipped)).toBe("12 events were skipped because this tab fell behind");
    expect(skippedText(1)).toBe("1 event was skipped because this tab fell behind");
    expect(skippedText(0)).toBeNull();
  });

  it("says how many events wait while paused", () => {
    expect(pausedWaitingText(true, 4014)).toBe("Paused: 4,014 new events are waiting. Resume to show them.");
    expect(pausedWaitingText(true, 1)).toBe("Paused: 1 new event is waiting. Resume to show it.");
    expect(pausedWaitingText(true, 0)).toBeNull();
    expect(pausedWaitingText(false, 12)).toBeNull();
  });
});
