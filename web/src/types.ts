// The JSON shapes of the HTTP API (docs/api.md). Event and Session mirror
// kilometers.model.Event.to_dict / Session.to_dict; Stats mirrors server/rollups.py.

export type Direction = "client_to_server" | "server_to_client";
export type Kind = "request" | "notification" | "response" | "error" | "invalid";
export const KINDS: readonly Kind[] = ["request", "notification", "response", "error", "invalid"];

export type Severity = "info" | "low" | "medium" | "high" | "critical";

export interface Finding {
  rule: string;
  severity: Severity | string;
  path: string;
  message: string;
}

export interface Risk {
  score: number;
  level: string;
  findings: Finding[];
}

export interface KmEvent {
  id: string;
  session_id: string;
  /** RFC 3339 UTC with microseconds, e.g. 2026-11-27T22:34:35.123456Z */
  ts: string;
  direction: Direction;
  kind: Kind;
  jsonrpc_id: unknown;
  method: string | null;
  tool: string | null;
  resource_uri: string | null;
  prompt_name: string | null;
  latency_ms: number | null;
  size_bytes: number;
  is_error: boolean;
  error: { code: number | null; message: string | null } | null;
  truncated: boolean;
  request_event_id: string | null;
  payload: unknown;
  /** Present when the server analysed the event (kilometers.analysis). */
  risk?: Risk | null;
  /** Only on GET /api/v1/events/{id}. */
  paired_event_id?: string | null;
}

export type Level = "none" | "low" | "medium" | "high" | "critical";
/** Risk levels in order (kilometers.model.LEVELS). */
export const LEVELS: readonly Level[] = ["none", "low", "medium", "high", "critical"];
/** Finding severities in order (kilometers.analysis.findings.SEVERITIES). */
export const SEVERITIES: readonly Severity[] = ["info", "low", "medium", "high", "critical"];

/** A session's risk on GET /api/v1/sessions(/{id}): events with findings and the highest level. */
export interface SessionRisk {
  events_with_findings: number;
  max_score: number;
  level: Level | string;
}

/** One finding of GET /api/v1/findings (server/findings.py FindingItem). */
export interface FindingItem {
  event_id: string;
  session_id: string;
  ts: string;
  rule: string;
  severity: Severity;
  /** RFC 6901 JSON pointer into the event's message ("" = the whole message). */
  path: string;
  message: string;
  /** Position of the finding in its event's risk.findings. */
  index: number;
  server: string | null;
  tool: string | null;
  method: string | null;
  kind: string;
  direction: string;
  event_level: Level;
}

export type SeverityCounts = Record<Severity, number>;

export interface FindingGroup {
  key: string;
  count: number;
  highest: Severity;
  by_severity: SeverityCounts;
  sessions: number;
  /** By rule: servers it was found on; by server: rules found on it. */
  related: number;
  first_seen: string;
  last_seen: string;
}

export interface FindingSummary {
  group: "rule" | "server";
  total: number;
  by_severity: SeverityCounts;
  items: FindingGroup[];
  truncated: boolean;
}

export interface KmSession {
  id: string;
  name: string | null;
  transport: string;
  started_at: string;
  ended_at: string | null;
  duration_ms: number | null;
  command: string[];
  cwd: string;
  pid: number | null;
  exit_code: number | null;
  client: Record<string, unknown> | null;
  server: Record<string, unknown> | null;
  protocol_version: string | null;
  capabilities: Record<string, unknown> | null;
  event_count: number;
  error_count: number;
  dropped_events: number;
  /** Present on the read API's answers (not in a live event). */
  risk?: SessionRisk;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** A page of events; with free text the server reads a bounded number of events per page and
 * says how far back it searched (`searched_to`) when older events remain unsearched. */
export interface EventPage extends Page<KmEvent> {
  searched_to?: string;
}

export type Bucket = "minute" | "hour" | "day";

export interface StatGroup {
  events: number;
  calls: number;
  errors: number;
  error_rate: number;
  bytes: number;
  response_bytes?: number;
  /** An ESTIMATE of the tokens results put into the model's context (response bytes / 4). */
  est_tokens?: number;
  latency_avg_ms: number | null;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
}

export interface StatsPoint extends StatGroup {
  /** Start of the bucket, in minutes since the Unix epoch. */
  minute: number;
}

export interface Stats {
  since: number;
  until: number;
  bucket: Bucket;
  totals: StatGroup & { active_sessions?: number; running_sessions?: number; findings?: number };
  series: StatsPoint[];
  by_method: (StatGroup & { method: string })[];
  by_tool: (StatGroup & { server: string; tool: string })[];
  by_server: (StatGroup & { server: string })[];
}

export type Role = "owner" | "admin" | "member" | "viewer";
export const ROLES: readonly Role[] = ["owner", "admin", "member", "viewer"];

export interface Org {
  id: string;
  name: string;
  plan: string;
  events_per_month: number | null;
  retention_days: number | null;
  /** This month's usage (GET /api/v1/org only). */
  usage?: Usage;
}

/** Events stored this month (UTC) against the plan's limit. */
export interface Usage {
  month: string;
  events: number;
  limit: number | null;
  state: "ok" | "near" | "over";
  resets_at: string;
}

export interface Me {
  mode: "team" | "local";
  user: { id: string; email: string };
  org: Org;
  role: Role;
  orgs: { id: string; name: string; role: Role }[];
  /** Organizations that invited this user and the role offered (accept or decline in Settings). */
  invitations: { id: string; name: string; role: Role }[];
  csrf_token: string;
}

/** GET /auth/config: how this server signs people in. */
export interface AuthConfig {
  mode: "team" | "local";
  sso: { enabled: boolean; name: string | null; login_url: string | null };
}

export type KeyScope = "ingest" | "read" | "admin";
export const KEY_SCOPES: readonly KeyScope[] = ["ingest", "read", "admin"];

export interface ApiKeyItem {
  id: string;
  scope: KeyScope | string;
  prefix: string;
  name: string | null;
  created_ns: number;
  revoked: boolean;
  /** The user who created it in the browser; null for keys made with `km admin`. */
  created_by: string | null;
}

export interface Member {
  user_id: string;
  email: string;
  role: Role;
  /** "invited": not yet accepted (or, for a new user, not yet signed in). */
  status: "active" | "invited";
}

/** GET /api/v1/pins/review: one tool's pinned and latest definitions (docs/api.md). */
export interface PinnedTool {
  name: string;
  status: "pinned" | "changed" | "rejected" | "removed";
  changed_fields: string[];
  pinned_sha256: string | null;
  latest_sha256: string | null;
  pinned: Record<string, unknown> | null;
  latest: Record<string, unknown> | null;
  collides_with: string[];
  drift: boolean;
}

export interface PinnedServer {
  key: string;
  server: string;
  runs: string;
  approved_at: string | null;
  approved_by: string | null;
  changed: number;
  tools: PinnedTool[];
}

export interface PinReview {
  mode: "local" | "team";
  items: PinnedServer[];
}
