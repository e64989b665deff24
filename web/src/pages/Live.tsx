import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, openStream } from "../api";
import { FilterForm } from "../components/FilterForm";
import { PageHeader } from "../components/ui";
import { VirtualList } from "../components/virtualList";
import { useMe, useTitle } from "../hooks";
import { el } from "../lib/dom";
import {
  directionArrow,
  eventLabel,
  formatBytes,
  formatClock,
  formatInt,
  formatMs,
  parseTsMicros,
} from "../lib/format";
import { SessionNames } from "../lib/sessionNames";
import {
  LIVE_EVENT,
  LIVE_LAGGED,
  LiveFeed,
  liveUrl,
  parseLagged,
  parseLiveEvent,
  pausedWaitingText,
  skippedText,
} from "../lib/live";
import { filtersFromSearch, filtersToSearch, liveFilters, type EventFilters } from "../lib/query";
import { handleLinkClick, navigate, paths, useLocation } from "../router";
import type { KmEvent } from "../types";
import { serverName } from "./Sessions";

/** The newest this many events are kept (only the rows in view are in the DOM). */
export const MAX_ROWS = 2000;
/** Must match .live-row's height in styles.css. */
const ROW_HEIGHT = 29;
/** Minimum time between two DOM updates of the list. */
const FLUSH_MS = 100;

/** "revoked": the server ended the stream because the sign-in or key no longer grants access
 *  (the reconnect then signs out, or reopens with a changed role). */
type Status = "connecting" | "open" | "reconnecting" | "unreachable" | "revoked";
const STATUS_TEXT: Record<Status, string> = {
  connecting: "connecting…",
  open: "connected",
  reconnecting: "reconnecting…",
  unreachable: "the server is not answering; retrying…",
  revoked: "access changed: checking sign-in…",
};
/** After this many failed attempts in a row (about a second apart) the status says the server
 *  is not answering (km ui stopped, or the network is down), not just "reconnecting…". */
export const UNREACHABLE_AFTER = 5;

/** Newest first by the time the event happened (not by arrival), the id breaking ties. */
export function newestFirst(a: KmEvent, b: KmEvent): number {
  const d = parseTsMicros(b.ts) - parseTsMicros(a.ts);
  return d !== 0 && !Number.isNaN(d) ? d : a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** One list row, built with text nodes only (payload-derived strings are untrusted). */
function liveRow(e: KmEvent, names: SessionNames): HTMLAnchorElement {
  const failed = e.is_error || e.kind === "error" || e.kind === "invalid";
  return el(
    "a",
    {
      href: paths.event(e.id),
      class: `live-row${failed ? " is-error" : ""}`,
      "data-testid": "live-row",
      "data-event-id": e.id,
      "data-kind": e.kind,
      "data-ts": e.ts,
      "data-session-id": e.session_id,
    },
    el("span", { class: "c-time" }, formatClock(e.ts)),
    el("span", { class: "c-dir", title: e.direction }, directionArrow(e.direction)),
    el("span", { class: `c-kind badge kind-${e.kind}` }, e.kind),
    names.cell(e.session_id, "c-server"),
    el("span", { class: "c-session", title: e.session_id, "data-testid": "live-session" }, e.session_id.slice(0, 8)),
    el("span", { class: "c-label" }, eventLabel(e)),
    el("span", { class: "c-latency num" }, e.latency_ms === null ? "" : formatMs(e.latency_ms)),
    el("span", { class: "c-size num" }, formatBytes(e.size_bytes)),
    riskCell(e.risk?.level),
  );
}

/** The event's risk level as a badge (text only), or a dash. */
function riskCell(level: string | undefined): HTMLSpanElement {
  const known = level && ["low", "medium", "high", "critical"].includes(level) ? level : null;
  return known
    ? el("span", { class: `c-risk badge sev-${known}`, "data-testid": "live-risk", "data-level": known }, known)
    : el("span", { class: "c-risk muted", "data-testid": "live-risk", "data-level": "none" }, "—");
}

export function LivePage() {
  useTitle("Live");
  const local = useMe().me.mode === "local";
  const loc = useLocation();
  const filters = useMemo(() => liveFilters(filtersFromSearch(loc.search)), [loc.search]);
  const streamUrl = liveUrl(filters);

  const list = useRef<HTMLDivElement>(null);
  const feed = useRef<LiveFeed | null>(null);
  const rows = useRef<VirtualList<KmEvent> | null>(null);
  const scheduleRef = useRef<() => void>(() => undefined);
  const [status, setStatus] = useState<Status>("connecting");
  const [paused, setPaused] = useState(false);
  const [counts, setCounts] = useState({ received: 0, shown: 0, buffered: 0, skipped: 0 });

  useEffect(() => {
    const viewport = list.current;
    if (!viewport) return;
    const f = new LiveFeed(MAX_ROWS);
    if (feed.current?.paused) f.pause();
    feed.current = f;
    const names = new SessionNames((id) => api.session(id).then((s) => serverName(s)));
    const vlist = new VirtualList<KmEvent>({
      viewport,
      render: (e) => liveRow(e, names),
      rowHeight: ROW_HEIGHT,
      cap: MAX_ROWS,
      order: newestFirst,
    });
    rows.current = vlist;
    setCounts({ received: 0, shown: 0, buffered: 0, skipped: 0 });
    setStatus("connecting");

    // At most one DOM update per animation frame, and at most one per FLUSH_MS: a burst of
    // 1,000 events/s becomes ~10 batched updates a second, each touching only the rows in view.
    let frame = 0;
    let timer = 0;
    let lastFlush = 0;
    const flush = () => {
      frame = 0;
      lastFlush = performance.now();
      vlist.prepend(f.drain());
      setCounts({ received: f.received, shown: vlist.size, buffered: f.bufferedCount, skipped: f.skipped });
    };
    const schedule = () => {
      if (frame || timer) return;
      const wait = lastFlush + FLUSH_MS - performance.now();
      if (wait <= 0) frame = requestAnimationFrame(flush);
      else
        timer = window.setTimeout(() => {
          timer = 0;
          frame = requestAnimationFrame(flush);
        }, wait);
    };
    scheduleRef.current = schedule;

    const close = openStream(streamUrl, {
      onOpen: () => setStatus("open"),
      // it retries by itself; a 401 (e.g. km ui restarted with a new token) ends the sign-in instead
      onError: (failures) =>
        setStatus((s) => (s === "revoked" ? s : failures >= UNREACHABLE_AFTER ? "unreachable" : "reconnecting")),
      onMessage: (name, data) => {
        if (name === "revoked") {
          setStatus("revoked");
          return;
        }
        if (name === LIVE_LAGGED) {
          f.lagged(parseLagged(data));
          schedule();
          return;
        }
        const e = name === LIVE_EVENT ? parseLiveEvent(data) : null;
        if (!e) return;
        f.push(e);
        schedule();
      },
    });
    return () => {
      close();
      if (frame) cancelAnimationFrame(frame);
      window.clearTimeout(timer);
      scheduleRef.current = () => undefined;
      vlist.destroy();
      rows.current = null;
    };
  }, [streamUrl]);

  const togglePause = () => {
    const f = feed.current;
    if (!f) return;
    if (f.paused) f.resume();
    else f.pause();
    setPaused(f.paused);
    setCounts((c) => ({ ...c, buffered: f.bufferedCount }));
    scheduleRef.current();
  };

  const clear = () => {
    rows.current?.clear();
    setCounts((c) => ({ ...c, shown: 0 }));
  };

  const applyFilters = (next: EventFilters) =>
    navigate(paths.live + filtersToSearch(liveFilters(next)), { replace: true });

  const onListClick = (ev: MouseEvent) => {
    const row = (ev.target as Element | null)?.closest?.("a.live-row");
    const id = row?.getAttribute("data-event-id");
    if (id) handleLinkClick(ev, paths.event(id));
  };

  const waiting = pausedWaitingText(paused, counts.buffered);
  return (
    <section data-testid="page-live">
      <PageHeader title="Live">
        <span class={`status status-${status}`} data-testid="live-status">
          {status === "unreachable" && local
            ? "km ui is not answering: is it still running? retrying…"
            : STATUS_TEXT[status]}
        </span>
        <button
          type="button"
          class={`btn ${paused ? "btn-primary" : ""}`}
          data-testid="pause-button"
          aria-pressed={paused}
          onClick={togglePause}
        >
          {paused ? "Resume" : "Pause"}
        </button>
        <button type="button" class="btn" data-testid="clear-button" onClick={clear}>
          Clear
        </button>
      </PageHeader>
      <FilterForm value={filters} onSubmit={applyFilters} withTime={false} submitLabel="Apply" testid="live-filters" />
      <p class="live-counts muted" data-testid="live-counts">
        {formatInt(counts.received)} received · {formatInt(counts.shown)} in the list (the newest {formatInt(MAX_ROWS)}{" "}
        are kept)
        {paused && (
          <strong class="buffered" data-testid="buffered-count">
            {" "}
            · paused, {formatInt(counts.buffered)} new while paused
          </strong>
        )}
        {counts.skipped > 0 && (
          <strong class="skipped" data-testid="skipped-count">
            {" "}
            · {skippedText(counts.skipped)}
          </strong>
        )}
      </p>
      <div class="live-table card">
        <div class="live-head" aria-hidden="true">
          <span class="c-time">time</span>
          <span class="c-dir" />
          <span class="c-kind">kind</span>
          <span class="c-server">server</span>
          <span class="c-session">session</span>
          <span class="c-label">method / subject</span>
          <span class="c-latency num">latency</span>
          <span class="c-size num">size</span>
          <span class="c-risk">risk</span>
        </div>
        {counts.shown === 0 && (
          <p class="muted empty" data-testid="live-empty">
            {waiting ?? (
              <>
                Waiting for events… they appear here as <code>km</code> records them.
              </>
            )}
          </p>
        )}
        <div class="live-list" ref={list} data-testid="live-list" onClick={onListClick} />
      </div>
    </section>
  );
}
