"""Organizations, projects, API keys, members and the audit log (library used by the API and `km admin`).

API keys look like ``km_live_<43 url-safe chars>``. Only their SHA-256 is stored (the key is
random with 256 bits of entropy, so a slow hash adds nothing); the key is shown once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, insert, select, update

from ..model import new_id
from ..store.schema import (
    api_keys,
    audit_log,
    events,
    invitations,
    memberships,
    org_usage,
    organizations,
    pin_signing_keys,
    projects,
    rollups,
    rollups_day,
    rollups_hour,
    rollups_org_hour,
    sessions,
    team_servers,
    team_tools,
)

KEY_PREFIX = "km_live_"
SCOPES = ("ingest", "read", "admin")
ROLES = ("owner", "admin", "member", "viewer")
PLANS: dict[str, dict[str, int | None]] = {
    "free": {"events_per_month": 10_000, "retention_days": 7},
    "team": {"events_per_month": 10_000_000, "retention_days": 90},
    "unlimited": {"events_per_month": None, "retention_days": None},
}


class TenancyError(ValueError):
    """A request about organizations or keys that cannot be carried out (the message says why)."""


@dataclass(frozen=True)
class Org:
    id: str
    name: str
    plan: str
    events_per_month: int | None
    retention_days: int | None
    redact_pii: bool = False
    """The team server redacts personal data in what the organization uploads (secrets always)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "plan": self.plan,
            "events_per_month": self.events_per_month,
            "retention_days": self.retention_days,
            "redact_pii": self.redact_pii,
        }


@dataclass(frozen=True)
class ApiKey:
    id: str
    org_id: str
    scope: str
    prefix: str
    name: str | None
    created_ns: int
    revoked_ns: int | None
    created_by: str | None = None

    def allows(self, scope: str) -> bool:
        return self.scope == scope or self.scope == "admin"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "org_id": self.org_id,
            "scope": self.scope,
            "prefix": self.prefix,
            "name": self.name,
            "created_ns": self.created_ns,
            "revoked": self.revoked_ns is not None,
            "created_by": self.created_by,
        }


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def audit(
    conn: Connection, org_id: str, actor: str, action: str, detail: dict[str, Any] | None = None
) -> None:
    conn.execute(
        insert(audit_log).values(
            org_id=org_id,
            ts_ns=time.time_ns(),
            actor=actor,
            action=action,
            detail=orjson.dumps(detail or {}).decode(),
        )
    )


def _org_from_row(row: Any) -> Org:
    m = row._mapping
    return Org(
        m["id"], m["name"], m["plan"], m["events_per_month"], m["retention_days"], bool(m["redact_pii"])
    )


def create_org(engine: Engine, name: str, plan: str = "free", actor: str = "cli") -> Org:
    name = name.strip()
    if not name:
        raise TenancyError("an organization needs a name")
    if plan not in PLANS:
        raise TenancyError(f"unknown plan {plan!r}; choose one of {', '.join(PLANS)}")
    limits = PLANS[plan]
    org = Org(new_id(), name, plan, limits["events_per_month"], limits["retention_days"])
    with engine.begin() as conn:
        if conn.execute(select(organizations.c.id).where(organizations.c.name == name)).first():
            raise TenancyError(f"an organization named {name!r} already exists")
        conn.execute(insert(organizations).values(**org.to_dict(), created_ns=time.time_ns()))
        conn.execute(
            insert(projects).values(id=new_id(), org_id=org.id, name="default", created_ns=time.time_ns())
        )
        audit(conn, org.id, actor, "org.created", {"name": name, "plan": plan})
    return org


def get_org(engine: Engine, ref: str) -> Org:
    """An organization by name or id."""
    with engine.connect() as conn:
        row = conn.execute(
            select(organizations).where((organizations.c.name == ref) | (organizations.c.id == ref))
        ).first()
    if row is None:
        raise TenancyError(f"no organization named {ref!r} (see `km admin list-orgs`)")
    return _org_from_row(row)


def list_orgs(engine: Engine) -> list[Org]:
    with engine.connect() as conn:
        return [_org_from_row(r) for r in conn.execute(select(organizations).order_by(organizations.c.name))]


NEAR_LIMIT = 0.8
"""The share of the monthly limit from which the dashboard warns."""


def usage(engine: Engine, org: Org, now_ns: int | None = None) -> dict[str, Any]:
    """Events stored this month (UTC; what the plan's limit counts) against the limit, and where
    that stands: ``ok``, ``near`` (at least :data:`NEAR_LIMIT` of it) or ``over`` (uploads are
    refused with 402 until the month ends or the limit is raised)."""
    now = datetime.fromtimestamp((now_ns or time.time_ns()) / 1e9, UTC)
    month = now.year * 100 + now.month
    with engine.connect() as conn:
        used = conn.execute(
            select(org_usage.c.events).where(org_usage.c.org_id == org.id, org_usage.c.month == month)
        ).scalar()
    used = int(used or 0)
    limit = org.events_per_month
    state = "ok"
    if limit is not None:
        state = "over" if used >= limit else "near" if used >= NEAR_LIMIT * limit else "ok"
    resets = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return {
        "month": f"{now.year:04d}-{now.month:02d}",
        "events": used,
        "limit": limit,
        "state": state,
        "resets_at": resets.isoformat().replace("+00:00", "Z"),
    }


def set_limits(
    engine: Engine, org: Org, events_per_month: int | None, retention_days: int | None, actor: str = "cli"
) -> Org:
    with engine.begin() as conn:
        conn.execute(
            update(organizations)
            .where(organizations.c.id == org.id)
            .values(events_per_month=events_per_month, retention_days=retention_days)
        )
        audit(conn, org.id, actor, "org.limits_changed", {"events_per_month": events_per_month,
                                                             "retention_days": retention_days})  # fmt: skip
    return get_org(engine, org.id)


def set_retention(engine: Engine, org: Org, retention_days: int | None, actor: str = "cli") -> Org:
    """The one setting an organization's admins change themselves: its retention, within its
    plan's (``None`` keeps data forever, on a plan without a retention limit only). Only the
    retention is written: the operator's limits (`km admin set-limits`) are left as they are."""
    cap = PLANS.get(org.plan, PLANS["free"])["retention_days"]  # an unknown plan gets the smallest
    if isinstance(retention_days, bool) or (retention_days is not None and retention_days < 1):
        raise TenancyError("retention_days must be a whole number of days, at least 1")
    if cap is not None and (retention_days is None or retention_days > cap):
        raise TenancyError(
            f"retention_days can be at most {cap} days on the {org.plan} plan; send 1 to {cap}"
        )
    with engine.begin() as conn:
        conn.execute(
            update(organizations).where(organizations.c.id == org.id).values(retention_days=retention_days)
        )
        audit(conn, org.id, actor, "org.retention_changed", {"retention_days": retention_days})
    return get_org(engine, org.id)


def set_redact_pii(engine: Engine, org: Org, redact_pii: bool, actor: str = "cli") -> Org:
    """Whether the team server redacts personal data (e-mail addresses, phone, card and identity
    numbers...) in the organization's uploads from now on; secrets are always redacted."""
    with engine.begin() as conn:
        conn.execute(update(organizations).where(organizations.c.id == org.id).values(redact_pii=redact_pii))
        audit(conn, org.id, actor, "org.redact_pii_changed", {"redact_pii": redact_pii})
    return get_org(engine, org.id)


def create_key(
    engine: Engine,
    org: Org,
    scope: str = "ingest",
    name: str | None = None,
    actor: str = "cli",
    created_by: str | None = None,
) -> str:
    """Create a key and return it; this is the only time the full key exists anywhere.
    ``created_by`` is the id of the user whose rights the key carries (capped by their role in
    the organization whenever it is used); None for the operator's keys (`km admin create-key`)."""
    if scope not in SCOPES:
        raise TenancyError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = new_id()
    with engine.begin() as conn:
        conn.execute(
            insert(api_keys).values(
                id=key_id,
                org_id=org.id,
                name=name,
                prefix=key[:12],
                key_hash=hash_key(key),
                scope=scope,
                created_ns=time.time_ns(),
                created_by=created_by,
            )
        )
        audit(conn, org.id, actor, "key.created", {"key_id": key_id, "scope": scope, "name": name})
    return key


def _key_from_row(row: Any) -> ApiKey:
    m = row._mapping
    return ApiKey(
        m["id"],
        m["org_id"],
        m["scope"],
        m["prefix"],
        m["name"],
        m["created_ns"],
        m["revoked_ns"],
        m["created_by"],
    )


def list_keys(engine: Engine, org: Org | None = None) -> list[ApiKey]:
    query = select(api_keys).order_by(api_keys.c.created_ns)
    if org is not None:
        query = query.where(api_keys.c.org_id == org.id)
    with engine.connect() as conn:
        return [_key_from_row(r) for r in conn.execute(query)]


def revoke_key(engine: Engine, key_id: str, org: Org | None = None, actor: str = "cli") -> ApiKey:
    """Revoke by key id (or unique id prefix); with ``org``, only that organization's keys."""
    query = select(api_keys).where(api_keys.c.id.startswith(key_id, autoescape=True))
    if org is not None:
        query = query.where(api_keys.c.org_id == org.id)
    with engine.begin() as conn:
        rows = conn.execute(query.limit(2)).all()
        if not rows:
            raise TenancyError(f"no API key with id {key_id!r} (see `km admin list-keys`)")
        if len(rows) > 1:
            raise TenancyError(f"{key_id!r} matches several keys; give more of the id")
        key = _key_from_row(rows[0])
        if key.revoked_ns is None:
            conn.execute(update(api_keys).where(api_keys.c.id == key.id).values(revoked_ns=time.time_ns()))
            audit(conn, key.org_id, actor, "key.revoked", {"key_id": key.id})
    return key


def authenticate(engine: Engine, key: str) -> ApiKey | None:
    """The key's record if it exists (revoked keys included; the caller says why it refuses)."""
    if not key.startswith(KEY_PREFIX):
        return None
    with engine.connect() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.key_hash == hash_key(key))).first()
    return _key_from_row(row) if row else None


ORG_TABLES = (
    sessions,
    events,
    rollups,
    rollups_hour,
    rollups_day,
    rollups_org_hour,
    org_usage,
    api_keys,
    memberships,
    invitations,
    projects,
    audit_log,
    team_servers,
    team_tools,
    pin_signing_keys,
)


def export_org(engine: Engine, org: Org) -> Any:
    """Everything an organization stored, as (table, row) pairs, streamed."""
    with engine.connect() as conn:
        yield (
            "organizations",
            dict(conn.execute(select(organizations).where(organizations.c.id == org.id)).one()._mapping),
        )
        for table in ORG_TABLES:
            result = conn.execution_options(stream_results=True).execute(
                select(table).where(table.c.org_id == org.id)
            )
            for row in result:
                data = dict(row._mapping)
                if table is api_keys:
                    data.pop("key_hash")
                if table is pin_signing_keys:
                    data.pop("private_key")
                yield table.name, data


def delete_org(engine: Engine, org: Org) -> dict[str, int]:
    """Erase everything the organization stored; returns rows removed per table."""
    removed: dict[str, int] = {}
    with engine.begin() as conn:
        for table in ORG_TABLES:
            removed[table.name] = conn.execute(delete(table).where(table.c.org_id == org.id)).rowcount
        removed["organizations"] = conn.execute(
            delete(organizations).where(organizations.c.id == org.id)
        ).rowcount
    return removed
