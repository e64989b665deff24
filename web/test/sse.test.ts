import { describe, expect, it } from "vitest";
import { launchToken, tokenFromHash } from "../src/api";
import { SseParser } from "../src/lib/sse";

describe("SseParser", () => {
  it("parses the live stream's messages and skips comments", () => {
    const p = new SseParser();
    expect(p.feed(': connected\n\nevent: event\ndata: {"id":1}\n\n: ping\n\n')).toEqual([
      { event: "event", data: '{"id":1}' },
    ]);
  });

  it("joins messages split across chunks, whatever the line ends", () => {
    const p = new SseParser();
    expect(p.feed("event: ev")).toEqual([]);
    expect(p.feed("ent\r\ndata: a\r")).toEqual([]);
    expect(p.feed("\ndata: b\r")).toEqual([]);
    expect(p.feed("\n\r\nevent: lagged\rdata:3\r\r")).toEqual([
      { event: "event", data: "a\nb" },
      { event: "lagged", data: "3" },
    ]);
  });

  it("names unnamed messages 'message' and drops empty ones", () => {
    const p = new SseParser();
    expect(p.feed("data\n\nevent: x\n\nretry: 5\nid: 1\ndata: y\n\n")).toEqual([
      { event: "message", data: "" },
      { event: "message", data: "y" },
    ]);
  });
});

describe("tokenFromHash", () => {
  it("takes km ui's token from the launch URL's fragment", () => {
    expect(tokenFromHash("#token=LsiAz6p7uMzgS3knSYv7Bugio0HxEFeyqKF3vqLEU6g")).toBe(
      "LsiAz6p7uMzgS3knSYv7Bugio0HxEFeyqKF3vqLEU6g",
    );
  });

  it("refuses anything that is not a token", () => {
    for (const hash of [
      "",
      "#",
      "#token=",
      "#token=short",
      "#other=LsiAz6p7uMzgS3knSYv7Bugio0",
      "#token=<img src=x>aaaaaaaaaaaaaaaa",
    ])
      expect(tokenFromHash(hash)).toBeNull();
  });
});

describe("launchToken", () => {
  const T = "LsiAz6p7uMzgS3knSYv7Bugio0HxEFeyqKF3vqLEU6g";
  const at = (path: string) => launchToken(new URL(path, "http://127.0.0.1:8765"));

  it("keeps the page a token link points to", () => {
    expect(at(`/#token=${T}`)).toEqual({ token: T, rest: "/" });
    expect(at(`/live?kind=request#token=${T}`)).toEqual({ token: T, rest: "/live?kind=request" });
    expect(at(`/live?token=${T}`)).toEqual({ token: T, rest: "/live" });
    expect(at(`/search?q=a+b&token=${T}&kind=request#ev`)).toEqual({ token: T, rest: "/search?q=a+b&kind=request#ev" });
  });

  it("drops a malformed token from the address without adopting it", () => {
    expect(at("/live?token=%3Cimg%3E")).toEqual({ token: null, rest: "/live" });
    expect(at("/live?token=a%26b%3Dcccccccccccccccccccccc")).toEqual({ token: null, rest: "/live" });
    expect(at("/#token=short")).toEqual({ token: null, rest: "/" });
  });

  it("leaves other addresses alone", () => {
    expect(at("/live?kind=request")).toBeNull();
    expect(at("/sessions#abc")).toBeNull();
  });
});
