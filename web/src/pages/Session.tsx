import type { ComponentChildren } from "preact";
import { useMemo } from "preact/hooks";
import { api } from "../api";
import { Link } from "../components/Link";
import { Empty, ErrorBanner, JsonBlock, Loading, PageHeader } from "../components/ui";
import { useApi, useTitle } from "../hooks";
import { formatDateTime, formatInt, formatMs, parseTsMicros } from "../lib/format";
import { toQueryString } from "../lib/query";
import { buildWaterfall, layoutBar, timelineSpan, type WaterfallRow } from "../lib/waterfall";
import { handleLinkClick, paths } from "../router";
import type { KmEvent, KmSession } from "../types";
import { PartialBadge } from "../components/Usage";
import { clientName, serverName } from "./Sessions";

const EVENT_LIMIT = 1000;

export function SessionPage({ id }: { id: string }) {
  const session = useApi((signal) => api.session(id, signal), [id]);
  const events = useApi((signal) => api.events({ session_id: id, limit: EVENT_LIMIT }, signal), [id]);
  useTitle(session.data ? `Session ${serverName(session.data)}` : "Session");

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
      {session.data && <SessionHeader s={session.data} />}
      <ErrorBanner error={events.error} onRetry={events.reload} />
      {events.loading && !events.data && <Loading what="Loading events" />}
      {events.data && (
        <Waterfall events={events.data.items} truncated={events.data.next_cursor !== null} session={session.data} />
      )}
    </section>
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
}: {
  events: KmEvent[];
  truncated: boolean;
  session: KmSession | null;
}) {
  const { rows, span } = useMemo(() => {
    const rows = buildWaterfall(events);
    const start = session ? parseTsMicros(session.started_at) : Number.NaN;
    const end = session?.ended_at ? parseTsMicros(session.ended_at) : Number.NaN;
    const span = timelineSpan(rows, Number.isNaN(start) ? null : start, Number.isNaN(end) ? null : end);
    return { rows, span };
  }, [events, session]);

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
          <WaterfallBar key={r.eventId} row={r} span={span} />
        ))}
      </div>
    </div>
  );
}

function WaterfallBar({ row, span }: { row: WaterfallRow; span: [number, number] }) {
  const { left, width } = layoutBar(row, span);
  const to = paths.event(row.eventId);
  const latency = row.type === "notification" ? "notification" : row.end === null ? "pending" : formatMs(row.latencyMs);
  const cls = `wf-bar wf-${row.type}${row.isError ? " is-error" : ""}${row.end === null ? " is-pending" : ""}`;
  return (
    <a
      href={to}
      class="wf-row"
      data-testid="waterfall-bar"
      data-event-id={row.eventId}
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
