import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { eventAnchor } from "../lib/findings";
import { formatBytes, formatMs } from "../lib/format";
import {
  buildInspectorRows,
  centerSpan,
  density,
  firstRowAt,
  rowMatcher,
  zoomSpan,
  type InspectorRow,
  type Span,
} from "../lib/inspector";
import { visibleText } from "../lib/invisible";
import { layoutBar, timelineSpan } from "../lib/waterfall";
import { handleLinkClick, paths } from "../router";
import type { KmEvent } from "../types";
import { InspectorPanel } from "./InspectorPanel";
import { Empty } from "./ui";
import { visibleRange } from "./virtualList";
import { SafeText } from "./SafeText";

/** Must match .ins-row's height in styles.css. */
const ROW_HEIGHT = 28;
const BUCKETS = 120;

/**
 * The whole session as one row per call (request and answer), notification or lone answer, in
 * time order: a virtualised list (only the rows in view are in the DOM), a timeline that zooms
 * and scrolls from the session's first event to its last, a filter box and a side panel.
 */
/** What loads above the inspector after it revealed the anchored row (the session's summary, its
 * findings) pushes the row down: keep it in the page's view while the page settles, until the
 * user scrolls or types. Returns the cleanup. */
function keepInView(row: HTMLElement, settleMs = 3000): () => void {
  const stop = () => {
    observer.disconnect();
    window.clearTimeout(timer);
    for (const type of USER_INPUT) window.removeEventListener(type, stop);
  };
  const observer = new ResizeObserver(() => {
    if (!row.isConnected) return stop();
    const box = row.getBoundingClientRect();
    if (box.top < 0 || box.bottom > window.innerHeight) row.scrollIntoView({ block: "center" });
  });
  observer.observe(document.body);
  const timer = window.setTimeout(stop, settleMs);
  for (const type of USER_INPUT) window.addEventListener(type, stop, { once: true, passive: true });
  return stop;
}
const USER_INPUT = ["wheel", "touchstart", "keydown", "mousedown"] as const;

export function Inspector({
  events,
  sessionStart,
  sessionEnd,
  target,
}: {
  events: readonly KmEvent[];
  sessionStart: number | null;
  sessionEnd: number | null;
  /** The event the page is anchored at (#event-<id>): selected, scrolled to and marked. */
  target: string | null;
}) {
  const byId = useMemo(() => new Map(events.map((e) => [e.id, e])), [events]);
  const rows = useMemo(() => buildInspectorRows(events), [events]);
  const full = useMemo(() => timelineSpan(rows, sessionStart, sessionEnd), [rows, sessionStart, sessionEnd]);
  const [query, setQuery] = useState("");
  const shown = useMemo(() => rows.filter(rowMatcher(query, byId)), [rows, query, byId]);
  const [view, setView] = useState<Span | null>(null);
  const span: Span = view && view[0] >= full[0] && view[1] <= full[1] ? view : full;
  const [selected, setSelected] = useState<string | null>(null);
  const viewport = useRef<HTMLDivElement>(null);
  const [scroll, setScroll] = useState({ top: 0, height: 600 });

  const targetRow = target ? rows.find((r) => r.eventId === target || r.responseId === target) : undefined;
  const scrollToIndex = (i: number, where: "center" | "start" = "center") => {
    const vp = viewport.current;
    if (!vp || i < 0) return;
    const top = i * ROW_HEIGHT - (where === "center" ? vp.clientHeight / 2 - ROW_HEIGHT / 2 : 0);
    vp.scrollTop = Math.max(0, top);
    setScroll({ top: vp.scrollTop, height: vp.clientHeight });
  };
  const revealTarget = useRef(false);
  useEffect(() => {
    if (!targetRow) return;
    setSelected(targetRow.eventId);
    scrollToIndex(shown.indexOf(targetRow));
    revealTarget.current = true;
    // only when the anchor (or the rows it is found in) changes
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [target, targetRow?.eventId]);
  useEffect(() => {
    // once the list has scrolled to the anchored row and drawn it: bring it into the page's view too
    const row = revealTarget.current && target ? document.getElementById(eventAnchor(target)) : null;
    if (!row) return;
    revealTarget.current = false;
    row.scrollIntoView({ block: "center" });
    stopKeeping.current?.();
    stopKeeping.current = keepInView(row);
  });
  const stopKeeping = useRef<(() => void) | null>(null);
  useEffect(() => () => stopKeeping.current?.(), []);

  const selectedRow = selected ? rows.find((r) => r.eventId === selected) : undefined;
  const select = (row: InspectorRow | undefined, scrollTo = true) => {
    if (!row) return;
    setSelected(row.eventId);
    const i = shown.indexOf(row);
    if (scrollTo && i >= 0) {
      const vp = viewport.current;
      if (vp && (i * ROW_HEIGHT < vp.scrollTop || (i + 1) * ROW_HEIGHT > vp.scrollTop + vp.clientHeight))
        scrollToIndex(i);
    }
    if (row.start < span[0] || row.start > span[1]) setView(centerSpan(span, full, row.start));
  };
  const step = (delta: number) => {
    const i = selectedRow ? shown.indexOf(selectedRow) : -1;
    const next = i < 0 ? (delta > 0 ? 0 : shown.length - 1) : i + delta;
    if (next >= 0 && next < shown.length) select(shown[next]);
  };
  const jump = (t: number) => {
    setView(centerSpan(span, full, t));
    scrollToIndex(firstRowAt(shown, t), "start");
  };

  const onKey = (ev: KeyboardEvent) => {
    if (ev.key === "ArrowDown" || ev.key === "j") step(1);
    else if (ev.key === "ArrowUp" || ev.key === "k") step(-1);
    else return;
    ev.preventDefault();
  };

  if (rows.length === 0) return <Empty>No events recorded in this session.</Empty>;
  const [first, end] = visibleRange(scroll.top, scroll.height, ROW_HEIGHT, shown.length, 20);
  const t0 = full[0];
  const zoomed = span[0] !== full[0] || span[1] !== full[1];
  const zoom = (factor: number) => setView(zoomSpan(span, full, factor));
  return (
    <div class="card inspector" data-testid="inspector">
      <div class="ins-toolbar">
        <input
          type="search"
          class="ins-filter"
          placeholder="Filter this session: method, tool, status, payload text"
          aria-label="Filter this session"
          data-testid="inspector-filter"
          value={query}
          onInput={(ev) => setQuery((ev.target as HTMLInputElement).value)}
        />
        <span class="muted small" data-testid="inspector-count" data-shown={shown.length} data-total={rows.length}>
          {shown.length === rows.length
            ? `${rows.length.toLocaleString("en-US")} rows`
            : `${shown.length.toLocaleString("en-US")} of ${rows.length.toLocaleString("en-US")} rows`}{" "}
          over {formatMs((full[1] - full[0]) / 1000)}
        </span>
        <span class="ins-buttons">
          <button type="button" class="btn btn-small" data-testid="jump-first" onClick={() => jump(full[0])}>
            First
          </button>
          <button type="button" class="btn btn-small" data-testid="jump-last" onClick={() => jump(full[1])}>
            Last
          </button>
          <button type="button" class="btn btn-small" data-testid="zoom-in" onClick={() => zoom(0.5)} title="Zoom in">
            +
          </button>
          <button type="button" class="btn btn-small" data-testid="zoom-out" onClick={() => zoom(2)} title="Zoom out">
            −
          </button>
          <button
            type="button"
            class="btn btn-small"
            data-testid="zoom-fit"
            disabled={!zoomed}
            onClick={() => setView(null)}
          >
            Whole session
          </button>
        </span>
      </div>
      <Overview rows={shown} full={full} view={span} onJump={jump} />
      <div class="ins-axis muted small" aria-hidden="true" data-testid="timeline-axis">
        <span>+{formatMs((span[0] - t0) / 1000)}</span>
        <span>+{formatMs(((span[0] + span[1]) / 2 - t0) / 1000)}</span>
        <span>+{formatMs((span[1] - t0) / 1000)}</span>
      </div>
      <div class="ins-body">
        <div class="ins-table">
          <div class="ins-head muted small" aria-hidden="true">
            <span class="c-offset">time</span>
            <span class="c-label">method / subject</span>
            <span class="c-status">status</span>
            <span class="c-latency num">latency</span>
            <span class="c-size num">size</span>
            <span class="c-track">timeline</span>
          </div>
          <div
            class="ins-list"
            ref={viewport}
            tabIndex={0}
            role="listbox"
            aria-label="Session events"
            data-testid="inspector-list"
            onKeyDown={onKey}
            onScroll={(ev) => {
              const vp = ev.currentTarget as HTMLDivElement;
              setScroll({ top: vp.scrollTop, height: vp.clientHeight });
            }}
          >
            {shown.length === 0 && <p class="muted empty">No rows match the filter.</p>}
            <div class="vlist-spacer" style={{ height: `${shown.length * ROW_HEIGHT}px` }}>
              <div class="vlist-window" style={{ transform: `translateY(${first * ROW_HEIGHT}px)` }}>
                {shown.slice(first, end).map((r) => (
                  <Row
                    key={r.eventId}
                    row={r}
                    t0={t0}
                    span={span}
                    query={query}
                    selected={r.eventId === selected}
                    target={r === targetRow ? target : null}
                    onSelect={() => select(r, false)}
                  />
                ))}
              </div>
            </div>
          </div>
        </div>
        <InspectorPanel
          row={selectedRow}
          rows={rows}
          byId={byId}
          query={query}
          t0={t0}
          position={selectedRow ? shown.indexOf(selectedRow) : -1}
          count={shown.length}
          onStep={step}
          onSelect={(id) => select(rows.find((r) => r.eventId === id))}
        />
      </div>
    </div>
  );
}

/** The whole session at a glance: rows per slice of time, the zoomed window marked; a click
 *  moves the window there and scrolls the list to that time. */
function Overview({
  rows,
  full,
  view,
  onJump,
}: {
  rows: readonly InspectorRow[];
  full: Span;
  view: Span;
  onJump: (t: number) => void;
}) {
  const counts = useMemo(() => density(rows, full, BUCKETS), [rows, full]);
  const max = Math.max(1, ...counts);
  const width = full[1] - full[0];
  const left = ((view[0] - full[0]) / width) * 100;
  const w = ((view[1] - view[0]) / width) * 100;
  return (
    <div
      class="ins-overview"
      data-testid="timeline-overview"
      title="Click to move the timeline here"
      onClick={(ev) => {
        const box = (ev.currentTarget as HTMLDivElement).getBoundingClientRect();
        const x = (ev.clientX - box.left) / Math.max(1, box.width);
        onJump(full[0] + x * width);
      }}
    >
      {counts.map((n, i) => (
        <span key={i} class="ins-bucket" style={{ height: `${n === 0 ? 0 : Math.max(8, (n / max) * 100)}%` }} />
      ))}
      <span
        class="ins-window"
        data-testid="timeline-window"
        style={{ left: `${left}%`, width: `${Math.max(0.5, w)}%` }}
      />
    </div>
  );
}

function Row({
  row,
  t0,
  span,
  query,
  selected,
  target,
  onSelect,
}: {
  row: InspectorRow;
  t0: number;
  span: Span;
  query: string;
  selected: boolean;
  target: string | null;
  onSelect: () => void;
}) {
  const inView = (row.end ?? span[1]) >= span[0] && row.start <= span[1];
  const { left, width } = layoutBar(row, span);
  const to = paths.event(target ?? row.eventId);
  const latency = row.type === "notification" ? "" : row.end === null ? "pending" : formatMs(row.latencyMs);
  const cls = `ins-row${selected ? " is-selected" : ""}${target ? " is-target" : ""}${row.status === "error" ? " is-error" : ""}`;
  return (
    <div
      class={cls}
      id={target ? eventAnchor(target) : undefined}
      role="option"
      aria-selected={selected}
      data-testid="inspector-row"
      data-event-id={row.eventId}
      data-response-id={row.responseId ?? undefined}
      data-status={row.status}
      onClick={onSelect}
    >
      <span class="c-offset num">+{formatMs((row.start - t0) / 1000)}</span>
      <span class="c-label" title={visibleText(row.label)}>
        {row.linkedTo && (
          <span class="ins-linked" title="linked to a call">
            ↳{" "}
          </span>
        )}
        <SafeText text={row.label} query={query} />
        {row.linked.length > 0 && (
          <span class="ins-linked muted" data-testid="row-linked-count">
            {" "}
            +{row.linked.length}
          </span>
        )}
      </span>
      <span class={`c-status status-${row.status}`}>{row.status}</span>
      <span class="c-latency num">{latency}</span>
      <span class="c-size num">{formatBytes(row.size)}</span>
      <a
        href={to}
        class="c-track wf-track"
        data-testid="waterfall-bar"
        data-event-id={row.eventId}
        title={`open ${visibleText(row.label)} on its own page`}
        onClick={(ev) => {
          ev.stopPropagation();
          handleLinkClick(ev, to);
        }}
      >
        {inView && (
          <span
            class={`wf-bar wf-${row.type}${row.status === "error" ? " is-error" : ""}${row.end === null ? " is-pending" : ""}`}
            style={{ left: `${left}%`, width: `${width}%` }}
          />
        )}
      </a>
    </div>
  );
}
