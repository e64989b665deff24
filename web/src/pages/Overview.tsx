import { useMemo } from "preact/hooks";
import { api } from "../api";
import { Chart, COLORS, type ChartSeries } from "../components/Chart";
import { Link } from "../components/Link";
import { RadarPanel } from "../components/Radar";
import { Empty, ErrorBanner, Loading, PageHeader, RangePicker, StatCard } from "../components/ui";
import { QuotaBanner, UsageMeter } from "../components/Usage";
import { useApi, useAutoRefresh, useMe, useTitle } from "../hooks";
import { formatCompact, formatInt, formatMs, formatPercent, plural } from "../lib/format";
import { visibleText } from "../lib/invisible";
import { toQueryString } from "../lib/query";
import {
  countColumn,
  fillSeries,
  parseRange,
  perMinute,
  RANGES,
  RECENT_MINUTES,
  recentPerMinute,
  rangeQuery,
  topByCalls,
  valueColumn,
  type RangeKey,
} from "../lib/stats";
import { navigate, paths, useLocation } from "../router";
import type { StatGroup, Stats } from "../types";

export function useRange(): [RangeKey, (key: RangeKey) => void] {
  const loc = useLocation();
  const params = new URLSearchParams(loc.search);
  const range = parseRange(params.get("range"));
  const setRange = (key: RangeKey) => {
    params.set("range", key);
    navigate(`${loc.pathname}?${params.toString()}`, { replace: true });
  };
  return [range, setRange];
}

export function OverviewPage() {
  useTitle("Overview");
  const [range, setRange] = useRange();
  const { me } = useMe();
  const stats = useApi((signal) => api.stats(rangeQuery(range, Date.now()), signal), [range, me.org.id]);
  const team = me.mode === "team";
  // the organization's plan usage (team server only: km ui's local store has no plan)
  const org = useApi((signal) => (team ? api.org(signal) : Promise.resolve(null)), [team, me.org.id]);
  const usage = org.data?.usage;
  useAutoRefresh(() => {
    stats.reload();
    if (team) org.reload();
  });

  return (
    <section data-testid="page-overview">
      <PageHeader title="Overview">
        <RangePicker value={range} onChange={setRange} />
        <button type="button" class="btn btn-small" onClick={stats.reload} data-testid="refresh">
          Refresh
        </button>
      </PageHeader>
      <QuotaBanner usage={usage} />
      {usage && (
        <p class="usage-line muted" data-testid="overview-usage">
          Plan <strong>{org.data?.plan}</strong>: <UsageMeter usage={usage} />
        </p>
      )}
      <ErrorBanner error={stats.error} onRetry={stats.reload} />
      {stats.loading && !stats.data && <Loading />}
      {stats.data && <OverviewBody stats={stats.data} range={range} />}
    </section>
  );
}

const fmtCount = (v: number) => formatCompact(v);
const fmtMs = (v: number) => formatMs(v);

function OverviewBody({ stats, range }: { stats: Stats; range: RangeKey }) {
  const t = stats.totals;
  const rangeMs = RANGES[range].ms;
  const { xs, traffic, latency } = useMemo(() => {
    const cols = fillSeries(stats);
    const traffic: ChartSeries[] = [
      { label: "events", color: COLORS.blue, values: countColumn(cols.points, (p) => p.events), bars: true },
      { label: "errors", color: COLORS.red, values: countColumn(cols.points, (p) => p.errors), bars: true },
    ];
    const latency: ChartSeries[] = [
      { label: "p50", color: COLORS.green, values: valueColumn(cols.points, (p) => p.p50_ms) },
      { label: "p95", color: COLORS.amber, values: valueColumn(cols.points, (p) => p.p95_ms) },
    ];
    return { xs: cols.xs, traffic, latency };
  }, [stats]);

  const recent = recentPerMinute(stats, Date.now());
  const rate = recent ?? perMinute(t.events, rangeMs);
  const perBucket = stats.bucket === "minute" ? "per minute" : stats.bucket === "hour" ? "per hour" : "per day";
  return (
    <>
      <div class="cards">
        <StatCard
          testid="card-events-per-min"
          label="Events / min"
          value={rate.toFixed(rate < 10 ? 2 : 0)}
          hint={
            recent === null
              ? `average over ${RANGES[range].label} (${plural(t.events, "event")})`
              : `last ${RECENT_MINUTES} min · ${plural(t.events, "event")} in ${RANGES[range].label}`
          }
        />
        <StatCard
          testid="card-error-rate"
          label="Error rate"
          value={formatPercent(t.error_rate)}
          hint={`${plural(t.errors, "error")} / ${plural(t.calls, "call")}`}
          tone={t.error_rate > 0.05 ? "bad" : undefined}
        />
        <StatCard testid="card-p95" label="p95 latency" value={formatMs(t.p95_ms)} hint={`p50 ${formatMs(t.p50_ms)}`} />
        <StatCard
          testid="card-active-sessions"
          label="Running sessions"
          value={formatInt(t.running_sessions ?? 0)}
          hint={`${formatInt(t.active_sessions ?? 0)} active in ${RANGES[range].label}`}
        />
        <StatCard
          testid="card-findings"
          label="Findings"
          value={formatInt(t.findings ?? 0)}
          hint="secrets, PII, risky calls"
          tone={(t.findings ?? 0) > 0 ? "bad" : undefined}
        />
      </div>
      <div class="charts">
        <Chart
          title="Events and errors"
          note={`(${perBucket})`}
          xs={xs}
          series={traffic}
          format={fmtCount}
          testid="chart-traffic"
        />
        <Chart title="Latency" note="(p50, p95)" xs={xs} series={latency} format={fmtMs} testid="chart-latency" />
      </div>
      <div class="two-col">
        <TopTable
          title="Top tools"
          testid="top-tools"
          rows={topByCalls(stats.by_tool).map((r) => ({
            key: `${r.server}\u0000${r.tool}`,
            name: r.tool,
            sub: r.server,
            to: paths.analytics + toQueryString({ range, tool: r.tool, server: r.server }),
            group: r,
          }))}
        />
        <TopTable
          title="Top servers"
          testid="top-servers"
          rows={topByCalls(stats.by_server).map((r) => ({ key: r.server, name: r.server || "(unnamed)", group: r }))}
        />
      </div>
      <RadarPanel />
    </>
  );
}

interface TopRow {
  key: string;
  name: string;
  sub?: string;
  to?: string;
  group: StatGroup;
}

function TopTable({ title, rows, testid }: { title: string; rows: TopRow[]; testid: string }) {
  return (
    <div class="card">
      <h2>{title}</h2>
      {rows.length === 0 ? (
        <Empty>No calls in this range.</Empty>
      ) : (
        <table class="table" data-testid={testid}>
          <thead>
            <tr>
              <th>Name</th>
              <th class="num">Calls</th>
              <th class="num">Errors</th>
              <th class="num">p95</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.key} data-testid={`${testid}-row`}>
                <td>
                  {r.to ? <Link to={r.to}>{visibleText(r.name)}</Link> : visibleText(r.name)}
                  {r.sub && <span class="muted small"> · {r.sub}</span>}
                </td>
                <td class="num">{formatInt(r.group.calls)}</td>
                <td class={`num ${r.group.errors ? "text-bad" : ""}`}>
                  {formatInt(r.group.errors)}
                  {r.group.errors > 0 && <span class="muted small"> ({formatPercent(r.group.error_rate)})</span>}
                </td>
                <td class="num">{formatMs(r.group.p95_ms)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
