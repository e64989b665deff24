import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { Empty, ErrorBanner, Loading, PageHeader } from "../components/ui";
import { canManage, useApi, useMe, useTitle } from "../hooks";
import { definitionDiff, showInvisible, type DiffLine } from "../lib/diff";
import { formatDateTime } from "../lib/format";
import type { PinnedServer, PinnedTool } from "../types";

const STATUS_LABEL: Record<PinnedTool["status"], string> = {
  pinned: "pinned",
  changed: "changed",
  rejected: "rejected",
  removed: "removed",
};

/** The Pins view: each server's pinned tool definitions, what changed, approve or reject. */
export function PinsPage() {
  useTitle("Pins");
  const { me } = useMe();
  const review = useApi((signal) => api.pinReview(signal), [me.org.id]);
  const [changedOnly, setChangedOnly] = useState(false);
  const items = review.data?.items ?? [];
  const team = review.data?.mode === "team";
  const mayDecide = canManage(me);
  const shown = changedOnly ? items.filter((s) => s.tools.some((t) => t.status === "changed")) : items;

  return (
    <section data-testid="page-pins">
      <PageHeader title="Pins">
        <label class="inline-field">
          <input
            type="checkbox"
            checked={changedOnly}
            data-testid="pins-changed-only"
            onChange={(e) => setChangedOnly((e.target as HTMLInputElement).checked)}
          />{" "}
          Changed only
        </label>
        <button type="button" class="btn btn-small" onClick={review.reload} data-testid="refresh">
          Refresh
        </button>
      </PageHeader>
      <p class="muted page-intro">
        {team
          ? "The tool definitions your team's developers were shown, per server. The pinned definition is the one an owner or admin approved (else the first one seen); approving makes the latest one the team's pin (km pins sync), rejecting keeps the pin and flags everyone shown the change."
          : "km trusts a server's tool definitions on first use and flags any change (a rug pull). Approve a change to make it the new pin (as km pins approve), or reject it to keep the old pin: a listing that shows the change again is flagged again."}
        {!mayDecide && " Your role may read pins; owners and admins approve or reject."}
      </p>
      <ErrorBanner error={review.error} onRetry={review.reload} />
      {review.loading && !review.data && <Loading />}
      {review.data && shown.length === 0 && (
        <Empty>
          {changedOnly
            ? "No tool definition changed since it was pinned."
            : "No pinned tools yet: km pins a server's tools the first time a client lists them."}
        </Empty>
      )}
      {shown.map((server) => (
        <ServerCard key={server.key} server={server} mayDecide={mayDecide} onDecided={review.reload} />
      ))}
    </section>
  );
}

function ServerCard({
  server,
  mayDecide,
  onDecided,
}: {
  server: PinnedServer;
  mayDecide: boolean;
  onDecided: () => void;
}) {
  const [decided, setDecided] = useState<PinnedServer | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  // the server's answer to a decision, until the list is loaded again
  useEffect(() => setDecided(null), [server]);
  const current = decided ?? server;
  const decide = async (decision: "approve" | "reject", tool?: string) => {
    setBusy(true);
    setError(null);
    try {
      setDecided(await api.decidePins(current.key, decision, tool));
      onDecided();
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
    }
    setBusy(false);
  };
  const tools = [...current.tools].sort(
    (a, b) => Number(b.status === "changed") - Number(a.status === "changed") || a.name.localeCompare(b.name),
  );
  return (
    <div class="card pin-server" data-testid="pin-server" data-server={current.server} data-changed={current.changed}>
      <header class="pin-server-head">
        <div>
          <h2>{showInvisible(current.server)}</h2>
          <div class="muted small mono pin-runs" title="what this server runs">
            {showInvisible(current.runs)}
          </div>
          <div class="muted small">
            {current.tools.length} {current.tools.length === 1 ? "tool" : "tools"} pinned
            {current.changed > 0 && (
              <strong class="text-bad" data-testid="pin-server-changed">
                {" "}
                · {current.changed} changed
              </strong>
            )}
            {current.approved_at && (
              <>
                {" "}
                · approved {formatDateTime(current.approved_at)}
                {current.approved_by ? ` by ${current.approved_by}` : ""}
              </>
            )}
          </div>
        </div>
        {mayDecide && current.changed > 1 && (
          <div class="pin-actions">
            <button
              type="button"
              class="btn btn-small"
              disabled={busy}
              data-testid="pins-approve-all"
              onClick={() => void decide("approve")}
            >
              Approve all {current.changed}
            </button>
            <button
              type="button"
              class="btn btn-small"
              disabled={busy}
              data-testid="pins-reject-all"
              onClick={() => void decide("reject")}
            >
              Reject all
            </button>
          </div>
        )}
      </header>
      <ErrorBanner error={error} />
      <ul class="pin-tools">
        {tools.map((tool) => (
          <ToolRow key={tool.name} tool={tool} mayDecide={mayDecide} busy={busy} decide={decide} />
        ))}
      </ul>
    </div>
  );
}

function ToolRow({
  tool,
  mayDecide,
  busy,
  decide,
}: {
  tool: PinnedTool;
  mayDecide: boolean;
  busy: boolean;
  decide: (decision: "approve" | "reject", tool?: string) => Promise<void>;
}) {
  const differs = tool.pinned_sha256 !== tool.latest_sha256;
  const [open, setOpen] = useState(tool.status === "changed");
  return (
    <li class={`pin-tool pin-${tool.status}`} data-testid="pin-tool" data-tool={tool.name} data-status={tool.status}>
      <div class="pin-tool-head">
        <button
          type="button"
          class="btn btn-link pin-toggle"
          aria-expanded={open}
          data-testid="pin-tool-toggle"
          onClick={() => setOpen(!open)}
        >
          <span aria-hidden="true">{open ? "▾" : "▸"}</span> <code>{showInvisible(tool.name)}</code>
        </button>
        <span class={`badge pin-badge-${tool.status}`} data-testid="pin-status">
          {STATUS_LABEL[tool.status]}
        </span>
        {tool.changed_fields.length > 0 && (
          <span class="muted small" data-testid="pin-changed-fields">
            {tool.changed_fields.join(", ")} changed
          </span>
        )}
        {tool.drift && (
          <span class="badge sev-high" title="developers are shown different definitions of this tool">
            drift
          </span>
        )}
        {(tool.collides_with ?? []).length > 0 && (
          <span class="muted small">
            name also offered by {(tool.collides_with ?? []).map(showInvisible).join(", ")}
          </span>
        )}
        {mayDecide && (tool.status === "changed" || tool.status === "rejected") && (
          <span class="pin-actions">
            <button
              type="button"
              class="btn btn-small btn-primary"
              disabled={busy}
              data-testid="pin-approve"
              onClick={() => void decide("approve", tool.name)}
            >
              Approve change
            </button>
            {tool.status === "changed" && (
              <button
                type="button"
                class="btn btn-small"
                disabled={busy}
                data-testid="pin-reject"
                onClick={() => void decide("reject", tool.name)}
              >
                Reject
              </button>
            )}
          </span>
        )}
      </div>
      {open && (
        <div class="pin-diff" data-testid="pin-diff">
          {!differs && !tool.latest && <p class="muted small">The definition is no longer stored (retention).</p>}
          {differs && (!tool.pinned || !tool.latest) && (
            <p class="muted small">
              The {tool.pinned ? "latest" : "pinned"} definition is no longer stored; only its hash is kept.
            </p>
          )}
          {definitionDiff(tool.pinned, differs ? tool.latest : tool.pinned).map((f) => (
            <div
              key={f.field}
              class={`pin-field ${f.changed ? "is-changed" : ""}`}
              data-testid="pin-field"
              data-field={f.field}
              data-changed={f.changed}
            >
              <div class="pin-field-name small">
                {f.field}
                {f.changed && <span class="text-bad"> · changed</span>}
              </div>
              <DiffBlock lines={f.lines} changed={f.changed} />
            </div>
          ))}
        </div>
      )}
    </li>
  );
}

function DiffBlock({ lines, changed }: { lines: DiffLine[]; changed: boolean }) {
  return (
    <pre class="diff" aria-label={changed ? "pinned (−) and latest (+) definition" : "unchanged"}>
      {lines.map((l, i) => (
        <div key={i} class={`diff-line diff-${l.op}`} data-op={l.op}>
          <span class="diff-mark" aria-hidden="true">
            {l.op === "add" ? "+" : l.op === "del" ? "−" : " "}
          </span>
          {showInvisible(l.text)}
        </div>
      ))}
    </pre>
  );
}
