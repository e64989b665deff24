import { describe, expect, it } from "vitest";
import { matchRoute, paths } from "../src/router";

describe("routes", () => {
  it("matches every page the server serves index.html for", () => {
    expect(matchRoute("/")).toEqual({ name: "overview" });
    expect(matchRoute("/overview")).toEqual({ name: "overview" });
    expect(matchRoute("/live")).toEqual({ name: "live" });
    expect(matchRoute("/sessions")).toEqual({ name: "sessions" });
    expect(matchRoute("/sessions/")).toEqual({ name: "sessions" });
    expect(matchRoute("/sessions/abc-123")).toEqual({ name: "session", id: "abc-123" });
    expect(matchRoute("/events/e%201")).toEqual({ name: "event", id: "e 1" });
    expect(matchRoute("/search")).toEqual({ name: "search" });
    expect(matchRoute("/analytics")).toEqual({ name: "analytics" });
    expect(matchRoute("/onboarding")).toEqual({ name: "onboarding" });
    expect(matchRoute("/settings")).toEqual({ name: "settings" });
    expect(matchRoute("/login")).toEqual({ name: "login" });
  });

  it("matches the Findings page", () => {
    expect(matchRoute("/findings")).toEqual({ name: "findings" });
    expect(paths.findings).toBe("/findings");
  });

  it("does not match anything else", () => {
    expect(matchRoute("/nope")).toEqual({ name: "notfound" });
    expect(matchRoute("/events/a/b")).toEqual({ name: "notfound" });
    expect(matchRoute("/events/%E0%A4%A")).toEqual({ name: "notfound" });
    expect(matchRoute("/events/a%2Fb")).toEqual({ name: "notfound" });
  });

  it("builds encoded paths that round-trip", () => {
    const id = "x/../<y>";
    expect(paths.event(id)).toBe("/events/x%2F..%2F%3Cy%3E");
    expect(matchRoute(paths.session("0190a0b1-0000-7000-8000-000000000001"))).toEqual({
      name: "session",
      id: "0190a0b1-0000-7000-8000-000000000001",
    });
  });
});
