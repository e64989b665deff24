import { useMemo } from "preact/hooks";
import { api } from "../api";
import { Chart, COLORS, type ChartSeries } from "../components/Chart";
import { Empty, ErrorBanner, Loading, PageHeader, RangePicker } from "../components/ui";
import { useApi, useTitle } from "../hooks";
import {
  formatBytes,
  formatCompact,
  formatInt,
  formatMs,
  formatPercent,
  formatTokens,
  formatTokensShort,
  groupTokens,
  plural,
} from "../lib/format";
import { visibleText } from "../lib/invisible";
import { toQueryString } from "../lib/query";
import { countColumn, fillSeries, parseRange, rangeQuery, valueColumn, type RangeKey } from "../lib/stats";
import { handleLinkClick, navigate, paths, useLocation } from "../router";
import type { Stats } from "../types";

type ToolRow = Stats["by_tool"][number];

const fmtMs = (v: number) => formatMs(v);
const fmtCount = (v: number) => formatCompact(v);
const fmtBytes = (v: number) => formatBytes(v);
const fmtTokens = (v: number) => formatTokensShort(v);

function analyticsPath(range: RangeKey, tool?: string, server?: string): string {
  return paths.analytics + toQueryString({ range, tool, server });
}

export function AnalyticsPage() {
  useTitle("Analytics");
  const loc = useLocation();
  const params = new URLSearchParams(loc.search);
  const range = parseRange(params.get("range"));
  const tool = params.get("tool") ?? "";
  const server = params.get("server") ?? "";

  const all = useApi((signal) => api.stats(rangeQuery(range, Date.now()), signal), [range]);

  return (
    <section data-testid="page-analytics">
      <PageHeader title="Analytics">
        <RangePicker
          value={range}
          onChange={(r) => navigate(analyticsPath(r, tool || undefined, server || undefined), { replace: true })}
        />
      </PageHeader>
      <p class="muted small estimate-note" data-testid="token-estimate-note">
        Context tokens are an <strong>ESTIMATE</strong>: response bytes ÷ 4 (≈). Real token counts depend on the model's
        tokenizer.
      </p>
      <ErrorBanner error={all.error} onRetry={all.reload} />
      {all.loading && !all.data && <Loading />}
      {all.data && <ToolTable rows={all.data.by_tool} range={range} selected={{ tool, server }} />}
      {tool && <ToolDetail range={range} tool={tool} server={server} />}
    </section>
  );
}

function ToolTable({
  rows,
  range,
  selected,
}: {
  rows: ToolRow[];
  range: RangeKey;
  selected: { tool: string; server: string };
}) {
  const sorted = useMemo(() => [...rows].sort((a, b) => b.calls - a.calls || a.tool.localeCompare(b.tool)), [rows]);
  if (sorted.length === 0) return <Empty>No tool calls in this range.</Empty>;
  return (
    <div class="card table-wrap">
      <h2>Tools</h2>
      <table class="table table-click" data-testid="analytics-tools">
        <thead>
          <tr>
            <th>Tool</th>
            <th>Server</th>
            <th class="num">Calls</th>
            <th class="num">Errors</th>
            <th class="num">p50</th>
            <th class="num">p95</th>
            <th class="num">p99</th>
            <th class="num">Bytes</th>
            <th class="num">Result bytes</th>
            <th class="num" title="ESTIMATE: response bytes / 4">
              Context tokens (est.)
            </th>
          </tr>
        </thead>
        <tbody>
          {sorted.map((r) => {
            const to = analyticsPath(range, r.tool, r.server);
            const active = r.tool === selected.tool && (!selected.server || r.server === selected.server);
            return (
              <tr
                key={`${r.server}\u0000${r.tool}`}
                class={active ? "selected" : ""}
                data-testid="analytics-tool-row"
                data-tool={r.tool}
                onClick={(ev) => handleLinkClick(ev, to)}
              >
                <td>
                  <a href={to} onClick={(ev) => handleLinkClick(ev, to)}>
                    {visibleText(r.tool)}
                  </a>
                </td>
                <td class="muted">{r.server || "—"}</td>
                <td class="num">{formatInt(r.calls)}</td>
                <td class={`num ${r.errors ? "text-bad" : ""}`}>
                  {formatInt(r.errors)} <span class="muted small">{r.errors ? formatPercent(r.error_rate) : ""}</span>
                </td>
                <td class="num">{formatMs(r.p50_ms)}</td>
                <td class="num">{formatMs(r.p95_ms)}</td>
                <td class="num">{formatMs(r.p99_ms)}</td>
                <td class="num">{formatBytes(r.bytes)}</td>
                <td class="num">{r.response_bytes === undefined ? "—" : formatBytes(r.response_bytes)}</td>
                <td class="num" data-testid="tool-est-tokens">
                  {formatTokensShort(groupTokens(r))}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function ToolDetail({ range, tool, server }: { range: RangeKey; tool: string; server: string }) {
  const stats = useApi(
    (signal) => api.stats({ ...rangeQuery(range, Date.now()), tool, server: server || undefined }, signal),
    [range, tool, server],
  );
  const charts = useMemo(() => {
    if (!stats.data) return null;
    const cols = fillSeries(stats.data);
    const latency: ChartSeries[] = [
      { label: "p50", color: COLORS.green, values: valueColumn(cols.points, (p) => p.p50_ms) },
      { label: "p95", color: COLORS.amber, values: valueColumn(cols.points, (p) => p.p95_ms) },
      { label: "p99", color: COLORS.red, values: valueColumn(cols.points, (p) => p.p99_ms) },
    ];
    const calls: ChartSeries[] = [
      { label: "calls", color: COLORS.blue, values: countColumn(cols.points, (p) => p.calls), bars: true },
      { label: "errors", color: COLORS.red, values: countColumn(cols.points, (p) => p.errors), bars: true },
    ];
    const bytes: ChartSeries[] = [
      { label: "all bytes", color: COLORS.gray, values: countColumn(cols.points, (p) => p.bytes) },
      {
        label: "result bytes",
        color: COLORS.purple,
        values: countColumn(cols.points, (p) => p.response_bytes),
        fill: true,
      },
    ];
    const tokens: ChartSeries[] = [
      {
        label: "≈ tokens (est.)",
        color: COLORS.purple,
        values: countColumn(cols.points, (p) => groupTokens(p) ?? 0),
        bars: true,
      },
    ];
    return { xs: cols.xs, latency, calls, bytes, tokens };
  }, [stats.data]);

  const t = stats.data?.totals;
  return (
    <div class="tool-detail" data-testid="tool-detail">
      <h2>
        {tool} {server && <span class="muted small">on {server}</span>}
      </h2>
      <ErrorBanner error={stats.error} onRetry={stats.reload} />
      {stats.loading && !stats.data && <Loading />}
      {t && (
        <p class="summary" data-testid="tool-summary">
          {plural(t.calls, "call")} · {plural(t.errors, "error")} ({formatPercent(t.error_rate)}) · p50{" "}
          {formatMs(t.p50_ms)} · p95 {formatMs(t.p95_ms)} · p99 {formatMs(t.p99_ms)} · results{" "}
          {t.response_bytes === undefined ? "—" : formatBytes(t.response_bytes)} ·{" "}
          <strong data-testid="tool-est-tokens-total">{formatTokens(groupTokens(t))}</strong>
        </p>
      )}
      {charts && (
        <div class="charts">
          <Chart
            title="Latency percentiles"
            xs={charts.xs}
            series={charts.latency}
            format={fmtMs}
            testid="chart-tool-latency"
          />
          <Chart
            title="Calls and errors"
            xs={charts.xs}
            series={charts.calls}
            format={fmtCount}
            testid="chart-tool-calls"
          />
          <Chart
            title="Payload sizes"
            xs={charts.xs}
            series={charts.bytes}
            format={fmtBytes}
            testid="chart-tool-bytes"
          />
          <Chart
            title="Context tokens"
            note="ESTIMATE ≈ result bytes ÷ 4"
            xs={charts.xs}
            series={charts.tokens}
            format={fmtTokens}
            testid="chart-tool-tokens"
          />
        </div>
      )}
    </div>
  );
}
