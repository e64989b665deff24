// The HTTP API client (docs/api.md). Same-origin cookies (team server) or km ui's token in the
// X-KM-Token header; X-CSRF-Token on unsafe methods.

import { toQueryString, type QueryValue } from "./lib/query";
import { SseParser } from "./lib/sse";
import type {
  ApiKeyItem,
  AuthConfig,
  Bucket,
  EventPage,
  FindingItem,
  FindingSummary,
  KeyScope,
  KmEvent,
  KmSession,
  Me,
  Member,
  Org,
  Page,
  PinnedServer,
  PinReview,
  Role,
  Stats,
} from "./types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

let csrfToken = "";
let unauthorized: (() => void) | null = null;

// km ui's token. `km ui` opens /#token=…: a URL fragment is never sent to any server, and
// localStorage belongs to this origin (scheme, host and port) alone, so unlike a cookie (sent to
// every port of 127.0.0.1) no other local web server ever sees it. Reloads and other tabs of
// this origin read it back from storage.
const TOKEN_KEY = "km_ui_token";
let localToken = ""; // when storage is unavailable

function storage(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

/** The token in a launch URL's fragment (`#token=…`), or null. */
export function tokenFromHash(hash: string): string | null {
  const token = new URLSearchParams(hash.replace(/^#/, "")).get("token");
  return token && /^[A-Za-z0-9_-]{16,256}$/.test(token) ? token : null;
}

/**
 * The address without a launch token: `#token=…` on any page, or `token=…` in the query of a
 * hand-made link such as `/live?token=…` (the other query parameters stay). Null when there is none.
 */
export function launchToken(url: URL): { token: string | null; rest: string } | null {
  if (/^#token=/.test(url.hash)) return { token: tokenFromHash(url.hash), rest: url.pathname + url.search };
  const query = new URLSearchParams(url.search);
  if (!query.has("token")) return null;
  const token = tokenFromHash(`#token=${encodeURIComponent(query.get("token") ?? "")}`);
  query.delete("token");
  const search = query.toString();
  return { token, rest: url.pathname + (search ? `?${search}` : "") + url.hash };
}

/** Moves a token from the address bar into this origin's storage (and out of the history),
 *  leaving the page it links to in place. */
export function adoptLaunchToken(): void {
  const found = launchToken(new URL(location.href));
  if (!found) return;
  history.replaceState(history.state, "", found.rest);
  const { token } = found;
  if (!token) return;
  localToken = token;
  try {
    storage()?.setItem(TOKEN_KEY, token);
  } catch {
    // storage full or disabled: this tab still works
  }
}

function currentToken(): string {
  try {
    return storage()?.getItem(TOKEN_KEY) ?? localToken;
  } catch {
    return localToken;
  }
}

/** A token the server refused (km ui restarted, or this is another server) is dropped. */
function forgetToken(token: string): void {
  if (localToken === token) localToken = "";
  try {
    const s = storage();
    if (s?.getItem(TOKEN_KEY) === token) s.removeItem(TOKEN_KEY);
  } catch {
    // nothing stored
  }
}

function authHeaders(headers: Record<string, string>): string {
  const token = currentToken();
  if (token) headers["X-KM-Token"] = token;
  return token;
}

function refused(status: number, path: string, token: string): void {
  if (status !== 401) return;
  if (token) forgetToken(token);
  if (!path.startsWith("/auth/") && unauthorized) unauthorized();
}

const ENDED_KEY = "km_session_ended";

/** Remembers (for the sign-in page) that the session ended by itself, not by "Sign out". */
export function markSessionEnded(): void {
  try {
    window.sessionStorage.setItem(ENDED_KEY, "1");
  } catch {
    // storage disabled: the sign-in page just does not say why
  }
}

/** Whether the session ended by itself since the last sign-in page (asked once). */
export function takeSessionEnded(): boolean {
  try {
    const ended = window.sessionStorage.getItem(ENDED_KEY) === "1";
    window.sessionStorage.removeItem(ENDED_KEY);
    return ended;
  } catch {
    return false;
  }
}

export function setCsrfToken(token: string): void {
  csrfToken = token;
}

/** Called when a request (other than /auth/*) answers 401: the session expired. */
export function onUnauthorized(handler: (() => void) | null): void {
  unauthorized = handler;
}

type Method = "GET" | "POST" | "PATCH" | "DELETE";

interface RequestOptions {
  query?: Record<string, QueryValue>;
  body?: unknown;
  signal?: AbortSignal | undefined;
}

function errorFromBody(status: number, body: unknown): ApiError {
  if (typeof body === "object" && body !== null && "error" in body) {
    const err = (body as { error: unknown }).error;
    if (typeof err === "object" && err !== null) {
      const { code, message } = err as { code?: unknown; message?: unknown };
      return new ApiError(
        status,
        typeof code === "string" ? code : "http_error",
        typeof message === "string" ? message : `request failed (${status})`,
      );
    }
  }
  return new ApiError(status, "http_error", `request failed (HTTP ${status})`);
}

export async function request<T>(method: Method, path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const token = authHeaders(headers);
  let res: Response;
  try {
    res = await fetch(path + toQueryString(opts.query ?? {}), {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      credentials: "same-origin",
      signal: opts.signal ?? null,
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiError(0, "network_error", "cannot reach the server; check your connection and retry");
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!res.ok) {
    refused(res.status, path, token);
    throw errorFromBody(res.status, body);
  }
  return body as T;
}

export function isAbort(err: unknown): boolean {
  return err instanceof DOMException && err.name === "AbortError";
}

export interface StreamHandlers {
  onOpen?: () => void;
  /** The stream failed or ended; it reconnects by itself unless the server answered 401.
   *  `failures`: how many attempts in a row failed since the stream was last open. */
  onError?: (failures: number) => void;
  onMessage: (event: string, data: string) => void;
}

/** The wait before a stream reconnects (EventSource's default). */
const RETRY_MS = 1000;

/**
 * A Server-Sent Events stream (GET /api/v1/live) read with fetch, so it carries the same
 * credentials as every other call. Reconnects after a drop; returns the function that closes it.
 */
export function openStream(path: string, handlers: StreamHandlers): () => void {
  const ctl = new AbortController();
  let timer = 0;
  let failures = 0;
  const connect = async (): Promise<void> => {
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    const token = authHeaders(headers);
    try {
      const res = await fetch(path, { headers, credentials: "same-origin", cache: "no-store", signal: ctl.signal });
      if (!res.ok || !res.body) {
        refused(res.status, path, token);
        handlers.onError?.(++failures);
        if (res.status !== 401) timer = window.setTimeout(connect, RETRY_MS);
        return;
      }
      failures = 0;
      handlers.onOpen?.();
      const parser = new SseParser();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        for (const msg of parser.feed(value)) handlers.onMessage(msg.event, msg.data);
      }
    } catch (err) {
      if (ctl.signal.aborted || isAbort(err)) return;
    }
    if (ctl.signal.aborted) return;
    handlers.onError?.(++failures);
    timer = window.setTimeout(connect, RETRY_MS);
  };
  void connect();
  return () => {
    ctl.abort();
    window.clearTimeout(timer);
  };
}

export interface EventQuery {
  session_id?: string;
  method?: string;
  tool?: string;
  kind?: string;
  errors?: boolean;
  since?: string;
  until?: string;
  q?: string;
  /** Only events at this risk level or above (low … critical). */
  min_level?: string;
  limit?: number;
  cursor?: string | null;
  /** "oldest": oldest first (a session from its start); newest first by default. */
  order?: "newest" | "oldest";
}

/** GET /api/v1/findings and /summary (docs/api.md). */
export interface FindingQuery {
  severity?: string;
  min_severity?: string;
  rule?: string;
  server?: string;
  session_id?: string;
  tool?: string;
  since?: string;
  until?: string;
  sort?: "newest" | "oldest" | "severity";
  limit?: number;
  cursor?: string | null;
}

/** The URL of GET /api/v1/export: a session or a search as a JSON Lines or HAR file. */
export function exportUrl(format: "jsonl" | "har", q: EventQuery): string {
  const { limit: _limit, cursor: _cursor, ...filters } = q;
  return "/api/v1/export" + toQueryString({ format, ...filters });
}

/**
 * Downloads an export with this tab's credentials (km ui's token travels in a header, so a plain
 * link cannot carry it) and saves it under the server's file name.
 */
export async function download(url: string): Promise<void> {
  const headers: Record<string, string> = {};
  const token = authHeaders(headers);
  let res: Response;
  try {
    res = await fetch(url, { headers, credentials: "same-origin", cache: "no-store" });
  } catch {
    throw new ApiError(0, "network_error", "cannot reach the server; check your connection and retry");
  }
  if (!res.ok) {
    const body: unknown = await res.json().catch(() => null);
    refused(res.status, url, token);
    throw errorFromBody(res.status, body);
  }
  const name = /filename="([^"]+)"/.exec(res.headers.get("content-disposition") ?? "")?.[1] ?? "km-export";
  const blob = await res.blob();
  const href = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(href), 10_000);
}

export interface StatsQuery {
  since?: string;
  until?: string;
  bucket?: Bucket;
  tool?: string;
  server?: string;
}

const enc = encodeURIComponent;

export const api = {
  me: (signal?: AbortSignal) => request<Me>("GET", "/auth/me", { signal }),
  authConfig: (signal?: AbortSignal) => request<AuthConfig>("GET", "/auth/config", { signal }),
  login: (email: string, password: string) => request<Me>("POST", "/auth/login", { body: { email, password } }),
  logout: () => request<void>("POST", "/auth/logout"),
  switchOrg: (orgId: string) => request<Me>("POST", "/auth/switch-org", { body: { org_id: orgId } }),

  sessions: (q: { limit?: number; cursor?: string | null; min_level?: string }, signal?: AbortSignal) =>
    request<Page<KmSession>>("GET", "/api/v1/sessions", { query: { ...q }, signal }),
  session: (id: string, signal?: AbortSignal) => request<KmSession>("GET", `/api/v1/sessions/${enc(id)}`, { signal }),
  events: (q: EventQuery, signal?: AbortSignal) =>
    request<EventPage>("GET", "/api/v1/events", { query: { ...q }, signal }),
  event: (id: string, signal?: AbortSignal) => request<KmEvent>("GET", `/api/v1/events/${enc(id)}`, { signal }),
  stats: (q: StatsQuery, signal?: AbortSignal) => request<Stats>("GET", "/api/v1/stats", { query: { ...q }, signal }),
  findings: (q: FindingQuery, signal?: AbortSignal) =>
    request<{ items: FindingItem[]; next_cursor: string | null }>("GET", "/api/v1/findings", {
      query: { ...q },
      signal,
    }),
  findingsSummary: (q: FindingQuery & { group: "rule" | "server"; limit?: number }, signal?: AbortSignal) =>
    request<FindingSummary>("GET", "/api/v1/findings/summary", { query: { ...q }, signal }),

  pinReview: (signal?: AbortSignal) => request<PinReview>("GET", "/api/v1/pins/review", { signal }),
  decidePins: (key: string, decision: "approve" | "reject", tool?: string) =>
    request<PinnedServer>("POST", `/api/v1/pins/review/${enc(key)}/${decision}`, {
      body: tool === undefined ? {} : { tool },
    }),

  org: (signal?: AbortSignal) => request<Org>("GET", "/api/v1/org", { signal }),
  patchOrg: (changes: { retention_days: number | null }) => request<Org>("PATCH", "/api/v1/org", { body: changes }),

  keys: (signal?: AbortSignal) => request<{ items: ApiKeyItem[] }>("GET", "/api/v1/keys", { signal }),
  createKey: (scope: KeyScope, name: string) =>
    request<{ key: string; item: ApiKeyItem }>("POST", "/api/v1/keys", { body: { scope, name } }),
  revokeKey: (id: string) => request<void>("DELETE", `/api/v1/keys/${enc(id)}`),

  members: (signal?: AbortSignal) => request<{ items: Member[] }>("GET", "/api/v1/members", { signal }),
  addMember: (m: { email: string; role: Role; password?: string }) =>
    request<unknown>("POST", "/api/v1/members", { body: m }),
  setRole: (userId: string, role: Role) =>
    request<unknown>("PATCH", `/api/v1/members/${enc(userId)}`, { body: { role } }),
  removeMember: (userId: string) => request<void>("DELETE", `/api/v1/members/${enc(userId)}`),
  acceptInvitation: (orgId: string) => request<Me>("POST", `/auth/invitations/${enc(orgId)}`),
  declineInvitation: (orgId: string) => request<void>("DELETE", `/auth/invitations/${enc(orgId)}`),
};
