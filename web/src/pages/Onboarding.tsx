import { useEffect, useState } from "preact/hooks";
import { api, openStream } from "../api";
import { Link } from "../components/Link";
import { CopyButton, ErrorBanner, PageHeader } from "../components/ui";
import { canCreateKeys, useMe, useTitle } from "../hooks";
import { eventLabel, formatClock } from "../lib/format";
import { LIVE_EVENT, LIVE_PATH, parseLiveEvent } from "../lib/live";
import { paths } from "../router";
import type { KmEvent } from "../types";

/**
 * The shell commands of step 2: install km from a checkout (it is not on PyPI yet), then, for a
 * team server, connect to it with the key read from stdin (never on the command line, where
 * shell history and `ps` would keep it), and wrap the MCP clients. km ui records locally: no key.
 */
export function setupCommands(origin: string, mode: "team" | "local"): string[] {
  const install = ["# in a checkout of km (it is not published on PyPI yet)", "KM_INSTALL_SOURCE=. sh install.sh"];
  if (mode === "local") return [...install, "km wrap"];
  return [...install, `km init --api-url ${origin} --api-key -   # paste the key, then Enter and Ctrl-D`, "km wrap"];
}

export function OnboardingPage() {
  useTitle("Get started");
  const { me } = useMe();
  const [key, setKey] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const origin = window.location.origin;
  const commands = setupCommands(origin, me.mode);
  const allowed = me.mode === "team" && canCreateKeys(me);

  const createKey = async () => {
    setBusy(true);
    setError(null);
    try {
      const res = await api.createKey("ingest", "onboarding");
      setKey(res.key);
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
    }
    setBusy(false);
  };

  return (
    <section data-testid="page-onboarding">
      <PageHeader title="Get started" />
      <ol class="steps">
        <li class="card step">
          <h2>1. Create an API key</h2>
          {!allowed && (
            <p class="muted">
              {me.mode === "team"
                ? "Viewers cannot create keys; ask a member, an admin or an owner for an ingest key."
                : "Local mode records straight into the local store; no key is needed."}
            </p>
          )}
          {allowed && !key && (
            <>
              <p>
                An <code>ingest</code> key lets <code>km</code> upload what it records to this server.
              </p>
              <button
                type="button"
                class="btn btn-primary"
                disabled={busy}
                onClick={createKey}
                data-testid="onboarding-create-key"
              >
                {busy ? "Creating…" : "Create API key"}
              </button>
            </>
          )}
          {key && <NewKey value={key} />}
          <ErrorBanner error={error} />
        </li>
        <li class="card step">
          <h2>2. Install and connect km</h2>
          <p>
            On the machine where your MCP client runs
            {me.mode === "team"
              ? "; km init asks for the key on its input (paste the key from step 1):"
              : " (km ui shows what km records on this machine; nothing is uploaded):"}
          </p>
          <pre class="commands" data-testid="onboarding-commands">
            {commands.join("\n")}
          </pre>
          <CopyButton text={commands.join("\n")} label="Copy commands" testid="copy-commands" />
          <p class="muted small">
            <code>km wrap</code> puts <code>km</code> in front of the MCP servers your clients are configured with;
            restart the client afterwards.
          </p>
        </li>
        <li class="card step">
          <h2>3. Use your MCP client</h2>
          <FirstEvent />
        </li>
      </ol>
    </section>
  );
}

/** A key shown once, with a copy button. */
export function NewKey({ value }: { value: string }) {
  return (
    <div class="new-key" role="status">
      <p>
        <strong>Copy this key now:</strong> it is shown only once.
      </p>
      <div class="key-line">
        <code data-testid="new-key">{value}</code>
        <CopyButton text={value} label="Copy key" testid="copy-key" />
      </div>
    </div>
  );
}

/** Listens on the live stream until the first event arrives. */
function FirstEvent() {
  const [first, setFirst] = useState<KmEvent | null>(null);
  const [connected, setConnected] = useState(false);
  useEffect(() => {
    if (first) return;
    const close = openStream(LIVE_PATH, {
      onOpen: () => setConnected(true),
      onError: () => setConnected(false),
      onMessage: (name, data) => {
        const e = name === LIVE_EVENT ? parseLiveEvent(data) : null;
        if (!e) return;
        setFirst(e);
        close();
      },
    });
    return close;
  }, [first]);

  if (first) {
    return (
      <div class="first-event first-event-ok" data-testid="first-event-status" data-state="received" role="status">
        <span class="dot dot-ok" aria-hidden="true" /> First event received: {eventLabel(first)} at{" "}
        {formatClock(first.ts)}. <Link to={paths.event(first.id)}>Open it</Link> or go to the{" "}
        <Link to={paths.live}>live view</Link>.
      </div>
    );
  }
  return (
    <div class="first-event" data-testid="first-event-status" data-state="waiting" role="status">
      <span class="dot dot-wait" aria-hidden="true" /> Now waiting for your first event…
      <span class="muted small"> {connected ? "(listening)" : "(connecting)"}</span>
    </div>
  );
}
