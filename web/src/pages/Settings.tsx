import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { Empty, ErrorBanner, Loading, PageHeader } from "../components/ui";
import { canCreateKeys, canManage, useApi, useMe, useTitle } from "../hooks";
import { formatInt, formatNs } from "../lib/format";
import { KEY_SCOPES, ROLES, type ApiKeyItem, type KeyScope, type Member, type Org, type Role } from "../types";
import { NewKey } from "./Onboarding";
import { QuotaBanner, UsageMeter } from "../components/Usage";
import { ApiError } from "../api";

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** The server's refusal, with what to do about it where the message alone is not enough. */
function explain(err: Error): Error {
  if (err instanceof ApiError && err.code === "last_owner") {
    return new ApiError(
      err.status,
      err.code,
      "You are the organization's last owner: it would have no one left to manage it. Make another member owner first, then change your own role.",
    );
  }
  return err;
}

export function SettingsPage() {
  useTitle("Settings");
  const { me } = useMe();
  if (me.mode !== "team") {
    return (
      <section data-testid="page-settings">
        <PageHeader title="Settings" />
        <Empty>Keys, members and organization settings are managed on a team server (km serve).</Empty>
      </section>
    );
  }
  const admin = canManage(me);
  return (
    <section data-testid="page-settings">
      <PageHeader title="Settings" />
      {me.invitations.length > 0 && <Invitations />}
      {!admin && (
        <p class="banner" data-testid="read-only-note">
          Your role is <strong>{me.role}</strong>: only owners and admins can change members and settings
          {canCreateKeys(me)
            ? "; you can create ingest keys and revoke your own."
            : ", and viewers cannot create keys."}
        </p>
      )}
      <OrgSettings editable={admin} />
      {canCreateKeys(me) && <KeySettings admin={admin} />}
      {admin && <MemberSettings selfId={me.user.id} />}
    </section>
  );
}

function Invitations() {
  const { me, setMe } = useMe();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);

  const answer = async (orgId: string, accept: boolean) => {
    setBusy(true);
    setError(null);
    try {
      if (accept) {
        setMe(await api.acceptInvitation(orgId));
      } else {
        await api.declineInvitation(orgId);
        setMe({ ...me, invitations: me.invitations.filter((i) => i.id !== orgId) });
      }
    } catch (err) {
      setError(asError(err));
    }
    setBusy(false);
  };

  return (
    <div class="card" data-testid="invitations">
      <h2>Invitations</h2>
      <ul>
        {me.invitations.map((inv) => (
          <li key={inv.id} data-testid="invitation" data-org-id={inv.id}>
            <strong>{inv.name}</strong> invites you as <strong>{inv.role}</strong>{" "}
            <button
              type="button"
              class="btn btn-small btn-primary"
              disabled={busy}
              data-testid="accept-invitation"
              onClick={() => void answer(inv.id, true)}
            >
              Accept
            </button>{" "}
            <button
              type="button"
              class="btn btn-small"
              disabled={busy}
              data-testid="decline-invitation"
              onClick={() => void answer(inv.id, false)}
            >
              Decline
            </button>
          </li>
        ))}
      </ul>
      <ErrorBanner error={error} />
    </div>
  );
}

function OrgSettings({ editable }: { editable: boolean }) {
  const { me, setMe } = useMe();
  const org = useApi((signal) => api.org(signal), []);
  const [retention, setRetention] = useState("");
  const [saving, setSaving] = useState(false);
  const [saved, setSaved] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const data: Org = org.data ?? me.org;
  useEffect(() => setRetention(data.retention_days === null ? "" : String(data.retention_days)), [data.retention_days]);

  const save = async (ev: Event) => {
    ev.preventDefault();
    const days = retention.trim() === "" ? null : Number(retention);
    if (days !== null && (!Number.isInteger(days) || days < 1)) {
      setError(new Error("Retention must be a whole number of days (at least 1), or empty to keep data forever."));
      return;
    }
    setSaving(true);
    setError(null);
    setSaved(false);
    try {
      const updated = await api.patchOrg({ retention_days: days });
      setMe({ ...me, org: { ...me.org, ...updated } });
      org.reload();
      setSaved(true);
    } catch (err) {
      setError(asError(err));
    }
    setSaving(false);
  };

  return (
    <div class="card" data-testid="org-settings">
      <h2>Organization</h2>
      <QuotaBanner usage={data.usage} />
      <ErrorBanner error={org.error} onRetry={org.reload} />
      <form class="form-grid" onSubmit={save}>
        <div class="field">
          <span>Name</span>
          <strong data-testid="org-settings-name">{data.name}</strong>
        </div>
        <div class="field">
          <span>Plan</span>
          <strong data-testid="org-plan">{data.plan}</strong>
        </div>
        <div class="field">
          <span>Events per month</span>
          <strong>{data.events_per_month === null ? "unlimited" : formatInt(data.events_per_month)}</strong>
        </div>
        {data.usage && (
          <div class="field">
            <span>Used this month</span>
            <UsageMeter usage={data.usage} />
          </div>
        )}
        <label class="field">
          Retention (days)
          <input
            type="number"
            min={1}
            step={1}
            value={retention}
            disabled={!editable}
            placeholder="forever"
            data-testid="retention-days"
            onInput={(e) => {
              setRetention((e.target as HTMLInputElement).value);
              setSaved(false);
            }}
          />
        </label>
        {editable && (
          <div class="filter-actions">
            <button type="submit" class="btn btn-primary" disabled={saving} data-testid="save-org">
              {saving ? "Saving…" : "Save"}
            </button>
            {saved && (
              <span class="text-good" role="status" data-testid="org-saved">
                Saved
              </span>
            )}
          </div>
        )}
      </form>
      <ErrorBanner error={error} />
    </div>
  );
}

function KeySettings({ admin }: { admin: boolean }) {
  const keys = useApi((signal) => api.keys(signal), []);
  const [name, setName] = useState("");
  const [scope, setScope] = useState<KeyScope>("ingest");
  const [created, setCreated] = useState<string | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);

  const create = async (ev: Event) => {
    ev.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const res = await api.createKey(scope, name.trim() || `${scope} key`);
      setCreated(res.key);
      setName("");
      keys.reload();
    } catch (err) {
      setError(asError(err));
    }
    setBusy(false);
  };

  const revoke = async (key: ApiKeyItem) => {
    setBusy(true);
    setError(null);
    try {
      await api.revokeKey(key.id);
      setConfirming(null);
      keys.reload();
    } catch (err) {
      setError(asError(err));
    }
    setBusy(false);
  };

  const items = keys.data?.items ?? [];
  return (
    <div class="card" data-testid="key-settings">
      <h2>API keys</h2>
      {!admin && <p class="muted small">The ingest keys you created.</p>}
      <form class="inline-form" onSubmit={create}>
        <label class="field">
          Name
          <input
            type="text"
            value={name}
            maxLength={200}
            placeholder="e.g. laptop uploader"
            data-testid="key-name"
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
        </label>
        <label class="field">
          Scope
          <select
            value={scope}
            data-testid="key-scope"
            onChange={(e) => setScope((e.target as HTMLSelectElement).value as KeyScope)}
          >
            {(admin ? KEY_SCOPES : KEY_SCOPES.filter((s) => s === "ingest")).map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" class="btn btn-primary" disabled={busy} data-testid="create-key">
          Create key
        </button>
      </form>
      <p class="muted small">
        <code>ingest</code> uploads events, <code>read</code> queries them, <code>admin</code> does both and manages the
        organization.
      </p>
      {created && <NewKey value={created} />}
      <ErrorBanner error={error ?? keys.error} onRetry={error ? undefined : keys.reload} />
      {keys.loading && !keys.data && <Loading />}
      {keys.data && items.length === 0 && <Empty>No keys yet.</Empty>}
      {items.length > 0 && (
        <table class="table" data-testid="keys-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Key</th>
              <th>Scope</th>
              <th>Created</th>
              <th>Status</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {items.map((k) => (
              <tr key={k.id} data-testid="key-row" data-key-id={k.id} class={k.revoked ? "muted" : ""}>
                <td>{k.name ?? "—"}</td>
                <td>
                  <code>{k.prefix}…</code>
                </td>
                <td>{k.scope}</td>
                <td class="nowrap">{formatNs(k.created_ns)}</td>
                <td data-testid="key-status">{k.revoked ? "revoked" : "active"}</td>
                <td class="actions">
                  {!k.revoked && confirming !== k.id && (
                    <button
                      type="button"
                      class="btn btn-small btn-danger-outline"
                      data-testid="revoke-key"
                      onClick={() => setConfirming(k.id)}
                    >
                      Revoke
                    </button>
                  )}
                  {!k.revoked && confirming === k.id && (
                    <span class="confirm">
                      Revoke for good?{" "}
                      <button
                        type="button"
                        class="btn btn-small btn-danger"
                        disabled={busy}
                        data-testid="confirm-revoke"
                        onClick={() => revoke(k)}
                      >
                        Revoke
                      </button>{" "}
                      <button
                        type="button"
                        class="btn btn-small"
                        data-testid="cancel-revoke"
                        onClick={() => setConfirming(null)}
                      >
                        Cancel
                      </button>
                    </span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function MemberSettings({ selfId }: { selfId: string }) {
  const members = useApi((signal) => api.members(signal), []);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Role>("member");
  const [password, setPassword] = useState("");
  const [confirming, setConfirming] = useState<string | null>(null);
  const [ownRole, setOwnRole] = useState<Role | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const { me, setMe } = useMe();

  const act = async (fn: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
      members.reload();
      setBusy(false);
      return true;
    } catch (err) {
      setError(explain(asError(err)));
      members.reload(); // the selects show the roles as they are
      setBusy(false);
      return false;
    }
  };

  // One's own role changes only after a confirmation: it may take away the rights to undo it.
  const changeOwnRole = async (next: Role) => {
    setOwnRole(null);
    if (await act(() => api.setRole(selfId, next))) setMe({ ...me, role: next });
  };

  const add = async (ev: Event) => {
    ev.preventDefault();
    const ok = await act(() => api.addMember({ email: email.trim(), role, ...(password ? { password } : {}) }));
    if (ok) {
      setEmail("");
      setPassword("");
    }
  };

  const items: Member[] = members.data?.items ?? [];
  return (
    <div class="card" data-testid="member-settings">
      <h2>Members</h2>
      <form class="inline-form" onSubmit={add}>
        <label class="field">
          Email
          <input
            type="email"
            required
            value={email}
            data-testid="member-email"
            onInput={(e) => setEmail((e.target as HTMLInputElement).value)}
          />
        </label>
        <label class="field">
          Role
          <select
            value={role}
            data-testid="member-role"
            onChange={(e) => setRole((e.target as HTMLSelectElement).value as Role)}
          >
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <label class="field">
          Password{" "}
          <span class="muted small">
            (used only if the address is new; optional with single sign-on. Existing users accept an invitation with
            their own credentials)
          </span>
          <input
            type="password"
            autocomplete="new-password"
            value={password}
            data-testid="member-password"
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
          />
        </label>
        <button type="submit" class="btn btn-primary" disabled={busy} data-testid="add-member">
          Add member
        </button>
      </form>
      <ErrorBanner error={error ?? members.error} onRetry={error ? undefined : members.reload} />
      {members.loading && !members.data && <Loading />}
      {items.length > 0 && (
        <table class="table" data-testid="members-table">
          <thead>
            <tr>
              <th>Email</th>
              <th>Role</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {items.map((m) => (
              <tr key={m.user_id} data-testid="member-row" data-user-id={m.user_id}>
                <td>
                  {m.email}
                  {m.user_id === selfId && <span class="muted small"> (you)</span>}
                  {m.status === "invited" && (
                    <span class="muted small" data-testid="member-invited">
                      {" "}
                      (invited)
                    </span>
                  )}
                </td>
                <td>
                  <select
                    key={`${m.role}:${ownRole ?? ""}`}
                    value={m.user_id === selfId && ownRole ? ownRole : m.role}
                    disabled={busy}
                    aria-label={`Role of ${m.email}`}
                    data-testid="member-role-select"
                    onChange={(e) => {
                      const next = (e.target as HTMLSelectElement).value as Role;
                      if (m.user_id === selfId) setOwnRole(next);
                      else void act(() => api.setRole(m.user_id, next));
                    }}
                  >
                    {ROLES.map((r) => (
                      <option key={r} value={r}>
                        {r}
                      </option>
                    ))}
                  </select>
                  {m.user_id === selfId && ownRole && ownRole !== m.role && (
                    <span class="confirm" data-testid="confirm-own-role">
                      Change your own role to <strong>{ownRole}</strong>? You may lose the right to change it back.{" "}
                      <button
                        type="button"
                        class="btn btn-small btn-danger"
                        disabled={busy}
                        data-testid="confirm-own-role-change"
                        onClick={() => void changeOwnRole(ownRole)}
                      >
                        Change my role
                      </button>{" "}
                      <button
                        type="button"
                        class="btn btn-small"
                        data-testid="cancel-own-role-change"
                        onClick={() => setOwnRole(null)}
                      >
                        Cancel
                      </button>
                    </span>
                  )}
                </td>
                <td class="actions">
                  {confirming !== m.user_id ? (
                    <button
                      type="button"
                      class="btn btn-small btn-danger-outline"
                      data-testid="remove-member"
                      onClick={() => setConfirming(m.user_id)}
                    >
                      Remove
                    </button>
                  ) : (
                    <span class="confirm">
                      Remove {m.email}?{" "}
                      <button
                        type="button"
                        class="btn btn-small btn-danger"
                        disabled={busy}
                        data-testid="confirm-remove"
                        onClick={() => void act(() => api.removeMember(m.user_id)).then(() => setConfirming(null))}
                      >
                        Remove
                      </button>{" "}
                      <button
                        type="button"
                        class="btn btn-small"
                        data-testid="cancel-remove"
                        onClick={() => setConfirming(null)}
                      >
                        Cancel
                      </button>
                    </span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
