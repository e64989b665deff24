import { useState } from "preact/hooks";
import { api, ApiError } from "../api";
import { ErrorBanner } from "../components/ui";
import { useTitle } from "../hooks";
import type { Me } from "../types";

export function LoginPage({ onSignedIn }: { onSignedIn: (me: Me) => void }) {
  useTitle("Sign in");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);

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

  return (
    <main class="splash">
      <form class="card login" onSubmit={submit} data-testid="login-form" method="post" action="/login">
        <div class="brand brand-large">Kilometers</div>
        <h1>Sign in</h1>
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
        <p class="muted small">
          Using <code>km ui</code> on your own machine? Open the link it printed instead; it signs you in.
        </p>
      </form>
    </main>
  );
}
