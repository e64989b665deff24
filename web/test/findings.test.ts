import { describe, expect, it } from "vitest";
import {
  anchoredEvent,
  EMPTY_FINDING_FILTERS,
  eventAnchor,
  findingFiltersFromSearch,
  findingFiltersToSearch,
  findingHref,
  findingQuery,
  findingsPath,
  narrowToGroup,
  severityBreakdown,
} from "../src/lib/findings";
import { meetsFloor, riskFloor } from "../src/lib/query";

describe("finding filters <-> query string", () => {
  it("reads every field", () => {
    const f = findingFiltersFromSearch(
      "?min_severity=high&rule=secret.*&server=file*&session_id=s1&tool=run&since=2026-01-01T00%3A00%3A00Z&until=2026-01-02T00%3A00%3A00Z&sort=severity&group=server",
    );
    expect(f).toEqual({
      min_severity: "high",
      rule: "secret.*",
      server: "file*",
      session_id: "s1",
      tool: "run",
      since: "2026-01-01T00:00:00Z",
      until: "2026-01-02T00:00:00Z",
      sort: "severity",
      group: "server",
    });
    expect(findingFiltersFromSearch(findingFiltersToSearch(f))).toEqual(f);
  });

  it("ignores invalid values and leaves defaults out of the URL", () => {
    const f = findingFiltersFromSearch("?min_severity=severe&sort=rule&group=tool&foo=1");
    expect(f).toEqual(EMPTY_FINDING_FILTERS);
    expect(findingFiltersToSearch(f)).toBe("");
    expect(findingFiltersToSearch({ ...f, sort: "oldest" })).toBe("?sort=oldest");
  });

  it("trims and bounds text", () => {
    const f = findingFiltersFromSearch(`?rule=${"x".repeat(500)}&server=%20fs%20`);
    expect(f.rule).toHaveLength(200);
    expect(f.server).toBe("fs");
  });

  it("maps to the API's parameters without the page's grouping and order", () => {
    const f = { ...EMPTY_FINDING_FILTERS, rule: " danger.shell ", group: "rule" as const, sort: "oldest" as const };
    expect(findingQuery(f)).toEqual({
      min_severity: undefined,
      rule: "danger.shell",
      server: undefined,
      session_id: undefined,
      tool: undefined,
      since: undefined,
      until: undefined,
    });
  });

  it("narrows to a group's rule or server and ungroups", () => {
    const byRule = { ...EMPTY_FINDING_FILTERS, group: "rule" as const, min_severity: "high" as const };
    expect(narrowToGroup(byRule, "secret.aws")).toEqual({ ...byRule, rule: "secret.aws", group: "" });
    const byServer = { ...EMPTY_FINDING_FILTERS, group: "server" as const };
    expect(narrowToGroup(byServer, "fs")).toEqual({ ...byServer, server: "fs", group: "" });
    expect(narrowToGroup(EMPTY_FINDING_FILTERS, "x")).toEqual(EMPTY_FINDING_FILTERS);
  });

  it("builds links to the page", () => {
    expect(findingsPath("/findings", { session_id: "abc", rule: "a&b" })).toBe("/findings?rule=a%26b&session_id=abc");
    expect(findingsPath("/findings", {})).toBe("/findings");
  });
});

describe("event anchors", () => {
  it("round-trips an event id through the fragment", () => {
    const id = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    expect(findingHref("/sessions/s1", id)).toBe(`/sessions/s1#event-${id}`);
    expect(anchoredEvent(`#${eventAnchor(id)}`)).toBe(id);
  });

  it("refuses anything else", () => {
    expect(anchoredEvent("")).toBeNull();
    expect(anchoredEvent("#event-")).toBeNull();
    expect(anchoredEvent("#event-a b")).toBeNull();
    expect(anchoredEvent("#event-<img>")).toBeNull();
    expect(anchoredEvent("#other-abc")).toBeNull();
  });
});

describe("severities", () => {
  it("lists the counted severities, the highest first", () => {
    expect(severityBreakdown({ info: 1, low: 0, medium: 2, high: 0, critical: 3 })).toEqual([
      ["critical", 3],
      ["medium", 2],
      ["info", 1],
    ]);
    expect(severityBreakdown({})).toEqual([]);
  });

  it("reads a minimum risk level and compares levels to it", () => {
    expect(riskFloor("high")).toBe("high");
    expect(riskFloor("none")).toBe("");
    expect(riskFloor(null)).toBe("");
    expect(riskFloor("HIGH")).toBe("");
    expect(meetsFloor("critical", "high")).toBe(true);
    expect(meetsFloor("high", "high")).toBe(true);
    expect(meetsFloor("medium", "high")).toBe(false);
    expect(meetsFloor(undefined, "low")).toBe(false);
    expect(meetsFloor("bogus", "low")).toBe(false);
    expect(meetsFloor(undefined, "")).toBe(true);
  });
});
