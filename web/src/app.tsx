import type { ComponentChildren } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, ApiError, markSessionEnded, onUnauthorized, setCsrfToken } from "./api";
import { Link } from "./components/Link";
import { ErrorBanner, Loading } from "./components/ui";
import { canCreateKeys, MeContext, useZoneMode } from "./hooks";
import { safeHref } from "./lib/dom";
import { saveDrafts } from "./lib/drafts";
import { setZoneMode, zoneName } from "./lib/format";
import { AnalyticsPage } from "./pages/Analytics";
import { EventPage } from "./pages/Event";
import { FindingsPage } from "./pages/Findings";
import { LivePage } from "./pages/Live";
import { LoginPage } from "./pages/Login";
import { NotFoundPage } from "./pages/NotFound";
import { OnboardingPage } from "./pages/Onboarding";
import { OverviewPage } from "./pages/Overview";
import { PinsPage } from "./pages/Pins";
import { SearchPage } from "./pages/Search";
import { SessionPage } from "./pages/Session";
import { SessionsPage } from "./pages/Sessions";
import { SettingsPage } from "./pages/Settings";
import { matchRoute, navigate, paths, useLocation, type Route } from "./router";
import type { Me } from "./types";

type AuthState =
  | { status: "loading" }
  | { status: "signed-in"; me: Me }
  | { status: "signed-out" }
  | { status: "error"; error: Error };

function loginPath(): string {
  const here = location.pathname + location.search;
  return here === "/" || here.startsWith(paths.login) ? paths.login : `${paths.login}?next=${encodeURIComponent(here)}`;
}

/** The first /auth/me, asked by main.tsx before the first render (an effect would ask it a
 *  frame later); the App's first sign-in check takes it. */
let firstMe: Promise<Me> | null = null;

export function askWhoAmI(): void {
  firstMe = api.me();
  firstMe.catch(() => undefined); // (its error is handled where it is taken)
}

export function App() {
  const loc = useLocation();
  const route = matchRoute(loc.pathname);
  useZoneMode(); // every time on screen follows the local/UTC toggle
  const [auth, setAuth] = useState<AuthState>({ status: "loading" });
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const ctl = new AbortController();
    const asked = firstMe ?? api.me(ctl.signal);
    firstMe = null;
    asked.then(
      (me) => {
        if (ctl.signal.aborted) return;
        setCsrfToken(me.csrf_token);
        setAuth({ status: "signed-in", me });
      },
      (err: unknown) => {
        if (ctl.signal.aborted) return;
        if (err instanceof ApiError && err.status === 401) setAuth({ status: "signed-out" });
        else setAuth({ status: "error", error: err instanceof Error ? err : new Error(String(err)) });
      },
    );
    return () => ctl.abort();
  }, [attempt]);

  useEffect(() => {
    onUnauthorized(() => {
      saveDrafts(); // what the user was typing comes back after signing in
      markSessionEnded(); // the sign-in page says why it is shown
      setCsrfToken("");
      setAuth({ status: "signed-out" });
    });
    return () => onUnauthorized(null);
  }, []);

  // Signed out: everything but /login goes to /login (and comes back after).
  useEffect(() => {
    if (auth.status === "signed-out" && route.name !== "login") navigate(loginPath(), { replace: true });
    if (auth.status === "signed-in" && route.name === "login") {
      const next = new URLSearchParams(loc.search).get("next");
      const target = next && safeHref(next) !== "#" && !next.startsWith(paths.login) ? next : paths.overview;
      navigate(target, { replace: true });
    }
  }, [auth.status, route.name, loc.search]);

  const session = useMemo(
    () =>
      auth.status === "signed-in"
        ? {
            me: auth.me,
            setMe: (me: Me | null) => {
              if (me) {
                setCsrfToken(me.csrf_token);
                setAuth({ status: "signed-in", me });
              } else {
                setCsrfToken("");
                setAuth({ status: "signed-out" });
              }
            },
          }
        : null,
    [auth],
  );

  if (auth.status === "loading")
    return (
      <Splash>
        <Loading />
      </Splash>
    );
  if (auth.status === "error")
    return (
      <Splash>
        <ErrorBanner error={auth.error} onRetry={() => setAttempt((n) => n + 1)} />
      </Splash>
    );
  if (auth.status === "signed-out" || !session) {
    return route.name === "login" ? (
      <LoginPage
        onSignedIn={(me) => {
          setCsrfToken(me.csrf_token);
          setAuth({ status: "signed-in", me });
        }}
      />
    ) : (
      <Splash>
        <Loading />
      </Splash>
    );
  }
  return (
    <MeContext.Provider value={session}>
      <Shell route={route} me={session.me} setMe={session.setMe}>
        {/* one organization's page never shows another's figures: switching remounts it */}
        <Page key={session.me.org.id} route={route} />
      </Shell>
    </MeContext.Provider>
  );
}

function Splash({ children }: { children: ComponentChildren }) {
  return (
    <main class="splash">
      <div class="brand brand-large">Kilometers</div>
      {children}
    </main>
  );
}

function Page({ route }: { route: Route }) {
  switch (route.name) {
    case "overview":
      return <OverviewPage />;
    case "live":
      return <LivePage />;
    case "sessions":
      return <SessionsPage />;
    case "session":
      return <SessionPage key={route.id} id={route.id} />;
    case "event":
      return <EventPage key={route.id} id={route.id} />;
    case "search":
      return <SearchPage />;
    case "findings":
      return <FindingsPage />;
    case "pins":
      return <PinsPage />;
    case "analytics":
      return <AnalyticsPage />;
    case "onboarding":
      return <OnboardingPage />;
    case "settings":
      return <SettingsPage />;
    case "login":
      return <Loading />;
    case "notfound":
      return <NotFoundPage />;
  }
}

const NAV: { name: Route["name"]; to: string; label: string; teamOnly?: boolean; matches?: Route["name"][] }[] = [
  { name: "overview", to: paths.overview, label: "Overview" },
  { name: "live", to: paths.live, label: "Live" },
  { name: "sessions", to: paths.sessions, label: "Sessions", matches: ["session"] },
  { name: "search", to: paths.search, label: "Search", matches: ["event"] },
  { name: "findings", to: paths.findings, label: "Findings" },
  { name: "pins", to: paths.pins, label: "Pins" },
  { name: "analytics", to: paths.analytics, label: "Analytics" },
  { name: "onboarding", to: paths.onboarding, label: "Onboarding", teamOnly: true },
  { name: "settings", to: paths.settings, label: "Settings", teamOnly: true },
];

function Shell({
  route,
  me,
  setMe,
  children,
}: {
  route: Route;
  me: Me;
  setMe: (me: Me | null) => void;
  children: ComponentChildren;
}) {
  const [error, setError] = useState<Error | null>(null);
  const team = me.mode === "team";
  const signOut = async () => {
    try {
      await api.logout();
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) {
        setError(err instanceof Error ? err : new Error(String(err)));
        return;
      }
    }
    setMe(null);
    navigate(paths.login, { replace: true });
  };
  const switchOrg = async (orgId: string) => {
    try {
      setMe(await api.switchOrg(orgId));
      navigate(paths.overview);
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
    }
  };
  return (
    <div class="layout">
      <aside class="sidebar">
        <Link to={paths.overview} class="brand" testid="brand">
          Kilometers
        </Link>
        <nav aria-label="Main">
          <ul>
            {NAV.filter((item) => team || !item.teamOnly).map((item) => {
              const current = route.name === item.name || (item.matches ?? []).includes(route.name);
              return (
                <li key={item.name}>
                  <Link
                    to={item.to}
                    class={current ? "nav-link active" : "nav-link"}
                    current={current}
                    testid={`nav-${item.name}`}
                  >
                    {item.label}
                  </Link>
                </li>
              );
            })}
          </ul>
        </nav>
        <div class="account">
          {me.orgs.length > 1 ? (
            <label class="org-switch">
              <span class="visually-hidden">Organization</span>
              <select
                data-testid="org-switch"
                value={me.org.id}
                onChange={(e) => switchOrg((e.target as HTMLSelectElement).value)}
              >
                {me.orgs.map((o) => (
                  <option key={o.id} value={o.id}>
                    {o.name}
                  </option>
                ))}
              </select>
            </label>
          ) : (
            <div class="org-name" data-testid="org-name">
              {me.org.name}
            </div>
          )}
          {me.orgs.length > 1 && (
            <div class="visually-hidden" data-testid="org-name">
              {me.org.name}
            </div>
          )}
          {team && (
            <div class="user-email muted" data-testid="user-email" title={`${me.user.email} (${me.role})`}>
              {me.user.email}
            </div>
          )}
          {team && (
            <div class="muted small">
              role: {me.role}
              {canCreateKeys(me) ? "" : " (read only)"}
            </div>
          )}
          {!team && <div class="muted small">local mode</div>}
          <ZoneToggle />
          {team && (
            <button type="button" class="btn btn-small btn-link" data-testid="sign-out" onClick={signOut}>
              Sign out
            </button>
          )}
        </div>
      </aside>
      <main class="content" id="main">
        <ErrorBanner error={error} />
        {children}
      </main>
    </div>
  );
}

/** Times in the browser's time zone or in UTC, everywhere (tables, charts, inputs). */
function ZoneToggle() {
  const mode = useZoneMode();
  const local = zoneName();
  return (
    <div class="segmented zone-toggle" role="group" aria-label="Time zone" data-testid="zone-toggle">
      <button
        type="button"
        class={mode === "local" ? "active" : ""}
        aria-pressed={mode === "local"}
        title="Show times in this browser's time zone"
        data-testid="zone-local"
        onClick={() => setZoneMode("local")}
      >
        Local
        {mode === "local" && local !== "UTC" ? ` (${local})` : ""}
      </button>
      <button
        type="button"
        class={mode === "utc" ? "active" : ""}
        aria-pressed={mode === "utc"}
        title="Show times in UTC"
        data-testid="zone-utc"
        onClick={() => setZoneMode("utc")}
      >
        UTC
      </button>
    </div>
  );
}
