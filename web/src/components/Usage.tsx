// The plan's monthly usage (GET /api/v1/org → usage): a meter, and a banner when the organization
// is near (80 %) or at its limit, when uploads are refused (402) and kept on the machines.

import { formatDateTime, formatInt, formatPercent } from "../lib/format";
import type { Usage } from "../types";

function share(u: Usage): number {
  return u.limit ? u.events / u.limit : 0;
}

function resetDate(u: Usage): string {
  return formatDateTime(u.resets_at);
}

export function UsageMeter({ usage }: { usage: Usage }) {
  if (usage.limit === null) {
    return (
      <span data-testid="usage-meter" data-state="ok">
        {formatInt(usage.events)} events this month (no limit)
      </span>
    );
  }
  const ratio = share(usage);
  return (
    <span class="usage" data-testid="usage-meter" data-state={usage.state}>
      <meter min={0} max={1} low={0.8} high={0.99} optimum={0} value={Math.min(1, ratio)} />{" "}
      <span data-testid="usage-text">
        {formatInt(usage.events)} of {formatInt(usage.limit)} events this month ({formatPercent(ratio)})
      </span>
    </span>
  );
}

export function QuotaBanner({ usage }: { usage: Usage | undefined }) {
  if (!usage || usage.limit === null || usage.state === "ok") return null;
  const over = usage.state === "over";
  return (
    <div
      class={`banner ${over ? "banner-error" : ""}`}
      role="status"
      data-testid="quota-banner"
      data-state={usage.state}
    >
      <span>
        {over ? (
          <>
            <strong>Monthly limit reached:</strong> {formatInt(usage.events)} of {formatInt(usage.limit)} events. The
            team server refuses new uploads (HTTP 402) until {resetDate(usage)}; km keeps them on each machine and{" "}
            <code>km sync</code> sends them once the limit is raised or the month ends. Sessions cut off are marked
            partial.
          </>
        ) : (
          <>
            <strong>Near the monthly limit:</strong> {formatInt(usage.events)} of {formatInt(usage.limit)} events (
            {formatPercent(share(usage))}) used; uploads stop at the limit until {resetDate(usage)}.
          </>
        )}
      </span>
    </div>
  );
}

/** A session the team server does not hold whole: events refused by the plan's monthly limit
 *  (or dropped by the recorder) are counted in `dropped_events`. */
export function PartialBadge({ dropped }: { dropped: number }) {
  if (dropped <= 0) return null;
  return (
    <span
      class="badge badge-partial"
      title={`${formatInt(dropped)} events of this session are not stored (the plan's monthly limit, or dropped while recording)`}
      data-testid="session-partial"
    >
      partial
    </span>
  );
}
