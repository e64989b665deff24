import { describe, expect, it } from "vitest";
import { applyView, DEFAULT_VIEW, parseView, sessionStatus, viewQuery } from "../src/lib/sessions";
import type { KmSession } from "../src/types";

const NOW = Date.parse("2026-12-04T12:00:00Z");

function session(over: Partial<KmSession> & { id: string }): KmSession {
  return {
    name: null,
    transport: "stdio",
    started_at: "2026-12-04T11:00:00Z",
    ended_at: "2026-12-04T11:05:00Z",
    duration_ms: 300_000,
    command: ["npx", "server"],
    cwd: "/",
    pid: 1,
    exit_code: 0,
    client: { name: "claude-ai", version: "0.1.0" },
    server: { name: "filesystem" },
    protocol_version: null,
    capabilities: null,
    event_count: 10,
    error_count: 0,
    dropped_events: 0,
    risk: { events_with_findings: 0, max_score: 0, level: "none" },
    ...over,
  };
}

const ITEMS = [
  session({ id: "a", name: "filesystem", event_count: 5 }),
  session({
    id: "b",
    name: "mailer",
    client: { name: "cursor" },
    error_count: 2,
    started_at: "2026-12-04T11:50:00Z",
    ended_at: null,
    duration_ms: null,
  }),
  session({
    id: "c",
    name: "shell-tools",
    exit_code: 1,
    risk: { events_with_findings: 1, max_score: 90, level: "critical" },
    started_at: "2026-11-20T10:00:00Z",
    ended_at: "2026-11-20T10:01:00Z",
  }),
  session({ id: "d", name: "big", dropped_events: 3, event_count: 900 }),
];

const ids = (v: Partial<typeof DEFAULT_VIEW>) => applyView(ITEMS, { ...DEFAULT_VIEW, ...v }, NOW).map((s) => s.id);

describe("sessions view", () => {
  it("filters by server, client, status, errors and relative range", () => {
    expect(ids({ server: "MAIL" })).toEqual(["b"]);
    expect(ids({ client: "cursor" })).toEqual(["b"]);
    expect(ids({ status: "running" })).toEqual(["b"]);
    expect(ids({ status: "failed" })).toEqual(["c"]);
    expect(ids({ status: "partial" })).toEqual(["d"]);
    expect(ids({ errors: true })).toEqual(["b"]);
    expect(ids({ range: "24h" }).sort()).toEqual(["a", "b", "d"]);
    expect(ids({ range: "15m" })).toEqual(["b"]); // still running: active now
  });
  it("sorts by any column, both ways, stable", () => {
    expect(ids({})).toEqual(["b", "a", "d", "c"]); // newest first (a and d started together)
    expect(ids({ sort: "events", desc: true })).toEqual(["d", "b", "c", "a"]); // ties keep their order
    expect(ids({ sort: "risk", desc: true })[0]).toBe("c");
    expect(ids({ sort: "server", desc: false })).toEqual(["d", "a", "b", "c"]);
    expect(ids({ sort: "duration", desc: true })[0]).toBe("b"); // running: longest
  });
  it("round-trips through the URL and ignores bad values", () => {
    const v = {
      ...DEFAULT_VIEW,
      server: "x",
      status: "failed" as const,
      errors: true,
      range: "1h" as const,
      sort: "errors" as const,
      desc: false,
    };
    const q = new URLSearchParams(viewQuery(v) as Record<string, string>);
    for (const [k, val] of [...q]) if (val === "undefined") q.delete(k);
    expect(parseView("?" + q.toString())).toEqual(v);
    expect(parseView("?status=bogus&range=2y&sort=nope&dir=up")).toEqual(DEFAULT_VIEW);
  });
  it("names a session's status", () => {
    expect(ITEMS.map(sessionStatus)).toEqual(["ended", "running", "failed", "partial"]);
  });
});
