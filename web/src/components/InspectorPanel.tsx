import { useState } from "preact/hooks";
import { formatBytes, formatClock, formatMs, jsonText } from "../lib/format";
import { answerBody, contentParts, requestArguments, type InspectorRow } from "../lib/inspector";
import { handleLinkClick, paths } from "../router";
import type { Finding, KmEvent } from "../types";
import { JsonTree } from "./JsonTree";
import { LongText, SafeText } from "./SafeText";
import { Empty, SeverityBadge } from "./ui";

type Tab = "arguments" | "result" | "notifications" | "findings" | "raw";

/** The selected row: request and answer together, previous/next, and tabs for the arguments,
 *  the result (tool text with its line breaks, images), linked notifications, findings, raw JSON. */
export function InspectorPanel({
  row,
  rows,
  byId,
  query,
  t0,
  position,
  count,
  onStep,
  onSelect,
}: {
  row: InspectorRow | undefined;
  rows: readonly InspectorRow[];
  byId: ReadonlyMap<string, KmEvent>;
  query: string;
  t0: number;
  position: number;
  count: number;
  onStep: (delta: number) => void;
  onSelect: (eventId: string) => void;
}) {
  const [tab, setTab] = useState<Tab>("result");
  if (!row)
    return (
      <aside class="ins-panel" data-testid="inspector-panel">
        <Empty>Select a row to see its request and answer (↑ ↓ or j k to move).</Empty>
      </aside>
    );
  const request = row.type === "response" ? undefined : byId.get(row.eventId);
  const answer = row.responseId ? byId.get(row.responseId) : undefined;
  const findings: [string, Finding][] = [
    ...(request?.risk?.findings ?? []).map((f): [string, Finding] => ["request", f]),
    ...(answer?.risk?.findings ?? []).map((f): [string, Finding] => ["answer", f]),
  ];
  const parent = row.linkedTo ? rows.find((r) => r.eventId === row.linkedTo) : undefined;
  const tabs: [Tab, string][] = [
    ["arguments", row.type === "notification" ? "Params" : "Arguments"],
    ["result", row.type === "notification" ? "Message" : "Result"],
    ["notifications", `Notifications (${row.linked.length})`],
    ["findings", `Findings (${findings.length})`],
    ["raw", "Raw"],
  ];
  const open = paths.event(row.eventId);
  return (
    <aside class="ins-panel" data-testid="inspector-panel" data-event-id={row.eventId}>
      <div class="ins-panel-head">
        <button
          type="button"
          class="btn btn-small"
          data-testid="panel-prev"
          disabled={position <= 0}
          onClick={() => onStep(-1)}
        >
          ← Previous
        </button>
        <span class="muted small" data-testid="panel-position">
          {position >= 0
            ? `${(position + 1).toLocaleString("en-US")} of ${count.toLocaleString("en-US")}`
            : "filtered out"}
        </span>
        <button
          type="button"
          class="btn btn-small"
          data-testid="panel-next"
          disabled={position < 0 || position >= count - 1}
          onClick={() => onStep(1)}
        >
          Next →
        </button>
      </div>
      <h3 class="ins-title" data-testid="panel-title">
        <SafeText text={row.label} query={query} />
      </h3>
      <dl class="meta ins-meta" data-testid="panel-meta">
        <div>
          <dt>Status</dt>
          <dd class={`status-${row.status}`}>{row.status}</dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>
            {request ? formatClock(request.ts) : answer ? formatClock(answer.ts) : "—"}{" "}
            <span class="muted">(+{formatMs((row.start - t0) / 1000)})</span>
          </dd>
        </div>
        {row.type !== "notification" && (
          <div>
            <dt>Latency</dt>
            <dd>{row.end === null ? "pending" : formatMs(row.latencyMs)}</dd>
          </div>
        )}
        <div>
          <dt>Size</dt>
          <dd>{formatBytes(row.size)}</dd>
        </div>
        {answer?.error && (
          <div>
            <dt>Error</dt>
            <dd class="text-bad">
              <SafeText text={`${answer.error.code ?? ""} ${answer.error.message ?? ""}`.trim()} />
            </dd>
          </div>
        )}
        {parent && (
          <div>
            <dt>Belongs to</dt>
            <dd>
              <button
                type="button"
                class="link-button"
                data-testid="panel-parent"
                onClick={() => onSelect(parent.eventId)}
              >
                <SafeText text={parent.label} />
              </button>
            </dd>
          </div>
        )}
      </dl>
      <p class="small">
        <a href={open} data-testid="panel-open-event" onClick={(ev) => handleLinkClick(ev, open)}>
          Open the {row.type === "response" ? "answer" : row.type === "notification" ? "notification" : "request"} on
          its own page
        </a>
      </p>
      <div class="segmented ins-tabs" role="tablist">
        {tabs.map(([t, label]) => (
          <button
            key={t}
            type="button"
            role="tab"
            class={tab === t ? "active" : ""}
            aria-selected={tab === t}
            data-testid={`panel-tab-${t}`}
            onClick={() => setTab(t)}
          >
            {label}
          </button>
        ))}
      </div>
      <div class="ins-tab" data-testid={`panel-${tab}`}>
        {tab === "arguments" &&
          (request ? (
            <JsonTree value={requestArguments(request) ?? null} query={query} testid="panel-arguments-tree" />
          ) : (
            <Empty>The request is not in the recording.</Empty>
          ))}
        {tab === "result" && <Result row={row} request={request} answer={answer} query={query} />}
        {tab === "notifications" &&
          (row.linked.length === 0 ? (
            <Empty>
              No notifications refer to this {row.type === "notification" ? "notification" : "call"} (progress by its
              progressToken, cancellation by its request id).
            </Empty>
          ) : (
            <ul class="plain-list" data-testid="panel-linked">
              {row.linked.map((id) => {
                const n = byId.get(id);
                return (
                  <li key={id}>
                    <button
                      type="button"
                      class="link-button"
                      data-testid="panel-linked-item"
                      onClick={() => onSelect(id)}
                    >
                      {n ? formatClock(n.ts) : ""} <SafeText text={n?.method ?? id} />
                    </button>{" "}
                    <span class="muted small">
                      <SafeText text={jsonText(n?.payload && (n.payload as { params?: unknown }).params, false)} />
                    </span>
                  </li>
                );
              })}
            </ul>
          ))}
        {tab === "findings" &&
          (findings.length === 0 ? (
            <Empty>No findings for this row.</Empty>
          ) : (
            <ul class="plain-list" data-testid="panel-findings">
              {findings.map(([side, f], i) => (
                <li key={i}>
                  <SeverityBadge severity={f.severity} /> <code>{f.rule}</code>{" "}
                  <span class="muted">
                    {side} {f.path ? <code>{f.path}</code> : "whole message"}
                  </span>{" "}
                  <SafeText text={f.message} />
                </li>
              ))}
            </ul>
          ))}
        {tab === "raw" && (
          <>
            {request && <RawJson title="Request" e={request} testid="panel-raw-request" />}
            {answer && <RawJson title="Answer" e={answer} testid="panel-raw-answer" />}
          </>
        )}
      </div>
    </aside>
  );
}

function Result({
  row,
  request,
  answer,
  query,
}: {
  row: InspectorRow;
  request: KmEvent | undefined;
  answer: KmEvent | undefined;
  query: string;
}) {
  if (row.type === "notification")
    return <JsonTree value={request?.payload ?? null} query={query} testid="panel-result-tree" />;
  if (!answer) return <Empty>No answer recorded{row.end === null ? " (yet)" : ""}.</Empty>;
  const parts = contentParts(answer.payload);
  return (
    <>
      {answer.truncated && <p class="muted small">The answer was truncated when it was recorded.</p>}
      {parts && parts.length > 0 && (
        <div class="ins-content" data-testid="panel-content">
          {parts.map((p, i) =>
            p.type === "text" ? (
              <pre key={i} class="tool-text" data-testid="tool-text">
                <LongText text={p.text} query={query} />
              </pre>
            ) : p.type === "image" ? (
              <img key={i} class="tool-image" src={p.src} alt={`image (${p.mimeType})`} data-testid="result-image" />
            ) : (
              <JsonTree key={i} value={p.value} query={query} />
            ),
          )}
        </div>
      )}
      <h4>{answer.error ? "Error" : "Result"} JSON</h4>
      <JsonTree value={answerBody(answer) ?? null} query={query} testid="panel-result-tree" />
    </>
  );
}

function RawJson({ title, e, testid }: { title: string; e: KmEvent; testid: string }) {
  return (
    <>
      <h4>{title}</h4>
      <pre class="json json-raw" data-testid={testid}>
        <LongText text={jsonText(e.payload, true)} />
      </pre>
    </>
  );
}
