import { request } from "../api";
import { useApi } from "../hooks";
import { formatInt } from "../lib/format";
import { Empty, ErrorBanner, Loading } from "./ui";

/** GET /api/v1/radar: who still relies on what the current MCP revision deprecates or removes. */
export interface FeatureUse {
  feature: string;
  label: string;
  status: "removed" | "deprecated";
  sessions: number;
  messages: number;
}

export interface RadarPeer {
  role: "server" | "client";
  name: string;
  versions: string[];
  aliases: string[];
  current: boolean;
  sessions: number;
  last_seen: string | null;
  features: FeatureUse[];
}

export interface Radar {
  current_version: string;
  since: string;
  peers: RadarPeer[];
}

/** "2 servers and 1 client still rely on removed features": the panel's one-line summary. */
export function radarSummary(radar: Radar): string {
  const relying = radar.peers.filter((p) => p.features.length > 0);
  if (radar.peers.length === 0) return "No sessions in the last 30 days.";
  if (relying.length === 0) return `Every server and client relies only on what ${radar.current_version} keeps.`;
  const count = (role: string) => relying.filter((p) => p.role === role).length;
  const part = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const parts = [
    count("server") && part(count("server"), "server"),
    count("client") && part(count("client"), "client"),
  ];
  const verb = relying.length === 1 ? "relies" : "rely";
  return `${parts.filter(Boolean).join(" and ")} still ${verb} on what ${radar.current_version} deprecates or removes.`;
}

export function RadarPanel() {
  const radar = useApi((signal) => request<Radar>("GET", "/api/v1/radar", { signal }), []);
  return (
    <div class="card" data-testid="radar">
      <h2>Protocol radar</h2>
      <ErrorBanner error={radar.error} onRetry={radar.reload} />
      {radar.loading && !radar.data && <Loading />}
      {radar.data && (
        <>
          <p class="muted small" data-testid="radar-summary">
            {radarSummary(radar.data)}
          </p>
          {radar.data.peers.length === 0 ? (
            <Empty>Nothing recorded yet.</Empty>
          ) : (
            <table class="table">
              <thead>
                <tr>
                  <th>Peer</th>
                  <th>Versions</th>
                  <th>Relies on</th>
                  <th class="num">Sessions</th>
                </tr>
              </thead>
              <tbody>
                {radar.data.peers.map((p) => (
                  <tr key={`${p.role}:${p.name}`} data-testid="radar-row">
                    <td>
                      <span class="muted small">{p.role} </span>
                      {p.name}
                      {p.aliases.length > 0 && <span class="muted small"> · {p.aliases.join(", ")}</span>}
                    </td>
                    <td>
                      {p.versions.join(", ") || "unknown"}{" "}
                      {p.current && <span class="badge sev-info">{radar.data?.current_version}</span>}
                    </td>
                    <td>
                      {p.features.length === 0
                        ? "nothing deprecated"
                        : p.features.map((f) => (
                            <span
                              key={f.feature}
                              class={`badge ${f.status === "removed" ? "sev-high" : "sev-medium"}`}
                              title={`${f.status}: ${f.sessions} sessions, ${f.messages} messages`}
                              data-testid={`radar-feature-${f.feature}`}
                            >
                              {f.label}
                            </span>
                          ))}
                    </td>
                    <td class="num">{formatInt(p.sessions)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </div>
  );
}
