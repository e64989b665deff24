import type { ComponentChildren } from "preact";
import { useLayoutEffect, useState } from "preact/hooks";
import { api, isAbort } from "../api";
import { Inspector } from "../components/Inspector";
import { Link } from "../components/Link";
import { Empty, ErrorBanner, JsonBlock, Loading, PageHeader, SeverityBadge } from "../components/ui";
import { useApi, useTitle } from "../hooks";
import { formatDateTime, formatInt, formatMs, parseTsMicros, plural } from "../lib/format";
import { toQueryString } from "../lib/query";
import { readSession } from "../lib/inspector";
import { anchoredEvent, findingHref, findingsPath, severityBreakdown } from "../lib/findings";
import { handleLinkClick, paths, useLocation } from "../router";
import type { KmEvent, KmSession } from "../types";
import { PartialBadge } from "../components/Usage";
import { clientName, serverName } from "./Sessions";

/** Events of the first request (the first rows show at once), then per request. */
const FIRST_PAGE = 200;
const PAGE = 1000;
/** Events the inspector holds at most (the rest: Search). */
export const MAX_EVENTS = 200_000;

interface SessionEvents {
  items: KmEvent[];
  done: boolean;
  /** Stopped at MAX_EVENTS with events left. */
  capped: boolean;
  error: Error | null;
}

/** The whole session, oldest first, page after page (the first page shows at once). */
function useSessionEvents(id: string): SessionEvents & { reload: () => void } {
  const [state, setState] = useState<SessionEvents>({ items: [], done: false, capped: false, error: null });
  const [tick, setTick] = useState(0);
  // (a layout effect: the first request leaves with this render's commit, not a frame later)
  useLayoutEffect(() => {
    const ctl = new AbortController();
    let items: KmEvent[] = [];
    setState({ items, done: false, capped: false, error: null });
    readSession(
      (cursor) =>
        api.events({ session_id: id, order: "oldest", limit: cursor ? PAGE : FIRST_PAGE, cursor }, ctl.signal),
      (page) => {
        items = items.concat(page);
        setState((s) => ({ ...s, items }));
      },
      MAX_EVENTS,
      ctl.signal,
    ).then(
      (capped) => !ctl.signal.aborted && setState((s) => ({ ...s, done: true, capped })),
      (err: unknown) =>
        !ctl.signal.aborted &&
        !isAbort(err) &&
        setState((s) => ({ ...s, done: true, error: err instanceof Error ? err : new Error(String(err)) })),
    );
    return () => ctl.abort();
  }, [id, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

export function SessionPage({ id }: { id: string }) {
  const session = useApi((signal) => api.session(id, signal), [id]);
  const events = useSessionEvents(id);
  useTitle(session.data ? `Session ${serverName(session.data)}` : "Session");
  const target = anchoredEvent(useLocation().hash);
  const s = session.data;
  const start = s ? parseTsMicros(s.started_at) : Number.NaN;
  const end = s?.ended_at ? parseTsMicros(s.ended_at) : Number.NaN;
  const targetMissing = events.done && target !== null && !events.items.some((e) => e.id === target) && !events.error;

  return (
    <section data-testid="page-session">
      <PageHeader title={s ? serverName(s) : "Session"}>
        <Link to={paths.live + toQueryString({ session_id: id })} class="btn btn-small" testid="session-live-link">
          Live
        </Link>
        <Link to={paths.search + toQueryString({ session_id: id })} class="btn btn-small" testid="session-search-link">
          Search events
        </Link>
      </PageHeader>
      <ErrorBanner error={session.error} onRetry={session.reload} />
      {session.loading && !s && <Loading />}
      {/* mounted at once, so that its requests run beside the session's; shown with the session */}
      <SessionFindings id={id} shown={!!s} />
      {s && <SessionHeader s={s} />}
      <ErrorBanner error={events.error} onRetry={events.reload} />
      {!events.done && (
        <p class="muted small" data-testid="inspector-loading">
          Loading events… {formatInt(events.items.length)}
          {s ? ` of ${formatInt(s.event_count)}` : ""}
        </p>
      )}
      {events.capped && (
        <p class="banner" data-testid="inspector-capped">
          The inspector holds the first {formatInt(MAX_EVENTS)} events of this session; use{" "}
          <Link to={paths.search + toQueryString({ session_id: id })}>Search</Link> for the rest.
        </p>
      )}
      {targetMissing && target && (
        <p class="banner" data-testid="anchor-missing">
          That event is not in this session's recording: <Link to={paths.event(target)}>open the event</Link>.
        </p>
      )}
      {(events.items.length > 0 || events.done) && !(events.error && events.items.length === 0) && !session.error && (
        <Inspector
          events={events.items}
          sessionStart={Number.isNaN(start) ? null : start}
          sessionEnd={Number.isNaN(end) ? null : end}
          target={target}
        />
      )}
    </section>
  );
}

const TOP_RULES = 5;
const TOP_FINDINGS = 10;

/** The session's findings at a glance: counts by severity, the top rules, the worst findings
 *  (each a link to its event's row below), and a link to all of them on the Findings page. */
function SessionFindings({ id, shown }: { id: string; shown: boolean }) {
  const summary = useApi(
    (signal) => api.findingsSummary({ session_id: id, group: "rule", limit: TOP_RULES }, signal),
    [id],
  );
  const top = useApi((signal) => api.findings({ session_id: id, sort: "severity", limit: TOP_FINDINGS }, signal), [id]);
  const s = summary.data;
  if (!shown) return null;
  if (summary.error) return <ErrorBanner error={summary.error} onRetry={summary.reload} />;
  if (!s) return null;
  if (s.total === 0)
    return (
      <p class="muted small" data-testid="session-findings" data-total="0">
        No findings in this session.
      </p>
    );
  const all = findingsPath(paths.findings, { session_id: id });
  return (
    <div class="card session-findings" data-testid="session-findings" data-total={s.total}>
      <h2>
        Findings{" "}
        <span class="finding-totals">
          {severityBreakdown(s.by_severity).map(([sev, n]) => (
            <span key={sev} class="severity-count" data-testid={`session-total-${sev}`}>
              <SeverityBadge severity={sev} /> {formatInt(n)}
            </span>
          ))}
        </span>
      </h2>
      <div class="two-col">
        <div>
          <h3>Top rules</h3>
          <ul class="plain-list" data-testid="session-top-rules">
            {s.items.map((g) => (
              <li key={g.key} data-testid="session-rule" data-rule={g.key}>
                <SeverityBadge severity={g.highest} />{" "}
                <Link to={findingsPath(paths.findings, { session_id: id, rule: g.key })}>
                  <code>{g.key}</code>
                </Link>{" "}
                <span class="muted">× {formatInt(g.count)}</span>
              </li>
            ))}
          </ul>
        </div>
        <div>
          <h3>Worst findings</h3>
          <ul class="plain-list" data-testid="session-top-findings">
            {(top.data?.items ?? []).map((f) => (
              <li key={`${f.event_id}/${f.index}`}>
                <SeverityBadge severity={f.severity} />{" "}
                <a
                  href={findingHref(paths.session(id), f.event_id)}
                  data-testid="session-finding-link"
                  data-event-id={f.event_id}
                  onClick={(ev) => handleLinkClick(ev, findingHref(paths.session(id), f.event_id))}
                >
                  <code>{f.rule}</code>
                </a>{" "}
                <span class="muted">{f.path ? <code>{f.path}</code> : "whole message"}</span>
              </li>
            ))}
          </ul>
        </div>
      </div>
      <Link to={all} class="btn btn-small" testid="session-all-findings">
        All {formatInt(s.total)} findings
      </Link>
    </div>
  );
}

function SessionHeader({ s }: { s: KmSession }) {
  const rows: [string, ComponentChildren][] = [
    ["Session id", <code>{s.id}</code>],
    ["Client", clientName(s)],
    ["Server", serverName(s)],
    ["Protocol version", s.protocol_version ?? "—"],
    ["Transport", s.transport],
    ["Started", formatDateTime(s.started_at)],
    [
      "Ended",
      <>
        {s.ended_at ? formatDateTime(s.ended_at) : s.dropped_events > 0 ? "—" : "running"}{" "}
        <PartialBadge dropped={s.dropped_events} />
      </>,
    ],
    ["Duration", formatMs(s.duration_ms)],
    [
      "Events",
      `${formatInt(s.event_count)} (${plural(s.error_count, "error")}${s.dropped_events ? `, ${formatInt(s.dropped_events)} dropped` : ""})`,
    ],
    ["Command", <code>{s.command.join(" ")}</code>],
    ["Working directory", <code>{s.cwd}</code>],
    ["Exit code", s.exit_code ?? "—"],
  ];
  return (
    <div class="two-col">
      <div class="card">
        <h2>Initialize</h2>
        <dl class="meta" data-testid="session-meta">
          {rows.map(([k, v]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd>{v}</dd>
            </div>
          ))}
        </dl>
      </div>
      <div class="card">
        <h2>Capabilities</h2>
        {s.capabilities ? (
          <JsonBlock value={s.capabilities} testid="session-capabilities" />
        ) : (
          <Empty>None recorded.</Empty>
        )}
        {s.client && (
          <>
            <h3>Client info</h3>
            <JsonBlock value={s.client} testid="session-client" />
          </>
        )}
        {s.server && (
          <>
            <h3>Server info</h3>
            <JsonBlock value={s.server} testid="session-server" />
          </>
        )}
      </div>
    </div>
  );
}
