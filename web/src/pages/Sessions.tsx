import { useEffect, useMemo, useState } from "preact/hooks";
import { api, isAbort } from "../api";
import { Link } from "../components/Link";
import { Empty, ErrorBanner, Loading, PageHeader, RiskBadge } from "../components/ui";
import { useMe, useTitle } from "../hooks";
import { formatDateTime, formatInt, formatMs } from "../lib/format";
import { findingsPath } from "../lib/findings";
import { RISK_FLOORS, riskFloor, toQueryString, type RiskFloor } from "../lib/query";
import { handleLinkClick, navigate, paths, useLocation } from "../router";
import { PartialBadge } from "../components/Usage";
import type { KmSession } from "../types";

const PAGE_SIZE = 50;

/** The client's name ("claude-ai 0.1.0") from the initialize request, if any. */
export function clientName(s: KmSession): string {
  return infoName(s.client) ?? "—";
}

/** The server's name: the session's own name, else the server's initialize answer. */
export function serverName(s: KmSession): string {
  return s.name ?? infoName(s.server) ?? (s.command.length ? s.command.join(" ") : "—");
}

function infoName(info: Record<string, unknown> | null): string | null {
  if (!info) return null;
  const name = typeof info.name === "string" ? info.name : null;
  const version = typeof info.version === "string" ? info.version : null;
  return name ? (version ? `${name} ${version}` : name) : null;
}

export function SessionsPage() {
  useTitle("Sessions");
  const { me } = useMe();
  const loc = useLocation();
  const minLevel = useMemo(() => riskFloor(new URLSearchParams(loc.search).get("min_level")), [loc.search]);
  const [items, setItems] = useState<KmSession[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<Error | null>(null);
  const [attempt, setAttempt] = useState(0);

  const load = async (after: string | null, signal?: AbortSignal) => {
    setLoading(true);
    setError(null);
    try {
      const page = await api.sessions({ limit: PAGE_SIZE, cursor: after, min_level: minLevel || undefined }, signal);
      setItems((prev) => (after ? [...prev, ...page.items] : page.items));
      setCursor(page.next_cursor);
    } catch (err) {
      if (isAbort(err)) return;
      setError(err instanceof Error ? err : new Error(String(err)));
    }
    setLoading(false);
  };

  useEffect(() => {
    const ctl = new AbortController();
    setItems([]);
    setCursor(null);
    void load(null, ctl.signal);
    return () => ctl.abort();
  }, [attempt, minLevel]);

  const setMinLevel = (level: RiskFloor) =>
    navigate(paths.sessions + toQueryString({ min_level: level }), { replace: true });

  return (
    <section data-testid="page-sessions">
      <PageHeader title="Sessions">
        <label class="inline-field">
          Risk{" "}
          <select
            value={minLevel}
            data-testid="sessions-min-level"
            onChange={(e) => setMinLevel((e.target as HTMLSelectElement).value as RiskFloor)}
          >
            <option value="">any</option>
            {RISK_FLOORS.map((level) => (
              <option key={level} value={level}>
                {level === "critical" ? "critical" : `${level} and above`}
              </option>
            ))}
          </select>
        </label>
        <button type="button" class="btn btn-small" onClick={() => setAttempt((n) => n + 1)} data-testid="refresh">
          Refresh
        </button>
      </PageHeader>
      <ErrorBanner error={error} onRetry={() => void load(items.length ? cursor : null)} />
      {items.length === 0 && loading && <Loading />}
      {items.length === 0 && !loading && !error && minLevel && (
        <Empty>No session has an event at {minLevel} risk or above.</Empty>
      )}
      {items.length === 0 && !loading && !error && !minLevel && (
        <Empty>
          No sessions yet. Run <code>km wrap</code> so your MCP clients start their servers through <code>km</code>
          {me.mode === "team" && (
            <>
              {" "}
              (see <Link to={paths.onboarding}>getting started</Link>)
            </>
          )}
          .
        </Empty>
      )}
      {items.length > 0 && (
        <div class="card table-wrap">
          <table class="table table-click" data-testid="sessions-table">
            <thead>
              <tr>
                <th>Client</th>
                <th>Server</th>
                <th>Started</th>
                <th class="num">Duration</th>
                <th class="num">Events</th>
                <th class="num">Errors</th>
                <th>Risk</th>
              </tr>
            </thead>
            <tbody>
              {items.map((s) => (
                <tr
                  key={s.id}
                  data-testid="session-row"
                  data-session-id={s.id}
                  onClick={(ev) => {
                    if ((ev.target as Element).closest("a")) return;
                    handleLinkClick(ev, paths.session(s.id));
                  }}
                >
                  <td>{clientName(s)}</td>
                  <td>
                    <Link to={paths.session(s.id)} testid="session-link">
                      {serverName(s)}
                    </Link>
                  </td>
                  <td>{formatDateTime(s.started_at)}</td>
                  <td class="num">
                    {s.dropped_events > 0 ? (
                      <>
                        {s.ended_at ? `${formatMs(s.duration_ms)} ` : ""}
                        <PartialBadge dropped={s.dropped_events} />
                      </>
                    ) : s.ended_at ? (
                      formatMs(s.duration_ms)
                    ) : (
                      <span class="badge badge-live">running</span>
                    )}
                  </td>
                  <td class="num">{formatInt(s.event_count)}</td>
                  <td class={`num ${s.error_count ? "text-bad" : ""}`}>{formatInt(s.error_count)}</td>
                  <td class="nowrap">
                    <RiskBadge level={s.risk?.level} testid="session-risk" />
                    {s.risk && s.risk.events_with_findings > 0 && (
                      <>
                        {" "}
                        <Link
                          to={findingsPath(paths.findings, { session_id: s.id })}
                          class="muted small"
                          title="This session's findings"
                          testid="session-findings-link"
                        >
                          {formatInt(s.risk.events_with_findings)}{" "}
                          {s.risk.events_with_findings === 1 ? "event" : "events"}
                        </Link>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {cursor && (
        <div class="more">
          <button
            type="button"
            class="btn"
            disabled={loading}
            data-testid="load-more"
            onClick={() => void load(cursor)}
          >
            {loading ? "Loading…" : "Load more"}
          </button>
        </div>
      )}
    </section>
  );
}
