// The JSON shapes of the HTTP API (docs/api.md), named for the rest of the app. They are aliases
// over src/api-types.ts, which is generated from the server's OpenAPI schema (its pydantic
// response models, kilometers/server/models.py): `make types` regenerates it, and a test
// (tests/server/test_openapi_types.py) fails when it is out of date.
import type { components } from "./api-types";

type Schemas = components["schemas"];

export type Direction = Schemas["Event"]["direction"];
export type Kind = Schemas["Event"]["kind"];
export const KINDS: readonly Kind[] = ["request", "notification", "response", "error", "invalid"];

export type Severity = Schemas["FindingItem"]["severity"];

export type Finding = Schemas["Finding"];
export type Risk = Schemas["Risk"];

/** The fields of linked calls (MCP 2026-07-28) and error names: always sent by the server,
 * optional here so that events built before them (tests, the live stream's reader) still type. */
type LinkedFields = "error_name" | "call_id" | "round" | "call_latency_ms";

/** An event of GET /api/v1/events (kilometers.model.Event.to_dict); `paired_event_id` only on
 * GET /api/v1/events/{id}. The server always sends `risk`; it is optional here because the live
 * stream's reader (lib/live.ts) keeps an event whose risk it cannot read. */
export type KmEvent = Omit<Schemas["Event"], "risk" | LinkedFields> &
  Partial<Pick<Schemas["Event"], LinkedFields>> & {
    risk?: Risk | null;
    paired_event_id?: Schemas["EventDetail"]["paired_event_id"];
  };

export type Level = Schemas["SessionRisk"]["level"];
/** Risk levels in order (kilometers.model.LEVELS). */
export const LEVELS: readonly Level[] = ["none", "low", "medium", "high", "critical"];
/** Finding severities in order (kilometers.analysis.findings.SEVERITIES). */
export const SEVERITIES: readonly Severity[] = ["info", "low", "medium", "high", "critical"];

/** A session's risk on GET /api/v1/sessions(/{id}): events with findings and the highest level. */
export type SessionRisk = Schemas["SessionRisk"];

/** One finding of GET /api/v1/findings (server/findings.py FindingItem). */
export type FindingItem = Schemas["FindingItem"];
export type SeverityCounts = Schemas["SeverityCounts"];
export type FindingGroup = Schemas["FindingGroupOut"];
export type FindingSummary = Schemas["FindingSummaryOut"];

/** A session; `client_capabilities` and `log_level` (always sent) are optional for older fixtures. */
export type KmSession = Omit<Schemas["Session"], "client_capabilities" | "log_level"> &
  Partial<Pick<Schemas["Session"], "client_capabilities" | "log_level">>;

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** A page of events; with free text the server reads a bounded number of events per page and
 * says how far back it searched (`searched_to`) when older events remain unsearched. */
export type EventPage = Omit<Schemas["EventPage"], "items"> & { items: KmEvent[] };

export type Bucket = Schemas["Stats"]["bucket"];
/** The counts of one group (totals, a series point, a method, tool or server); the server always
 * sends `response_bytes` and `est_tokens`, the charts also take groups without them. */
type Counts = Omit<Schemas["StatsPoint"], "minute">;
export type StatGroup = Omit<Counts, "response_bytes" | "est_tokens"> &
  Partial<Pick<Counts, "response_bytes" | "est_tokens">>;
export type StatsPoint = StatGroup & Pick<Schemas["StatsPoint"], "minute">;
export type Stats = Omit<Schemas["Stats"], "series"> & { series: StatsPoint[] };

export type Role = Schemas["Me"]["role"];
export const ROLES: readonly Role[] = ["owner", "admin", "member", "viewer"];

/** An organization; `usage` (this month's) on GET /api/v1/org only. */
export type Org = Schemas["Org"] & Partial<Pick<Schemas["OrgWithUsage"], "usage">>;
/** Events stored this month (UTC) against the plan's limit. */
export type Usage = Schemas["Usage"];

export type Me = Schemas["Me"];
/** GET /auth/config: how this server signs people in. */
export type AuthConfig = Schemas["AuthConfig"];

export type KeyScope = Schemas["ApiKey"]["scope"];
export const KEY_SCOPES: readonly KeyScope[] = ["ingest", "read", "admin"];
export type ApiKeyItem = Schemas["ApiKey"];

/** A member; status "invited": not yet accepted (or, for a new user, not yet signed in). */
export type Member = Schemas["Member"];

/** GET /api/v1/pins/review: each server's pinned and latest tool definitions (docs/api.md). */
export type PinReview = Schemas["PinReview"];
export type PinnedServer = Schemas["PinnedServer"];
export type PinnedTool = Schemas["PinnedTool"];
