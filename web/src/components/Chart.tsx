import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useZoneMode } from "../hooks";
import { formatAxisTime, zoneName } from "../lib/format";
import { isolatedIndices } from "../lib/stats";

export interface ChartSeries {
  label: string;
  color: string;
  values: readonly (number | null)[];
  fill?: boolean;
  /** Draw as bars (counts) instead of a line. */
  bars?: boolean;
}

interface Props {
  title: string;
  /** Seconds since the epoch. */
  xs: readonly number[];
  series: readonly ChartSeries[];
  format?: (v: number) => string;
  height?: number;
  testid?: string;
  note?: string;
}

export const COLORS = {
  blue: "#1f4fd1",
  red: "#c62828",
  amber: "#b26a00",
  green: "#2e7d32",
  purple: "#6a1b9a",
  gray: "#607080",
};

const plainNumber = (v: number) => String(v);

/** Axis colours from the theme's CSS variables (dark mode), read when a chart is drawn. */
function cssVar(name: string, fallback: string): string {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}

/** Draw the points uPlot would hide (when dense) if they stand alone between gaps. */
function isolatedPoints(u: uPlot, seriesIdx: number, show: boolean): number[] | null {
  if (show) return null;
  const found = isolatedIndices(u.data[seriesIdx] ?? []);
  return found.length ? found : null;
}

const barsPath = uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 40] }) : undefined;

/**
 * A uPlot time-series chart that follows its container's width. It is rebuilt when
 * `xs`, `series` or `format` change identity, so callers memoise them.
 */
export function Chart({ title, xs, series, format = plainNumber, height = 200, testid, note }: Props) {
  const body = useRef<HTMLDivElement>(null);
  const hasData = xs.length > 0 && series.some((s) => s.values.some((v) => v !== null && v !== 0));
  const zone = useZoneMode();

  useEffect(() => {
    const node = body.current;
    if (!node || xs.length === 0) return;
    const axisColor = cssVar("--muted", "#5a6270");
    const gridColor = cssVar("--grid", "#eef0f3");
    const opts: uPlot.Options = {
      width: Math.max(200, node.clientWidth),
      height,
      series: [
        { value: (_u, v) => (v === null || v === undefined ? "—" : formatAxisTime(v, true)) },
        ...series.map((s): uPlot.Series => ({
          label: s.label,
          stroke: s.color,
          width: 1.5,
          fill: s.fill || s.bars ? `${s.color}33` : undefined,
          paths: s.bars ? barsPath : undefined,
          points: s.bars ? { show: false } : { size: 5, filter: isolatedPoints },
          spanGaps: false,
          value: (_u, v) => (v === null || v === undefined ? "—" : format(v)),
        })),
      ],
      axes: [
        {
          stroke: axisColor,
          grid: { stroke: gridColor },
          ticks: { stroke: gridColor },
          // the time axis in the one time format (local or UTC, as the rest of the app)
          values: (_u, splits) => {
            const span = splits.length > 1 ? splits[splits.length - 1]! - splits[0]! : 0;
            return splits.map((v) => formatAxisTime(v, span >= 86_400));
          },
        },
        {
          stroke: axisColor,
          grid: { stroke: gridColor },
          ticks: { stroke: gridColor },
          size: 64,
          values: (_u, splits) => splits.map((v) => format(v)),
        },
      ],
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      cursor: { drag: { x: false, y: false } },
      legend: { show: true, live: true },
    };
    const data = [xs as number[], ...series.map((s) => s.values as (number | null)[])] as uPlot.AlignedData;
    const plot = new uPlot(opts, data, node);
    const ro = new ResizeObserver(() => {
      const width = Math.max(200, node.clientWidth);
      if (width !== plot.width) plot.setSize({ width, height });
    });
    ro.observe(node);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [xs, series, height, format, zone]);

  return (
    <figure class="card chart" data-testid={testid}>
      <figcaption>
        {title}
        {note && <span class="muted chart-note"> {note}</span>}
        <span class="muted chart-note" data-testid="chart-zone">
          {" "}
          · {zoneName()}
        </span>
      </figcaption>
      <div ref={body} class="chart-body" />
      {!hasData && <p class="muted chart-empty">No data in this range.</p>}
    </figure>
  );
}
