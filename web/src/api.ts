// The HTTP API client (docs/api.md). Same-origin cookies; X-CSRF-Token on unsafe methods.

import { toQueryString, type QueryValue } from "./lib/query";
import type {
  ApiKeyItem,
  AuthConfig,
  Bucket,
  EventPage,
  KeyScope,
  KmEvent,
  KmSession,
  Me,
  Member,
  Org,
  Page,
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
    if (res.status === 401 && !path.startsWith("/auth/") && unauthorized) unauthorized();
    throw errorFromBody(res.status, body);
  }
  return body as T;
}

export function isAbort(err: unknown): boolean {
  return err instanceof DOMException && err.name === "AbortError";
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
  limit?: number;
  cursor?: string | null;
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

  sessions: (q: { limit?: number; cursor?: string | null }, signal?: AbortSignal) =>
    request<Page<KmSession>>("GET", "/api/v1/sessions", { query: { ...q }, signal }),
  session: (id: string, signal?: AbortSignal) => request<KmSession>("GET", `/api/v1/sessions/${enc(id)}`, { signal }),
  events: (q: EventQuery, signal?: AbortSignal) =>
    request<EventPage>("GET", "/api/v1/events", { query: { ...q }, signal }),
  event: (id: string, signal?: AbortSignal) => request<KmEvent>("GET", `/api/v1/events/${enc(id)}`, { signal }),
  stats: (q: StatsQuery, signal?: AbortSignal) => request<Stats>("GET", "/api/v1/stats", { query: { ...q }, signal }),

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
