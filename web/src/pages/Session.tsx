import type { ComponentChildren } from "preact";
import { useEffect, useMemo } from "preact/hooks";
import { api } from "../api";
import { Link } from "../components/Link";
import { Empty, ErrorBanner, JsonBlock, Loading, PageHeader, SeverityBadge } from "../components/ui";
import { useApi, useTitle } from "../hooks";
import { formatDateTime, formatInt, formatMs, parseTsMicros } from "../lib/format";
import { toQueryString } from "../lib/query";
import { buildWaterfall, layoutBar, timelineSpan, type WaterfallRow } from "../lib/waterfall";
import { anchoredEvent, eventAnchor, findingHref, findingsPath, severityBreakdown } from "../lib/findings";
import { handleLinkClick, paths, useLocation } from "../router";
import type { KmEvent, KmSession } from "../types";
import { PartialBadge } from "../components/Usage";
import { clientName, serverName } from "./Sessions";

const EVENT_LIMIT = 1000;

export function SessionPage({ id }: { id: string }) {
  const session = useApi((signal) => api.session(id, signal), [id]);
  const events = useApi((signal) => api.events({ session_id: id, limit: EVENT_LIMIT }, signal), [id]);
  useTitle(session.data ? `Session ${serverName(session.data)}` : "Session");
  const target = anchoredEvent(useLocation().hash);

  return (
    <section data-testid="page-session">
      <PageHeader title={session.data ? serverName(session.data) : "Session"}>
        <Link to={paths.live + toQueryString({ session_id: id })} class="btn btn-small" testid="session-live-link">
          Live
        </Link>
        <Link to={paths.search + toQueryString({ session_id: id })} class="btn btn-small" testid="session-search-link">
          Search events
        </Link>
      </PageHeader>
      <ErrorBanner error={session.error} onRetry={session.reload} />
      {session.loading && !session.data && <Loading />}
      {session.data && <SessionFindings id={id} />}
      {session.data && <SessionHeader s={session.data} />}
      <ErrorBanner error={events.error} onRetry={events.reload} />
      {events.loading && !events.data && <Loading what="Loading events" />}
      {events.data && target && !events.data.items.some((e) => e.id === target) && (
        <p class="banner" data-testid="anchor-missing">
          That event is not among the {formatInt(EVENT_LIMIT)} latest shown below:{" "}
          <Link to={paths.event(target)}>open the event</Link>.
        </p>
      )}
      {events.data && (
        <Waterfall
          events={events.data.items}
          truncated={events.data.next_cursor !== null}
          session={session.data}
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
function SessionFindings({ id }: { id: string }) {
  const summary = useApi(
    (signal) => api.findingsSummary({ session_id: id, group: "rule", limit: TOP_RULES }, signal),
    [id],
  );
  const top = useApi((signal) => api.findings({ session_id: id, sort: "severity", limit: TOP_FINDINGS }, signal), [id]);
  const s = summary.data;
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
      `${formatInt(s.event_count)} (${formatInt(s.error_count)} errors${s.dropped_events ? `, ${formatInt(s.dropped_events)} dropped` : ""})`,
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

function Waterfall({
  events,
  truncated,
  session,
  target,
}: {
  events: KmEvent[];
  truncated: boolean;
  session: KmSession | null;
  /** The event the page is anchored at (#event-<id>): scrolled to and marked. */
  target: string | null;
}) {
  const { rows, span } = useMemo(() => {
    const rows = buildWaterfall(events);
    const start = session ? parseTsMicros(session.started_at) : Number.NaN;
    const end = session?.ended_at ? parseTsMicros(session.ended_at) : Number.NaN;
    const span = timelineSpan(rows, Number.isNaN(start) ? null : start, Number.isNaN(end) ? null : end);
    return { rows, span };
  }, [events, session]);

  // a finding on an answer anchors at its call's row (request and answer share one bar)
  const targetRow = target
    ? (rows.find((r) => r.eventId === target || r.responseId === target)?.eventId ?? null)
    : null;
  useEffect(() => {
    if (!target) return;
    document.getElementById(eventAnchor(target))?.scrollIntoView({ block: "center" });
  }, [target, rows]);

  if (rows.length === 0) return <Empty>No events recorded in this session.</Empty>;
  const total = (span[1] - span[0]) / 1000;
  return (
    <div class="card">
      <h2>
        Timeline{" "}
        <span class="muted small">
          ({formatInt(rows.length)} rows over {formatMs(total)})
        </span>
      </h2>
      {truncated && (
        <p class="muted small" data-testid="waterfall-truncated">
          Showing the latest {formatInt(EVENT_LIMIT)} events of this session; use Search for the rest.
        </p>
      )}
      <div class="waterfall" data-testid="waterfall">
        <div class="wf-axis" aria-hidden="true">
          <span>0</span>
          <span>{formatMs(total / 2)}</span>
          <span>{formatMs(total)}</span>
        </div>
        {rows.map((r) => (
          <WaterfallBar key={r.eventId} row={r} span={span} target={r.eventId === targetRow ? target : null} />
        ))}
      </div>
    </div>
  );
}

/** `target`: the anchored event when it is this row's request or answer. */
function WaterfallBar({ row, span, target }: { row: WaterfallRow; span: [number, number]; target: string | null }) {
  const { left, width } = layoutBar(row, span);
  const to = paths.event(target ?? row.eventId);
  const latency = row.type === "notification" ? "notification" : row.end === null ? "pending" : formatMs(row.latencyMs);
  const cls = `wf-bar wf-${row.type}${row.isError ? " is-error" : ""}${row.end === null ? " is-pending" : ""}`;
  return (
    <a
      href={to}
      id={target ? eventAnchor(target) : undefined}
      class={target ? "wf-row is-target" : "wf-row"}
      aria-current={target ? "true" : undefined}
      data-testid="waterfall-bar"
      data-event-id={row.eventId}
      data-response-id={row.responseId ?? undefined}
      title={`${row.label} — ${latency}`}
      onClick={(ev) => handleLinkClick(ev, to)}
    >
      <span class="wf-label">
        {row.label}
        <span class="muted"> {latency}</span>
      </span>
      <span class="wf-track">
        <span class={cls} style={{ left: `${left}%`, width: `${width}%` }} />
      </span>
    </a>
  );
}
