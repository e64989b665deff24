import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { api } from "../api";
import { Link } from "../components/Link";
import { SafeText } from "../components/SafeText";
import {
  CopyButton,
  Direction,
  Empty,
  ErrorBanner,
  JsonBlock,
  KindBadge,
  Loading,
  PageHeader,
  SeverityBadge,
} from "../components/ui";
import { useApi, useTitle } from "../hooks";
import { eventLabel, formatBytes, formatDateTime, formatClock, formatMs, jsonText } from "../lib/format";
import { paths } from "../router";
import type { Finding, KmEvent } from "../types";

export function EventPage({ id }: { id: string }) {
  const event = useApi((signal) => api.event(id, signal), [id]);
  useTitle(event.data ? eventLabel(event.data) : "Event");
  const e = event.data;
  return (
    <section data-testid="page-event">
      <PageHeader title={e ? eventLabel(e) : "Event"}>
        {e && (
          <Link to={paths.session(e.session_id)} class="btn btn-small" testid="event-session-link">
            Session
          </Link>
        )}
      </PageHeader>
      <ErrorBanner error={event.error} onRetry={event.reload} />
      {event.loading && !e && <Loading />}
      {e && <EventBody e={e} />}
    </section>
  );
}

function EventBody({ e }: { e: KmEvent }) {
  const findings = e.risk?.findings ?? [];
  return (
    <>
      <div class="two-col">
        <div class="card">
          <h2>Details</h2>
          <EventMeta e={e} />
        </div>
        <div class="card">
          <h2>Findings {e.risk && e.risk.level !== "none" && <SeverityBadge severity={e.risk.level} />}</h2>
          {findings.length === 0 ? <Empty>No findings for this event.</Empty> : <Findings findings={findings} />}
        </div>
      </div>
      <Payload e={e} title="Payload" testid="payload" />
      <Paired e={e} />
    </>
  );
}

function EventMeta({ e }: { e: KmEvent }) {
  const rows: [string, ComponentChildren][] = [
    [
      "Event id",
      <>
        <code data-testid="event-id">{e.id}</code> <CopyButton text={e.id} label="Copy" testid="copy-event-id" />
      </>,
    ],
    ["Time", `${formatDateTime(e.ts)} (${formatClock(e.ts)})`],
    [
      "Session",
      <Link to={paths.session(e.session_id)}>
        <code>{e.session_id}</code>
      </Link>,
    ],
    [
      "Direction",
      <>
        <Direction direction={e.direction} /> {e.direction.replaceAll("_", " ")}
      </>,
    ],
    ["Kind", <KindBadge kind={e.kind} isError={e.is_error} />],
    [
      "JSON-RPC id",
      e.jsonrpc_id === null || e.jsonrpc_id === undefined ? "—" : <code>{jsonText(e.jsonrpc_id, false)}</code>,
    ],
    ["Method", e.method ?? "—"],
  ];
  if (e.tool) rows.push(["Tool", e.tool]);
  if (e.resource_uri) rows.push(["Resource", <code>{e.resource_uri}</code>]);
  if (e.prompt_name) rows.push(["Prompt", e.prompt_name]);
  if (e.latency_ms !== null) rows.push(["Latency", formatMs(e.latency_ms)]);
  rows.push(["Size", `${formatBytes(e.size_bytes)}${e.truncated ? " (payload truncated)" : ""}`]);
  if (e.error)
    rows.push(["Error", <span class="text-bad">{`${e.error.code ?? ""} ${e.error.message ?? ""}`.trim()}</span>]);
  else if (e.is_error) rows.push(["Error", <span class="text-bad">tool reported isError</span>]);
  if (e.request_event_id)
    rows.push([
      "Answers",
      <Link to={paths.event(e.request_event_id)}>
        <code>{e.request_event_id}</code>
      </Link>,
    ]);
  return (
    <dl class="meta" data-testid="event-meta">
      {rows.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

function Findings({ findings }: { findings: Finding[] }) {
  return (
    <table class="table" data-testid="findings">
      <thead>
        <tr>
          <th>Severity</th>
          <th>Rule</th>
          <th>Path</th>
          <th>Message</th>
        </tr>
      </thead>
      <tbody>
        {findings.map((f, i) => (
          <tr key={i} data-testid="finding-row">
            <td>
              <SeverityBadge severity={f.severity} />
            </td>
            <td>
              <code>{f.rule}</code>
            </td>
            <td>{f.path ? <code>{f.path}</code> : <span class="muted">whole message</span>}</td>
            <td>
              <SafeText text={f.message} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The payload as pretty or raw JSON text, with a copy button. */
function Payload({ e, title, testid }: { e: KmEvent; title: string; testid: string }) {
  const [raw, setRaw] = useState(false);
  const pretty = jsonText(e.payload, true);
  const compact = jsonText(e.payload, false);
  return (
    <div class="card">
      <div class="card-head">
        <h2>{title}</h2>
        <div class="segmented" role="group" aria-label="Payload format">
          <button
            type="button"
            class={raw ? "" : "active"}
            aria-pressed={!raw}
            data-testid={`${testid}-show-pretty`}
            onClick={() => setRaw(false)}
          >
            Pretty
          </button>
          <button
            type="button"
            class={raw ? "active" : ""}
            aria-pressed={raw}
            data-testid={`${testid}-show-raw`}
            onClick={() => setRaw(true)}
          >
            Raw
          </button>
        </div>
        <CopyButton text={raw ? compact : pretty} label="Copy JSON" testid={`${testid}-copy`} />
      </div>
      {e.truncated && <p class="muted small">The payload was truncated when it was recorded.</p>}
      {e.payload === null ? (
        <Empty>No payload.</Empty>
      ) : raw ? (
        <pre class="json json-raw" data-testid={`${testid}-raw`}>
          <SafeText text={compact} />
        </pre>
      ) : (
        <JsonBlock value={e.payload} testid={`${testid}-pretty`} />
      )}
    </div>
  );
}

function Paired({ e }: { e: KmEvent }) {
  const pairId = e.paired_event_id ?? null;
  const pair = useApi((signal) => (pairId ? api.event(pairId, signal) : Promise.resolve(null)), [pairId]);
  if (!pairId) {
    if (e.kind === "request") return <Empty>No response recorded for this request.</Empty>;
    return null;
  }
  const title = e.kind === "request" ? "Response" : "Request";
  return (
    <div class="paired" data-testid="paired-event">
      <ErrorBanner error={pair.error} onRetry={pair.reload} />
      {pair.loading && !pair.data && <Loading what={`Loading the ${title.toLowerCase()}`} />}
      {pair.data && (
        <>
          <p>
            {title}:{" "}
            <Link to={paths.event(pair.data.id)} testid="paired-event-link">
              {eventLabel(pair.data)} · {formatClock(pair.data.ts)}
            </Link>
            {pair.data.latency_ms !== null && <span class="muted"> · {formatMs(pair.data.latency_ms)}</span>}
          </p>
          <Payload e={pair.data} title={`${title} payload`} testid="paired-payload" />
        </>
      )}
    </div>
  );
}
