import { useEffect, useMemo, useState } from "preact/hooks";
import { api, download, exportUrl, isAbort } from "../api";
import { FilterForm } from "../components/FilterForm";
import { Link } from "../components/Link";
import {
  Direction,
  Empty,
  ErrorBanner,
  KindBadge,
  Loading,
  PageHeader,
  RangePicker,
  RiskBadge,
} from "../components/ui";
import { useTitle } from "../hooks";
import { eventLabel, formatBytes, formatDateTime, formatInt, formatMs } from "../lib/format";
import { filtersFromSearch, filtersToSearch, type EventFilters } from "../lib/query";
import { RANGE_KEYS, RANGES, type RangeKey } from "../lib/stats";
import { gatherPages } from "../lib/textsearch";
import { handleLinkClick, navigate, paths, useLocation } from "../router";
import type { KmEvent } from "../types";

const PAGE_SIZE = 100;
/** How long a text search keeps reading further back on its own when a page found few matches. */
const AUTO_CONTINUE_MS = 700;

function apiQuery(f: EventFilters, cursor: string | null) {
  return {
    session_id: f.session_id || undefined,
    method: f.method || undefined,
    tool: f.tool || undefined,
    kind: f.kind || undefined,
    errors: f.errors || undefined,
    since: f.since || undefined,
    until: f.until || undefined,
    q: f.q || undefined,
    min_level: f.min_level || undefined,
    limit: PAGE_SIZE,
    cursor,
  };
}

function parseRangeParam(value: string | null): RangeKey | null {
  return (RANGE_KEYS as readonly string[]).includes(value ?? "") ? (value as RangeKey) : null;
}

export function SearchPage() {
  useTitle("Search");
  const loc = useLocation();
  const filters = useMemo(() => filtersFromSearch(loc.search), [loc.search]);
  const [found, setItems] = useState<KmEvent[]>([]);
  const [next, setCursor] = useState<string | null>(null);
  const [bound, setSearchedTo] = useState<string | null>(null);
  // results of other filters are never shown under these, not even for the frame before the
  // effect below asks for the new ones
  const [foundFor, setFoundFor] = useState<EventFilters | null>(null);
  const fresh = foundFor === filters;
  const items = fresh ? found : [];
  const cursor = fresh ? next : null;
  const searchedTo = fresh ? bound : null;
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<Error | null>(null);
  const [run, setRun] = useState(0);

  const load = async (after: string | null, signal?: AbortSignal) => {
    setLoading(true);
    setError(null);
    try {
      // a text search reads a bounded number of events per request: when a page stopped at that
      // bound with few matches, it goes on by itself for a moment before showing what it found
      const { items: more, last: page } = await gatherPages(
        (c) => api.events(apiQuery(filters, c), signal),
        after,
        PAGE_SIZE,
        AUTO_CONTINUE_MS,
      );
      setItems((prev) => (after ? [...prev, ...more] : more));
      setFoundFor(filters);
      setCursor(page.next_cursor);
      setSearchedTo(page.searched_to ?? null);
    } catch (err) {
      if (isAbort(err)) return;
      setError(err instanceof Error ? err : new Error(String(err)));
      if (!after) setItems([]);
    }
    setLoading(false);
  };

  // The URL is the source of truth: loading /search?tool=x restores the form and runs it.
  useEffect(() => {
    const ctl = new AbortController();
    setItems([]);
    setCursor(null);
    setSearchedTo(null);
    void load(null, ctl.signal);
    return () => ctl.abort();
  }, [filters, run]);

  const submit = (next: EventFilters) => {
    const target = paths.search + filtersToSearch(next);
    if (target === loc.pathname + loc.search) setRun((n) => n + 1);
    else navigate(target);
  };

  // "last 15 min / 1 h / 24 h / 7 d": a search from that long before now, up to now
  const lastRange = (key: RangeKey) =>
    navigate(
      paths.search +
        filtersToSearch(
          { ...filters, since: new Date(Date.now() - RANGES[key].ms).toISOString(), until: "" },
          { range: key },
        ),
    );
  const range = parseRangeParam(new URLSearchParams(loc.search).get("range"));
  const [downloadError, setDownloadError] = useState<Error | null>(null);
  const save = (format: "jsonl" | "har") => {
    setDownloadError(null);
    download(exportUrl(format, apiQuery(filters, null))).catch((err: unknown) =>
      setDownloadError(err instanceof Error ? err : new Error(String(err))),
    );
  };

  return (
    <section data-testid="page-search">
      <PageHeader title="Search events">
        <RangePicker value={range} onChange={lastRange} testid="search-range" />
        <button
          type="button"
          class="btn btn-small"
          title="Every event this search matches, as JSON Lines (km import reads it back)"
          data-testid="search-download-jsonl"
          onClick={() => save("jsonl")}
        >
          Download JSONL
        </button>
        <button
          type="button"
          class="btn btn-small"
          title="Every call this search matches, as HAR (HTTP Archive viewers)"
          data-testid="search-download-har"
          onClick={() => save("har")}
        >
          HAR
        </button>
      </PageHeader>
      <FilterForm value={filters} onSubmit={submit} withTime={true} submitLabel="Search" testid="search-form" />
      <ErrorBanner error={error} onRetry={() => setRun((n) => n + 1)} />
      <ErrorBanner error={downloadError} />
      {items.length === 0 && loading && <Loading what="Searching" />}
      {items.length === 0 && !loading && !error && !searchedTo && <Empty>No events match these filters.</Empty>}
      {searchedTo && !loading && (
        <p class="muted small" data-testid="searched-to">
          Text search reads a bounded number of events per page: searched back to {formatDateTime(searchedTo)}.
          {items.length === 0 ? " No match yet." : ""} Load more to search further back.
        </p>
      )}
      {items.length > 0 && (
        <div class="card table-wrap">
          <table class="table table-click" data-testid="search-results">
            <thead>
              <tr>
                <th>Time</th>
                <th />
                <th>Kind</th>
                <th>Method / subject</th>
                <th class="num">Latency</th>
                <th class="num">Size</th>
                <th>Risk</th>
                <th>Session</th>
              </tr>
            </thead>
            <tbody>
              {items.map((e) => (
                <tr
                  key={e.id}
                  data-testid="search-result"
                  data-event-id={e.id}
                  class={e.is_error ? "is-error" : ""}
                  onClick={(ev) => {
                    if ((ev.target as Element).closest("a")) return;
                    handleLinkClick(ev, paths.event(e.id));
                  }}
                >
                  <td class="nowrap">{formatDateTime(e.ts)}</td>
                  <td>
                    <Direction direction={e.direction} />
                  </td>
                  <td>
                    <KindBadge kind={e.kind} isError={e.is_error} />
                  </td>
                  <td>
                    <Link to={paths.event(e.id)} testid="search-result-link">
                      {eventLabel(e)}
                    </Link>
                  </td>
                  <td class="num">{formatMs(e.latency_ms)}</td>
                  <td class="num">{formatBytes(e.size_bytes)}</td>
                  <td>
                    <RiskBadge level={e.risk?.level} testid="event-risk" />
                  </td>
                  <td>
                    <Link to={paths.session(e.session_id)} class="muted mono">
                      {e.session_id.slice(-8)}
                    </Link>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <p class="muted small" data-testid="search-count">
            {formatInt(items.length)} shown{cursor ? ", more available" : ""}
          </p>
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
