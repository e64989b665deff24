import { describe, expect, it } from "vitest";
import { radarSummary, type Radar, type RadarPeer } from "../src/components/Radar";

const peer = (role: "server" | "client", name: string, features: string[]): RadarPeer => ({
  role,
  name,
  versions: ["2025-11-25"],
  aliases: [],
  current: false,
  sessions: 1,
  last_seen: null,
  features: features.map((f) => ({ feature: f, label: f, status: "deprecated", sessions: 1, messages: 1 })),
});

const radar = (peers: RadarPeer[]): Radar => ({ current_version: "2026-07-28", since: "", peers });

describe("radarSummary", () => {
  it("says when nothing was recorded", () => {
    expect(radarSummary(radar([]))).toBe("No sessions in the last 30 days.");
  });
  it("says when nobody relies on anything deprecated", () => {
    expect(radarSummary(radar([peer("server", "a", [])]))).toBe(
      "Every server and client relies only on what 2026-07-28 keeps.",
    );
  });
  it("counts servers and clients that still rely on something, with plurals", () => {
    const peers = [peer("server", "a", ["ping"]), peer("server", "b", ["roots"]), peer("client", "c", ["ping"])];
    expect(radarSummary(radar(peers))).toBe(
      "2 servers and 1 client still rely on what 2026-07-28 deprecates or removes.",
    );
    expect(radarSummary(radar([peer("client", "c", ["ping"]), peer("server", "d", [])]))).toBe(
      "1 client still relies on what 2026-07-28 deprecates or removes.",
    );
  });
});
