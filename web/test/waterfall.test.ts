import { describe, expect, it } from "vitest";
import { buildWaterfall, layoutBar, timelineSpan } from "../src/lib/waterfall";
import type { KmEvent } from "../src/types";

let n = 0;
function event(over: Partial<KmEvent>): KmEvent {
  return {
    id: `e${++n}`,
    session_id: "s",
    ts: "2026-01-01T00:00:00.000000Z",
    direction: "client_to_server",
    kind: "request",
    jsonrpc_id: 1,
    method: "tools/call",
    tool: null,
    resource_uri: null,
    prompt_name: null,
    latency_ms: null,
    size_bytes: 10,
    is_error: false,
    error: null,
    truncated: false,
    request_event_id: null,
    payload: null,
    ...over,
  };
}

const T0 = Date.UTC(2026, 0, 1) * 1000;

describe("buildWaterfall", () => {
  it("pairs responses with requests by request_event_id (any input order)", () => {
    const req = event({ id: "r1", ts: "2026-01-01T00:00:01.000000Z", tool: "search" });
    const resp = event({
      id: "p1",
      kind: "response",
      direction: "server_to_client",
      ts: "2026-01-01T00:00:01.250000Z",
      latency_ms: 250,
      request_event_id: "r1",
    });
    const note = event({
      id: "n1",
      kind: "notification",
      method: "notifications/initialized",
      ts: "2026-01-01T00:00:00.500000Z",
    });
    const rows = buildWaterfall([resp, req, note]); // newest first, as the API returns
    expect(rows.map((r) => r.eventId)).toEqual(["n1", "r1"]);
    const call = rows[1]!;
    expect(call).toMatchObject({
      responseId: "p1",
      label: "tools/call search",
      latencyMs: 250,
      type: "call",
      isError: false,
    });
    expect(call.start).toBe(T0 + 1_000_000);
    expect(call.end).toBe(T0 + 1_250_000);
    expect(rows[0]!.type).toBe("notification");
  });

  it("marks errors and pending calls", () => {
    const req = event({ id: "r1" });
    const err = event({
      id: "x1",
      kind: "error",
      request_event_id: "r1",
      ts: "2026-01-01T00:00:00.010000Z",
      latency_ms: 10,
    });
    const pending = event({ id: "r2", ts: "2026-01-01T00:00:00.020000Z" });
    const rows = buildWaterfall([req, err, pending]);
    expect(rows[0]).toMatchObject({ eventId: "r1", isError: true });
    expect(rows[1]).toMatchObject({ eventId: "r2", end: null, latencyMs: null });
  });

  it("keeps orphan responses, starting them latency_ms earlier", () => {
    const orphan = event({
      id: "o1",
      kind: "response",
      request_event_id: "gone",
      ts: "2026-01-01T00:00:02.000000Z",
      latency_ms: 500,
    });
    const [row] = buildWaterfall([orphan]);
    expect(row).toMatchObject({ type: "response", eventId: "o1", start: T0 + 1_500_000, end: T0 + 2_000_000 });
  });

  it("skips events with unparseable times", () => {
    expect(buildWaterfall([event({ ts: "bad" })])).toEqual([]);
  });
});

describe("layout", () => {
  it("spans the session and widens to the rows", () => {
    const rows = buildWaterfall([event({ ts: "2026-01-01T00:00:05.000000Z" })]);
    expect(timelineSpan(rows, T0, T0 + 2_000_000)).toEqual([T0, T0 + 5_000_000]);
    expect(timelineSpan([], null, null)).toEqual([0, 1]);
    expect(timelineSpan(rows, null, null)).toEqual([T0 + 5_000_000, T0 + 5_001_000]);
  });

  it("places bars in percent of the span", () => {
    const span: [number, number] = [0, 1000];
    const base = {
      eventId: "a",
      responseId: null,
      label: "",
      latencyMs: null,
      isError: false,
      type: "call" as const,
      direction: "client_to_server" as const,
    };
    expect(layoutBar({ ...base, start: 250, end: 500 }, span)).toEqual({ left: 25, width: 25 });
    expect(layoutBar({ ...base, start: 500, end: null }, span)).toEqual({ left: 50, width: 50 });
    expect(layoutBar({ ...base, start: 300, end: 300 }, span)).toEqual({ left: 30, width: 0.4 });
    expect(layoutBar({ ...base, start: 1000, end: 1000 }, span)).toEqual({ left: 99.6, width: 0.4 });
    expect(layoutBar({ ...base, start: -50, end: 2000 }, span)).toEqual({ left: 0, width: 100 });
  });
});
