import { describe, expect, it } from "vitest";
import {
  EMPTY_FILTERS,
  filtersEqual,
  filtersFromSearch,
  filtersToSearch,
  hasFilters,
  liveFilters,
  toQueryString,
} from "../src/lib/query";

describe("toQueryString", () => {
  it("drops empty values and encodes the rest", () => {
    expect(toQueryString({})).toBe("");
    expect(toQueryString({ a: "", b: null, c: undefined, d: false })).toBe("");
    expect(toQueryString({ tool: "a b&c", errors: true, limit: 5 })).toBe("?tool=a+b%26c&errors=true&limit=5");
  });
});

describe("filters <-> query string", () => {
  it("reads every field", () => {
    const f = filtersFromSearch(
      "?session_id=s1&method=tools%2Fcall&tool=search&kind=error&errors=1&q=hello+world&since=2026-01-01T00%3A00%3A00Z&until=2026-01-02T00%3A00%3A00Z",
    );
    expect(f).toEqual({
      session_id: "s1",
      method: "tools/call",
      tool: "search",
      kind: "error",
      errors: true,
      q: "hello world",
      since: "2026-01-01T00:00:00Z",
      until: "2026-01-02T00:00:00Z",
      min_level: "",
    });
  });

  it("round-trips", () => {
    const f = { ...EMPTY_FILTERS, tool: "read_file", kind: "request" as const, errors: true, q: "<script>" };
    const qs = filtersToSearch(f);
    expect(qs).toBe("?tool=read_file&kind=request&errors=true&q=%3Cscript%3E");
    expect(filtersFromSearch(qs)).toEqual(f);
  });

  it("ignores unknown keys and invalid values", () => {
    const f = filtersFromSearch("?kind=bogus&errors=maybe&foo=bar");
    expect(f).toEqual(EMPTY_FILTERS);
    expect(hasFilters(f)).toBe(false);
  });

  it("trims and bounds text", () => {
    const f = filtersFromSearch(`?tool=${"x".repeat(900)}&method=%20ping%20`);
    expect(f.tool).toHaveLength(500);
    expect(f.method).toBe("ping");
  });

  it("is empty for empty filters and keeps a stable order", () => {
    expect(filtersToSearch(EMPTY_FILTERS)).toBe("");
    const a = filtersFromSearch("?q=x&tool=t");
    const b = filtersFromSearch("?tool=t&q=x");
    expect(filtersEqual(a, b)).toBe(true);
    expect(filtersToSearch(a)).toBe("?tool=t&q=x");
  });

  it("adds extra params after the filters", () => {
    expect(filtersToSearch({ ...EMPTY_FILTERS, tool: "t" }, { range: "1h" })).toBe("?tool=t&range=1h");
  });

  it("carries a minimum risk level (and ignores one that is not a level)", () => {
    const f = filtersFromSearch("?tool=t&min_level=high");
    expect(f.min_level).toBe("high");
    expect(filtersToSearch(f)).toBe("?tool=t&min_level=high");
    expect(liveFilters(f).min_level).toBe("high");
    expect(filtersFromSearch("?min_level=none").min_level).toBe("");
    expect(filtersFromSearch("?min_level=%3Cscript%3E").min_level).toBe("");
  });

  it("drops time bounds for the live stream", () => {
    const f = filtersFromSearch("?tool=t&since=2026-01-01T00:00:00Z");
    expect(liveFilters(f).since).toBe("");
    expect(liveFilters(f).tool).toBe("t");
  });
});
