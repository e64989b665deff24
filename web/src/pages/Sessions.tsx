import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, download, exportUrl, isAbort } from "../api";
import { Link } from "../components/Link";
import { Empty, ErrorBanner, Loading, PageHeader, RangePicker, RiskBadge } from "../components/ui";
import { useAutoRefresh, useMe, useTitle } from "../hooks";
import { formatDateTime, formatInt, formatMs } from "../lib/format";
import {
  applyView,
  clientName,
  parseView,
  serverName,
  viewQuery,
  type SessionStatus,
  type SessionView,
  type SortKey,
} from "../lib/sessions";
import { findingsPath } from "../lib/findings";
import { RISK_FLOORS, riskFloor, toQueryString, type RiskFloor } from "../lib/query";
import { handleLinkClick, navigate, paths, useLocation } from "../router";
import { PartialBadge } from "../components/Usage";
import type { KmSession } from "../types";

const PAGE_SIZE = 50;

export { clientName, serverName } from "../lib/sessions";

const COLUMNS: { key: SortKey; label: string; num?: boolean }[] = [
  { key: "client", label: "Client" },
  { key: "server", label: "Server" },
  { key: "started", label: "Started" },
  { key: "duration", label: "Duration", num: true },
  { key: "events", label: "Events", num: true },
  { key: "errors", label: "Errors", num: true },
  { key: "risk", label: "Risk" },
];

export function SessionsPage() {
  useTitle("Sessions");
  const { me } = useMe();
  const loc = useLocation();
  const minLevel = useMemo(() => riskFloor(new URLSearchParams(loc.search).get("min_level")), [loc.search]);
  const view = useMemo(() => parseView(loc.search), [loc.search]);
  const [found, setItems] = useState<KmSession[]>([]);
  const [next, setCursor] = useState<string | null>(null);
  // sessions of another risk floor are never shown under this one, not even for the frame
  // before the effect below asks for the new ones
  const [foundFor, setFoundFor] = useState<RiskFloor | null>(null);
  const items = foundFor === minLevel ? found : [];
  const cursor = foundFor === minLevel ? next : null;
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<Error | null>(null);
  const [attempt, setAttempt] = useState(0);
  const [now, setNow] = useState(Date.now);
  const loaded = useRef(0);
  loaded.current = items.length;

  /** A page after `after`, or (null) the first `limit` sessions again, replacing those shown. */
  const load = async (after: string | null, signal?: AbortSignal, limit = PAGE_SIZE) => {
    setLoading(true);
    setError(null);
    try {
      const page = await api.sessions({ limit, cursor: after, min_level: minLevel || undefined }, signal);
      setItems((prev) => (after ? [...prev, ...page.items] : page.items));
      setCursor(page.next_cursor);
      setFoundFor(minLevel);
      setNow(Date.now());
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

  // new sessions and the progress of running ones appear by themselves while the tab is visible
  // (the sessions already loaded are fetched again, up to the API's page limit)
  useAutoRefresh(() => void load(null, undefined, Math.min(500, Math.max(PAGE_SIZE, loaded.current))));

  const setQuery = (changes: Partial<SessionView> & { min_level?: RiskFloor }) => {
    const next = { ...view, ...changes };
    const level = changes.min_level ?? minLevel;
    navigate(paths.sessions + toQueryString({ min_level: level || undefined, ...viewQuery(next) }), {
      replace: true,
    });
  };
  const sortBy = (key: SortKey) =>
    setQuery({ sort: key, desc: view.sort === key ? !view.desc : key !== "server" && key !== "client" });
  const shown = useMemo(() => applyView(items, view, now), [items, view, now]);
  const filtered = shown.length !== items.length;
  const [downloadError, setDownloadError] = useState<Error | null>(null);
  const save = (id: string, format: "jsonl" | "har") => {
    setDownloadError(null);
    download(exportUrl(format, { session_id: id })).catch((err: unknown) =>
      setDownloadError(err instanceof Error ? err : new Error(String(err))),
    );
  };

  return (
    <section data-testid="page-sessions">
      <PageHeader title="Sessions">
        <RangePicker value={view.range} onChange={(range) => setQuery({ range })} allowAll testid="sessions-range" />
        <button type="button" class="btn btn-small" onClick={() => setAttempt((n) => n + 1)} data-testid="refresh">
          Refresh
        </button>
      </PageHeader>
      <form class="card filters sessions-filters" data-testid="sessions-filters" onSubmit={(e) => e.preventDefault()}>
        <label class="field">
          Server
          <input
            type="search"
            value={view.server}
            maxLength={200}
            placeholder="name or command"
            data-testid="sessions-filter-server"
            onInput={(e) => setQuery({ server: (e.target as HTMLInputElement).value })}
          />
        </label>
        <label class="field">
          Client
          <input
            type="search"
            value={view.client}
            maxLength={200}
            placeholder="claude-ai"
            data-testid="sessions-filter-client"
            onInput={(e) => setQuery({ client: (e.target as HTMLInputElement).value })}
          />
        </label>
        <label class="field">
          Status
          <select
            value={view.status}
            data-testid="sessions-filter-status"
            onChange={(e) => setQuery({ status: (e.target as HTMLSelectElement).value as SessionStatus })}
          >
            <option value="">any</option>
            <option value="running">running</option>
            <option value="ended">ended</option>
            <option value="failed">failed (non-zero exit)</option>
            <option value="partial">partial (over the plan's limit)</option>
          </select>
        </label>
        <label class="field">
          Risk
          <select
            value={minLevel}
            data-testid="sessions-min-level"
            onChange={(e) => setQuery({ min_level: (e.target as HTMLSelectElement).value as RiskFloor })}
          >
            <option value="">any</option>
            {RISK_FLOORS.map((level) => (
              <option key={level} value={level}>
                {level === "critical" ? "critical" : `${level} and above`}
              </option>
            ))}
          </select>
        </label>
        <label class="field field-check">
          <input
            type="checkbox"
            checked={view.errors}
            data-testid="sessions-filter-errors"
            onChange={(e) => setQuery({ errors: (e.target as HTMLInputElement).checked })}
          />
          With errors
        </label>
      </form>
      <ErrorBanner error={error} onRetry={() => void load(items.length ? cursor : null)} />
      <ErrorBanner error={downloadError} />
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
      {items.length > 0 && shown.length === 0 && (
        <Empty>No loaded session matches these filters{cursor ? ": load more, or change them" : ""}.</Empty>
      )}
      {shown.length > 0 && (
        <div class="card table-wrap">
          <table class="table table-click table-scroll" data-testid="sessions-table">
            <thead>
              <tr>
                {COLUMNS.map((c) => (
                  <th
                    key={c.key}
                    class={c.num ? "num" : undefined}
                    aria-sort={view.sort === c.key ? (view.desc ? "descending" : "ascending") : undefined}
                  >
                    <button
                      type="button"
                      class="sort-button"
                      data-testid={`sort-${c.key}`}
                      title={`Sort by ${c.label.toLowerCase()}`}
                      onClick={() => sortBy(c.key)}
                    >
                      {c.label}
                      <span class="sort-mark" aria-hidden="true">
                        {view.sort === c.key ? (view.desc ? " ▾" : " ▴") : ""}
                      </span>
                    </button>
                  </th>
                ))}
                <th>Download</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((s) => (
                <tr
                  key={s.id}
                  data-testid="session-row"
                  data-session-id={s.id}
                  onClick={(ev) => {
                    if ((ev.target as Element).closest("a, button")) return;
                    handleLinkClick(ev, paths.session(s.id));
                  }}
                >
                  <td>{clientName(s)}</td>
                  <td>
                    <Link to={paths.session(s.id)} testid="session-link">
                      {serverName(s)}
                    </Link>
                  </td>
                  <td class="nowrap" data-testid="session-started">
                    {formatDateTime(s.started_at)}
                  </td>
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
                  <td class="nowrap">
                    <button
                      type="button"
                      class="btn btn-small btn-link"
                      title="Download this session as JSON Lines (km import reads it back)"
                      data-testid="session-download-jsonl"
                      onClick={() => save(s.id, "jsonl")}
                    >
                      JSONL
                    </button>{" "}
                    <button
                      type="button"
                      class="btn btn-small btn-link"
                      title="Download this session as HAR (HTTP Archive viewers)"
                      data-testid="session-download-har"
                      onClick={() => save(s.id, "har")}
                    >
                      HAR
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {filtered && items.length > 0 && (
        <p class="muted small" data-testid="sessions-shown">
          {formatInt(shown.length)} of {formatInt(items.length)} loaded sessions match.
        </p>
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
