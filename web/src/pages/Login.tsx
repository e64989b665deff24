import { useEffect, useState } from "preact/hooks";
import { api, ApiError, isAbort, takeSessionEnded } from "../api";
import { ErrorBanner } from "../components/ui";
import { useTitle } from "../hooks";
import type { AuthConfig, Me } from "../types";

/** Why single sign-on sent the browser back here (/login?sso_error=<code>, set by the server). */
const SSO_ERRORS: Record<string, string> = {
  sso_unknown_user:
    "Your sign-in provider vouched for an email address that has no Kilometers account. Ask an administrator to add you (Settings → Members).",
  sso_email_unverified:
    "Your sign-in provider has not verified your email address, so it cannot be used to sign in here. Verify it with your provider, then try again.",
  sso_no_email:
    "Your sign-in provider did not share your email address, which Kilometers needs to find your account. Ask an administrator to check the provider's settings.",
  sso_no_organization: "Your account is not a member of any organization yet. Ask an administrator to add you.",
  sso_state: "That sign-in attempt expired or was not started in this browser. Please try again.",
  sso_denied: "Sign-in was cancelled at your provider.",
  sso_unavailable:
    "The sign-in provider cannot be reached or is misconfigured. Try again later, or ask an administrator to check the server's OpenID Connect settings.",
  sso_failed:
    "The sign-in provider's answer could not be verified. Please try again; if it keeps failing, tell an administrator.",
  sso_rate_limited: "Too many sign-in attempts; wait a little and try again.",
};

function ssoErrorFromUrl(): Error | null {
  const code = new URLSearchParams(window.location.search).get("sso_error");
  if (!code) return null;
  return new ApiError(0, code, SSO_ERRORS[code] ?? "Single sign-on failed. Please try again.");
}

export function LoginPage({ onSignedIn }: { onSignedIn: (me: Me) => void }) {
  useTitle("Sign in");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(ssoErrorFromUrl);
  const [sso, setSso] = useState<AuthConfig["sso"] | null>(null);
  const [local, setLocal] = useState(false);
  const [ended] = useState(takeSessionEnded);

  useEffect(() => {
    const ctrl = new AbortController();
    api.authConfig(ctrl.signal).then(
      (config) => {
        setSso(config.sso);
        setLocal(config.mode === "local");
      },
      (err: unknown) => {
        if (!isAbort(err)) setSso(null); // password sign-in still works without it
      },
    );
    return () => ctrl.abort();
  }, []);

  const submit = async (ev: Event) => {
    ev.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await api.login(email.trim(), password));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        setError(new Error("Wrong email or password."));
      } else {
        setError(err instanceof Error ? err : new Error(String(err)));
      }
      setBusy(false);
    }
  };

  if (local)
    return (
      <main class="splash">
        <div class="card login" data-testid="local-link-needed">
          <div class="brand brand-large">Kilometers</div>
          <h1>Open the km ui link</h1>
          <p>
            This dashboard needs the link <code>km ui</code> printed when it started (it ends in <code>#token=…</code>).
            If <code>km ui</code> was restarted, use the new link.
          </p>
        </div>
      </main>
    );
  return (
    <main class="splash">
      <form class="card login" onSubmit={submit} data-testid="login-form" method="post" action="/login">
        <div class="brand brand-large">Kilometers</div>
        <h1>Sign in</h1>
        {ended && (
          <div class="banner" role="status" data-testid="session-ended">
            Your session ended (it expired, you signed out elsewhere, or your access changed). Sign in again to return
            to the page you were on.
          </div>
        )}
        <label>
          Email
          <input
            type="email"
            name="email"
            autocomplete="username"
            required
            value={email}
            data-testid="login-email"
            onInput={(e) => setEmail((e.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          Password
          <input
            type="password"
            name="password"
            autocomplete="current-password"
            required
            value={password}
            data-testid="login-password"
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
          />
        </label>
        <div data-testid="login-error">
          <ErrorBanner error={error} />
        </div>
        <button type="submit" class="btn btn-primary" disabled={busy} data-testid="login-submit">
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {sso?.enabled && sso.login_url && (
          <>
            <p class="muted small">or</p>
            <a class="btn" href={sso.login_url} data-testid="login-sso">
              Sign in with {sso.name ?? "single sign-on"}
            </a>
          </>
        )}
        <p class="muted small">
          Using <code>km ui</code> on your own machine? Open the link it printed instead; it signs you in.
        </p>
      </form>
    </main>
  );
}
