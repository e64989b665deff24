import { describe, expect, it } from "vitest";
import {
  answerBody,
  buildInspectorRows,
  centerSpan,
  contentParts,
  density,
  firstRowAt,
  imageSrc,
  readSession,
  requestArguments,
  rowMatcher,
  zoomSpan,
} from "../src/lib/inspector";
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

const at = (ms: number) =>
  `2026-01-01T00:00:${String(Math.floor(ms / 1000)).padStart(2, "0")}.${String(ms % 1000).padStart(3, "0")}000Z`;

function call(id: number, ms: number, over: Partial<KmEvent> = {}, answerOver: Partial<KmEvent> = {}) {
  const req = event({
    id: `req${id}`,
    jsonrpc_id: id,
    ts: at(ms),
    tool: "search",
    payload: { jsonrpc: "2.0", id, method: "tools/call", params: { name: "search", arguments: { q: `x${id}` } } },
    ...over,
  });
  const resp = event({
    id: `resp${id}`,
    kind: "response",
    direction: "server_to_client",
    jsonrpc_id: id,
    method: "tools/call",
    ts: at(ms + 5),
    latency_ms: 5,
    size_bytes: 30,
    request_event_id: req.id,
    payload: { jsonrpc: "2.0", id, result: { content: [{ type: "text", text: `found ${id}` }] } },
    ...answerOver,
  });
  return [req, resp];
}

describe("buildInspectorRows", () => {
  it("makes one row per call with status, size and the request's method and tool", () => {
    const [req, resp] = call(1, 0);
    const [req2] = call(2, 10);
    const failed = call(
      3,
      20,
      {},
      { kind: "error", is_error: true, payload: { jsonrpc: "2.0", id: 3, error: { code: -1, message: "no" } } },
    );
    const rows = buildInspectorRows([resp!, req!, req2!, ...failed]);
    expect(rows.map((r) => [r.eventId, r.responseId, r.status, r.size])).toEqual([
      ["req1", "resp1", "ok", 40],
      ["req2", null, "pending", 10],
      ["req3", "resp3", "error", 40],
    ]);
    expect(rows[0]).toMatchObject({ method: "tools/call", tool: "search", index: 0 });
  });

  it("links progress notifications by progressToken and cancellations by requestId", () => {
    const [req, resp] = call(7, 0, {
      payload: { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "s", _meta: { progressToken: "t" } } },
    });
    const progress = event({
      kind: "notification",
      direction: "server_to_client",
      method: "notifications/progress",
      jsonrpc_id: null,
      ts: at(2),
      payload: { method: "notifications/progress", params: { progressToken: "t", progress: 1 } },
    });
    const stranger = event({
      kind: "notification",
      direction: "server_to_client",
      method: "notifications/progress",
      ts: at(3),
      payload: { method: "notifications/progress", params: { progressToken: 7 } }, // a number, not "t"
    });
    const cancel = event({
      kind: "notification",
      method: "notifications/cancelled",
      ts: at(4),
      payload: { method: "notifications/cancelled", params: { requestId: 7 } },
    });
    const wrongSide = event({
      kind: "notification",
      direction: "server_to_client",
      method: "notifications/cancelled",
      ts: at(4),
      payload: { method: "notifications/cancelled", params: { requestId: 7 } },
    });
    const broken = event({ kind: "notification", method: "notifications/progress", ts: at(4), payload: "not json" });
    const rows = buildInspectorRows([req!, resp!, progress, stranger, cancel, wrongSide, broken]);
    const byId = new Map(rows.map((r) => [r.eventId, r]));
    expect(byId.get("req7")!.linked).toEqual([progress.id, cancel.id]);
    expect(byId.get(progress.id)!.linkedTo).toBe("req7");
    expect(byId.get(cancel.id)!.linkedTo).toBe("req7");
    expect(byId.get(stranger.id)!.linkedTo).toBeNull();
    expect(byId.get(wrongSide.id)!.linkedTo).toBeNull();
    expect(byId.get(broken.id)!.linkedTo).toBeNull();
  });
});

describe("rowMatcher", () => {
  const events = [
    ...call(1, 0),
    ...call(2, 10, {}, { payload: { result: { content: [{ type: "text", text: "Needle" }] } } }),
  ];
  const rows = buildInspectorRows(events);
  const byId = new Map(events.map((e) => [e.id, e]));
  it("matches every word in the label, status or either payload, case-insensitively", () => {
    expect(rows.filter(rowMatcher("", byId))).toHaveLength(2);
    expect(rows.filter(rowMatcher("needle", byId)).map((r) => r.eventId)).toEqual(["req2"]);
    expect(rows.filter(rowMatcher("x1", byId)).map((r) => r.eventId)).toEqual(["req1"]);
    expect(rows.filter(rowMatcher("SEARCH ok", byId))).toHaveLength(2);
    expect(rows.filter(rowMatcher("search nothing", byId))).toHaveLength(0);
  });
});

describe("the time window", () => {
  const full = [0, 1_000_000] as const;
  it("zooms around a point and stays within the session", () => {
    expect(zoomSpan(full, full, 0.5)).toEqual([250_000, 750_000]);
    expect(zoomSpan(full, full, 0.5, 0)).toEqual([0, 500_000]);
    expect(zoomSpan([0, 500_000], full, 4)).toEqual([0, 1_000_000]);
    expect(zoomSpan([0, 2000], full, 0.01)).toEqual([500, 1500]); // 1 ms at least, around the centre
    expect(zoomSpan([10, 20], [10, 20], 0.01)).toEqual([10, 20]); // never wider than the session
  });
  it("centres a window of the same width, clamped to the ends", () => {
    expect(centerSpan([0, 100], full, 500)).toEqual([450, 550]);
    expect(centerSpan([0, 100], full, 1_000_000)).toEqual([999_900, 1_000_000]);
    expect(centerSpan([500, 600], full, -5)).toEqual([0, 100]);
  });
  it("counts rows per slice and finds the first row at a time", () => {
    const rows = [{ start: 0 }, { start: 10 }, { start: 999_999 }, { start: 1_000_000 }];
    expect(density(rows, full, 4)).toEqual([2, 0, 0, 2]);
    expect(density(rows, [5, 5], 2)).toEqual([0, 0]);
    expect(firstRowAt(rows, 5)).toBe(1);
    expect(firstRowAt(rows, -1)).toBe(0);
    expect(firstRowAt(rows, 2_000_000)).toBe(4);
  });
});

describe("payload parts", () => {
  const png = "iVBORw0KGgo=";
  it("renders raster images from base64 and refuses anything else", () => {
    expect(imageSrc("image/png", png)).toBe(`data:image/png;base64,${png}`);
    expect(imageSrc("IMAGE/JPEG", `${png.slice(0, 4)}\n${png.slice(4)}`)).toBe(`data:image/jpeg;base64,${png}`);
    expect(imageSrc("image/svg+xml", png)).toBeNull();
    expect(imageSrc("text/html", png)).toBeNull();
    expect(imageSrc("image/png", "not base64!")).toBeNull();
    expect(imageSrc("image/png", "abc")).toBeNull();
    expect(imageSrc("image/png", '"><script>')).toBeNull();
    expect(imageSrc("image/png", "")).toBeNull();
    expect(imageSrc(null, png)).toBeNull();
  });
  it("splits a result into text, images and the rest", () => {
    const parts = contentParts({
      result: {
        content: [
          { type: "text", text: "a\nb" },
          { type: "image", data: png, mimeType: "image/png" },
          { type: "image", data: png, mimeType: "image/svg+xml" },
          { type: "resource", resource: { uri: "file:///x" } },
        ],
      },
    });
    expect(parts).toEqual([
      { type: "text", text: "a\nb" },
      { type: "image", src: `data:image/png;base64,${png}`, mimeType: "image/png" },
      { type: "other", value: { type: "image", data: png, mimeType: "image/svg+xml" } },
      { type: "other", value: { type: "resource", resource: { uri: "file:///x" } } },
    ]);
    expect(contentParts({ result: { messages: [{ role: "user", content: { type: "text", text: "hi" } }] } })).toEqual([
      { type: "text", text: "hi" },
    ]);
    expect(contentParts({ result: { tools: [] } })).toBeNull();
    expect(contentParts("text")).toBeNull();
    expect(contentParts(null)).toBeNull();
  });
  it("takes a call's arguments and an answer's result or error", () => {
    const [req, resp] = call(1, 0);
    expect(requestArguments(req)).toEqual({ q: "x1" });
    expect(requestArguments(event({ payload: { params: { uri: "u" } } }))).toEqual({ uri: "u" });
    expect(requestArguments(event({ payload: { params: [1] } }))).toBeUndefined();
    expect(requestArguments(undefined)).toBeUndefined();
    expect(answerBody(resp)).toEqual({ content: [{ type: "text", text: "found 1" }] });
    expect(answerBody(event({ payload: { error: { code: 1 } } }))).toEqual({ code: 1 });
    expect(answerBody(event({ payload: "x" }))).toBeUndefined();
  });
});

describe("readSession", () => {
  const pages: Record<string, { items: KmEvent[]; next_cursor: string | null }> = {
    start: { items: [event({}), event({})], next_cursor: "a" },
    a: { items: [event({}), event({})], next_cursor: "b" },
    b: { items: [event({})], next_cursor: null },
  };
  it("reads page after page to the end, handing each on", async () => {
    const seen: number[] = [];
    const cursors: (string | null)[] = [];
    const capped = await readSession(
      async (c) => {
        cursors.push(c);
        return pages[c ?? "start"]!;
      },
      (items) => seen.push(items.length),
      100,
    );
    expect(cursors).toEqual([null, "a", "b"]);
    expect(seen).toEqual([2, 2, 1]);
    expect(capped).toBe(false);
  });
  it("stops at the cap and says so, and stops when aborted", async () => {
    const seen: number[] = [];
    expect(
      await readSession(
        async (c) => pages[c ?? "start"]!,
        (i) => seen.push(i.length),
        3,
      ),
    ).toBe(true);
    expect(seen).toEqual([2, 1]);
    const ctl = new AbortController();
    const got: number[] = [];
    const done = readSession(
      async (c) => {
        ctl.abort();
        return pages[c ?? "start"]!;
      },
      (i) => got.push(i.length),
      100,
      ctl.signal,
    );
    expect(await done).toBe(false);
    expect(got).toEqual([]);
  });
  it("passes a failed page on", async () => {
    await expect(
      readSession(
        async () => Promise.reject(new Error("HTTP 500")),
        () => undefined,
        10,
      ),
    ).rejects.toThrow("HTTP 500");
  });
});
