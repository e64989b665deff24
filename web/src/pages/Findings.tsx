import { useEffect, useLayoutEffect, useMemo, useState } from "preact/hooks";
import { api, isAbort } from "../api";
import { Link } from "../components/Link";
import { Empty, ErrorBanner, Loading, PageHeader, SeverityBadge } from "../components/ui";
import { useApi, useTitle } from "../hooks";
import {
  EMPTY_FINDING_FILTERS,
  findingFiltersFromSearch,
  findingFiltersToSearch,
  findingHref,
  findingQuery,
  narrowToGroup,
  severityBreakdown,
  type FindingFilters,
  type FindingGroupBy,
  type FindingSort,
} from "../lib/findings";
import { formatDateTime, formatInt, isoToLocalInput, localInputToIso } from "../lib/format";
import { visibleText } from "../lib/invisible";
import { handleLinkClick, navigate, paths, useLocation } from "../router";
import { SEVERITIES, type FindingGroup, type FindingItem, type Severity } from "../types";

const PAGE_SIZE = 100;

export function FindingsPage() {
  useTitle("Findings");
  const loc = useLocation();
  const filters = useMemo(() => findingFiltersFromSearch(loc.search), [loc.search]);
  const go = (next: FindingFilters) => navigate(paths.findings + findingFiltersToSearch(next));
  const [run, setRun] = useState(0);
  const summary = useApi(
    (signal) => api.findingsSummary({ ...findingQuery(filters), group: filters.group || "rule" }, signal),
    [filters, run],
  );

  return (
    <section data-testid="page-findings">
      <PageHeader title="Findings">
        <button type="button" class="btn btn-small" onClick={() => setRun((n) => n + 1)} data-testid="refresh">
          Refresh
        </button>
      </PageHeader>
      <FindingFilterForm value={filters} onSubmit={go} />
      <ErrorBanner error={summary.error} onRetry={summary.reload} />
      {summary.data && (
        <p class="finding-totals" data-testid="finding-totals">
          <strong data-testid="finding-total">{formatInt(summary.data.total)}</strong>{" "}
          {summary.data.total === 1 ? "finding" : "findings"}
          {severityBreakdown(summary.data.by_severity).map(([s, n]) => (
            <button
              type="button"
              key={s}
              class="btn-link severity-count"
              title={`Show ${s} and above`}
              data-testid={`total-${s}`}
              onClick={() => go({ ...filters, min_severity: s })}
            >
              <SeverityBadge severity={s} /> {formatInt(n)}
            </button>
          ))}
        </p>
      )}
      {filters.group ? (
        summary.data ? (
          <GroupTable
            groups={summary.data.items}
            by={filters.group}
            truncated={summary.data.truncated}
            onPick={(key) => go(narrowToGroup(filters, key))}
          />
        ) : (
          summary.loading && <Loading />
        )
      ) : (
        <FindingList filters={filters} run={run} onSort={(sort) => go({ ...filters, sort })} />
      )}
    </section>
  );
}

function FindingFilterForm({ value, onSubmit }: { value: FindingFilters; onSubmit: (f: FindingFilters) => void }) {
  const [draft, setDraft] = useState<FindingFilters>(value);
  // the form follows the URL (a select applies at once, a link, back): before the browser paints,
  // so that what is typed right after is not overwritten by a late effect
  useLayoutEffect(() => setDraft(value), [value]);
  const text = (field: "rule" | "server" | "tool" | "session_id", label: string, placeholder = "") => (
    <label class="field">
      {label}
      <input
        type="text"
        name={field}
        value={draft[field]}
        placeholder={placeholder}
        maxLength={200}
        data-testid={`finding-filter-${field}`}
        onInput={(e) => setDraft({ ...draft, [field]: (e.target as HTMLInputElement).value })}
      />
    </label>
  );
  const time = (field: "since" | "until", label: string) => (
    <label class="field">
      {label}
      <input
        type="datetime-local"
        step={1}
        name={field}
        value={draft[field] ? isoToLocalInput(draft[field]) : ""}
        data-testid={`finding-filter-${field}`}
        onInput={(e) => setDraft({ ...draft, [field]: localInputToIso((e.target as HTMLInputElement).value) })}
      />
    </label>
  );
  // the grouping and the order apply at once; text fields on Apply (or Enter)
  const now = (change: Partial<FindingFilters>) => onSubmit({ ...draft, ...change });
  return (
    <form
      class="card filters"
      data-testid="finding-filters"
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit(draft);
      }}
    >
      <label class="field">
        Severity
        <select
          name="min_severity"
          value={draft.min_severity}
          data-testid="finding-filter-severity"
          onChange={(e) => now({ min_severity: (e.target as HTMLSelectElement).value as Severity | "" })}
        >
          <option value="">any</option>
          {[...SEVERITIES].reverse().map((s) => (
            <option key={s} value={s}>
              {s === "critical" ? "critical" : `${s} and above`}
            </option>
          ))}
        </select>
      </label>
      {text("rule", "Rule", "secret.* or danger.shell")}
      {text("server", "Server", "name or glob")}
      {text("tool", "Tool")}
      {text("session_id", "Session id")}
      {time("since", "Since")}
      {time("until", "Until")}
      <label class="field">
        Order
        <select
          name="sort"
          value={draft.sort}
          data-testid="finding-sort"
          onChange={(e) => now({ sort: (e.target as HTMLSelectElement).value as FindingSort })}
        >
          <option value="newest">newest first</option>
          <option value="oldest">oldest first</option>
          <option value="severity">highest severity first</option>
        </select>
      </label>
      <div class="field">
        Group by
        <div class="segmented" role="group" aria-label="Group by" data-testid="finding-group-by">
          {(["", "rule", "server"] as FindingGroupBy[]).map((g) => (
            <button
              type="button"
              key={g || "none"}
              class={draft.group === g ? "active" : ""}
              aria-pressed={draft.group === g}
              data-testid={`group-${g || "none"}`}
              onClick={() => now({ group: g })}
            >
              {g || "none"}
            </button>
          ))}
        </div>
      </div>
      <div class="filter-actions">
        <button type="submit" class="btn btn-primary" data-testid="finding-filter-submit">
          Apply
        </button>
        <button
          type="button"
          class="btn"
          data-testid="finding-filter-reset"
          onClick={() => onSubmit({ ...EMPTY_FINDING_FILTERS })}
        >
          Reset
        </button>
      </div>
    </form>
  );
}

interface Loaded {
  /** The filters these rows were asked for. */
  filters: FindingFilters | null;
  items: FindingItem[];
  cursor: string | null;
}

function FindingList({
  filters,
  run,
  onSort,
}: {
  filters: FindingFilters;
  run: number;
  onSort: (sort: FindingSort) => void;
}) {
  const [loaded, setLoaded] = useState<Loaded>({ filters: null, items: [], cursor: null });
  // the rows of other filters (a sort just clicked) are never shown under this one's header,
  // not even for the frame before the effect below asks for the new ones
  const current = loaded.filters === filters;
  const items = current ? loaded.items : [];
  const cursor = current ? loaded.cursor : null;
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<Error | null>(null);

  const load = async (after: string | null, signal?: AbortSignal) => {
    setLoading(true);
    setError(null);
    try {
      const page = await api.findings(
        { ...findingQuery(filters), sort: filters.sort, limit: PAGE_SIZE, cursor: after },
        signal,
      );
      setLoaded((prev) => ({
        filters,
        items: after ? [...prev.items, ...page.items] : page.items,
        cursor: page.next_cursor,
      }));
    } catch (err) {
      if (isAbort(err)) return;
      setError(err instanceof Error ? err : new Error(String(err)));
    }
    setLoading(false);
  };

  useEffect(() => {
    const ctl = new AbortController();
    void load(null, ctl.signal);
    return () => ctl.abort();
  }, [filters, run]);

  const timeSort = filters.sort === "oldest" ? "newest" : "oldest";
  return (
    <>
      <ErrorBanner error={error} onRetry={() => void load(items.length ? cursor : null)} />
      {items.length === 0 && loading && <Loading />}
      {items.length === 0 && !loading && !error && <Empty>No findings match these filters.</Empty>}
      {items.length > 0 && (
        <div class="card table-wrap">
          <table class="table table-click" data-testid="findings-table">
            <thead>
              <tr>
                <th
                  aria-sort={
                    filters.sort === "severity" ? undefined : filters.sort === "oldest" ? "ascending" : "descending"
                  }
                >
                  <button
                    type="button"
                    class="btn-link th-sort"
                    data-testid="sort-time"
                    onClick={() => onSort(filters.sort === "severity" ? "newest" : timeSort)}
                  >
                    Time {filters.sort === "newest" ? "↓" : filters.sort === "oldest" ? "↑" : ""}
                  </button>
                </th>
                <th aria-sort={filters.sort === "severity" ? "descending" : undefined}>
                  <button
                    type="button"
                    class="btn-link th-sort"
                    data-testid="sort-severity"
                    onClick={() => onSort("severity")}
                  >
                    Severity {filters.sort === "severity" ? "↓" : ""}
                  </button>
                </th>
                <th>Rule</th>
                <th>Server</th>
                <th>Tool</th>
                <th>Session</th>
                <th>JSON path</th>
                <th>Message</th>
              </tr>
            </thead>
            <tbody>
              {items.map((f) => (
                <FindingRow key={`${f.event_id}/${f.index}`} f={f} />
              ))}
            </tbody>
          </table>
          <p class="muted small" data-testid="findings-count">
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
    </>
  );
}

function FindingRow({ f }: { f: FindingItem }) {
  const to = findingHref(paths.session(f.session_id), f.event_id);
  return (
    <tr
      data-testid="finding-item"
      data-event-id={f.event_id}
      data-severity={f.severity}
      data-rule={f.rule}
      onClick={(ev) => {
        if ((ev.target as Element).closest("a")) return;
        handleLinkClick(ev, to);
      }}
    >
      <td class="nowrap">{formatDateTime(f.ts)}</td>
      <td>
        <SeverityBadge severity={f.severity} />
      </td>
      <td>
        <Link to={to} testid="finding-link" title="Show the event in its session">
          <code>{f.rule}</code>
        </Link>
      </td>
      <td>{visibleText(f.server ?? "—")}</td>
      <td>{visibleText(f.tool ?? "—")}</td>
      <td>
        <Link to={paths.session(f.session_id)} class="muted mono">
          {f.session_id.slice(-8)}
        </Link>
      </td>
      <td data-testid="finding-path">{f.path ? <code>{f.path}</code> : <span class="muted">whole message</span>}</td>
      <td class="finding-message">
        {f.message}{" "}
        <Link to={paths.event(f.event_id)} class="muted small" testid="finding-event-link">
          event
        </Link>
      </td>
    </tr>
  );
}

function GroupTable({
  groups,
  by,
  truncated,
  onPick,
}: {
  groups: FindingGroup[];
  by: "rule" | "server";
  truncated: boolean;
  onPick: (key: string) => void;
}) {
  if (groups.length === 0) return <Empty>No findings match these filters.</Empty>;
  return (
    <div class="card table-wrap">
      <table class="table" data-testid="finding-groups">
        <thead>
          <tr>
            <th>{by === "rule" ? "Rule" : "Server"}</th>
            <th>Highest</th>
            <th class="num">Findings</th>
            <th>By severity</th>
            <th class="num">Sessions</th>
            <th class="num">{by === "rule" ? "Servers" : "Rules"}</th>
            <th>Last seen</th>
          </tr>
        </thead>
        <tbody>
          {groups.map((g) => (
            <tr key={g.key} data-testid="finding-group" data-key={g.key}>
              <td>
                <button
                  type="button"
                  class="btn-link"
                  data-testid="group-pick"
                  title={`Show the findings of ${g.key}`}
                  onClick={() => onPick(g.key)}
                >
                  {by === "rule" ? <code>{g.key}</code> : g.key}
                </button>
              </td>
              <td>
                <SeverityBadge severity={g.highest} />
              </td>
              <td class="num" data-testid="group-count">
                {formatInt(g.count)}
              </td>
              <td class="nowrap">
                {severityBreakdown(g.by_severity)
                  .map(([s, n]) => `${formatInt(n)} ${s}`)
                  .join(" · ")}
              </td>
              <td class="num">{formatInt(g.sessions)}</td>
              <td class="num">{formatInt(g.related)}</td>
              <td class="nowrap">{formatDateTime(g.last_seen)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {truncated && <p class="muted small">Only the first groups are shown; narrow the filters to see the rest.</p>}
    </div>
  );
}
