import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import { copyText } from "../lib/clipboard";
import { directionArrow, jsonText } from "../lib/format";
import { RANGE_KEYS, RANGES, type RangeKey } from "../lib/stats";
import { SafeText } from "./SafeText";

export function ErrorBanner({ error, onRetry }: { error: Error | null; onRetry?: () => void }) {
  if (!error) return null;
  const code = error instanceof ApiError ? error.code : null;
  return (
    <div class="banner banner-error" role="alert" data-testid="error-banner">
      <span>{error.message}</span>
      {code && <code class="muted"> ({code})</code>}
      {onRetry && (
        <button type="button" class="btn btn-small" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <p class="loading muted" aria-busy="true" data-testid="loading">
      {what}…
    </p>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return (
    <p class="empty muted" data-testid="empty">
      {children}
    </p>
  );
}

export function PageHeader({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <header class="page-header">
      <h1>{title}</h1>
      {children && <div class="page-actions">{children}</div>}
    </header>
  );
}

export function StatCard(props: {
  label: string;
  value: string;
  hint?: string;
  testid: string;
  tone?: "bad" | "good";
}) {
  return (
    <div class={`card stat ${props.tone ? `stat-${props.tone}` : ""}`} data-testid={props.testid}>
      <div class="stat-label">{props.label}</div>
      <div class="stat-value" data-testid={`${props.testid}-value`}>
        {props.value}
      </div>
      {props.hint && <div class="stat-hint muted">{props.hint}</div>}
    </div>
  );
}

/** "Last 15 min / 1 h / 24 h / 7 d" (and, with `allowAll`, no time bound: "all"). */
export function RangePicker<A extends boolean = false>({
  value,
  onChange,
  allowAll,
  testid = "range-picker",
}: {
  /** null: none of the ranges is in force. */
  value: (A extends true ? RangeKey | "" : RangeKey) | null;
  onChange: (key: A extends true ? RangeKey | "" : RangeKey) => void;
  allowAll?: A;
  testid?: string;
}) {
  const keys: (RangeKey | "")[] = allowAll ? [...RANGE_KEYS, ""] : [...RANGE_KEYS];
  return (
    <div class="segmented" role="group" aria-label="Time range" data-testid={testid}>
      {keys.map((key) => (
        <button
          type="button"
          key={key || "all"}
          class={key === value ? "active" : ""}
          aria-pressed={key === value}
          title={key ? `Last ${RANGES[key].label}` : "Any time"}
          data-testid={`range-${key || "all"}`}
          onClick={() => onChange(key as A extends true ? RangeKey | "" : RangeKey)}
        >
          {key || "all"}
        </button>
      ))}
    </div>
  );
}

/** Copies `text` (clipboard API, textarea fallback) and says so for a moment. */
export function CopyButton({ text, label = "Copy", testid }: { text: string; label?: string; testid?: string }) {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  const timer = useRef<number | undefined>(undefined);
  useEffect(() => () => window.clearTimeout(timer.current), []);
  const copy = async () => {
    const ok = await copyText(text);
    setState(ok ? "copied" : "failed");
    window.clearTimeout(timer.current);
    timer.current = window.setTimeout(() => setState("idle"), 1500);
  };
  return (
    <button type="button" class="btn btn-small" data-testid={testid} onClick={copy}>
      {state === "copied" ? "Copied" : state === "failed" ? "Copy failed" : label}
    </button>
  );
}

/** JSON as text in a <pre> (JSX text is never parsed as HTML). */
export function JsonBlock({ value, pretty = true, testid }: { value: unknown; pretty?: boolean; testid?: string }) {
  return (
    <pre class="json" data-testid={testid}>
      <SafeText text={jsonText(value, pretty)} />
    </pre>
  );
}

export function KindBadge({ kind, isError }: { kind: string; isError?: boolean }) {
  return (
    <span class={`badge kind-${kind} ${isError ? "is-error" : ""}`}>
      {isError && kind !== "error" ? `${kind} ✕` : kind}
    </span>
  );
}

export function Direction({ direction }: { direction: string }) {
  const text = direction === "client_to_server" ? "client → server" : "server → client";
  return (
    <span class="dir" title={text} aria-label={text}>
      {directionArrow(direction)}
    </span>
  );
}

export function SeverityBadge({ severity }: { severity: string }) {
  const known = ["info", "low", "medium", "high", "critical"].includes(severity) ? severity : "info";
  return <span class={`badge sev-${known}`}>{severity}</span>;
}

/** An event's or a session's risk level: a severity badge, or a dash when there is none. */
export function RiskBadge({ level, testid }: { level: string | null | undefined; testid?: string }) {
  if (!level || level === "none")
    return (
      <span class="muted" data-testid={testid} data-level="none" aria-label="no findings">
        —
      </span>
    );
  const known = ["low", "medium", "high", "critical"].includes(level) ? level : "info";
  return (
    <span class={`badge sev-${known}`} data-testid={testid} data-level={known}>
      {level}
    </span>
  );
}
