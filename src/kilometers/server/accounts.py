"""Users, memberships (roles per organization) and browser sessions.

Passwords are hashed with argon2id. A browser session is a random token in an HTTP-only
cookie; only its SHA-256 is stored, with the CSRF token the page must echo back.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, insert, select, update

from ..model import new_id
from ..store.schema import memberships, organizations, users, web_sessions
from .tenancy import ROLES, Org, TenancyError, audit, get_org, hash_key

SESSION_TTL_NS = 7 * 86_400 * 10**9
MIN_PASSWORD = 8
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a real password")


@dataclass(frozen=True)
class User:
    id: str
    email: str


@dataclass(frozen=True)
class WebSession:
    user: User
    org: Org
    role: str
    csrf_token: str


def _normal_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320 or "\x00" in email:
        raise TenancyError(f"{email!r} is not an e-mail address")
    return email


def get_user(engine: Engine, email: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(users.c.id, users.c.email).where(users.c.email == _normal_email(email))
        ).first()
    return User(row[0], row[1]) if row else None


def create_user(engine: Engine, email: str, password: str | None) -> User:
    """A new user; ``password=None`` makes one who can only sign in with OpenID Connect (no
    password hash is stored, and :func:`verify_login` refuses every password for them)."""
    email = _normal_email(email)
    if password is not None and len(password) < MIN_PASSWORD:
        raise TenancyError(f"a password needs at least {MIN_PASSWORD} characters")
    if get_user(engine, email) is not None:
        raise TenancyError(f"a user {email!r} already exists")
    user = User(new_id(), email)
    with engine.begin() as conn:
        conn.execute(
            insert(users).values(
                id=user.id,
                email=email,
                password_hash=_hasher.hash(password) if password is not None else None,
                created_ns=time.time_ns(),
            )
        )
    return user


def set_member(engine: Engine, org: Org, user: User, role: str, actor: str = "cli") -> None:
    """Add the user to the organization with this role, or change their role."""
    if role not in ROLES:
        raise TenancyError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    with engine.begin() as conn:
        found = conn.execute(
            select(memberships.c.role).where(memberships.c.org_id == org.id, memberships.c.user_id == user.id)
        ).first()
        if found is None:
            conn.execute(insert(memberships).values(org_id=org.id, user_id=user.id, role=role))
            audit(conn, org.id, actor, "member.added", {"user": user.email, "role": role})
        elif found[0] != role:
            conn.execute(
                update(memberships)
                .where(memberships.c.org_id == org.id, memberships.c.user_id == user.id)
                .values(role=role)
            )
            audit(conn, org.id, actor, "member.role_changed", {"user": user.email, "role": role})


def remove_member(engine: Engine, org: Org, user_id: str, actor: str = "cli") -> None:
    with engine.begin() as conn:
        n = conn.execute(
            delete(memberships).where(memberships.c.org_id == org.id, memberships.c.user_id == user_id)
        ).rowcount
        if not n:
            raise TenancyError("no such member in this organization")
        conn.execute(
            delete(web_sessions).where(web_sessions.c.user_id == user_id, web_sessions.c.org_id == org.id)
        )
        audit(conn, org.id, actor, "member.removed", {"user_id": user_id})


def list_members(engine: Engine, org: Org) -> list[dict[str, Any]]:
    query = (
        select(users.c.id, users.c.email, memberships.c.role)
        .join(memberships, memberships.c.user_id == users.c.id)
        .where(memberships.c.org_id == org.id)
        .order_by(users.c.email)
    )
    with engine.connect() as conn:
        return [{"user_id": r[0], "email": r[1], "role": r[2]} for r in conn.execute(query)]


def user_orgs(engine: Engine, user_id: str) -> list[dict[str, str]]:
    query = (
        select(organizations.c.id, organizations.c.name, memberships.c.role)
        .join(memberships, memberships.c.org_id == organizations.c.id)
        .where(memberships.c.user_id == user_id)
        .order_by(organizations.c.name)
    )
    with engine.connect() as conn:
        return [{"id": r[0], "name": r[1], "role": r[2]} for r in conn.execute(query)]


def verify_login(engine: Engine, email: str, password: str) -> User | None:
    try:
        email = _normal_email(email)
    except TenancyError:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(users.c.id, users.c.password_hash).where(users.c.email == email)).first()
    usable = row is not None and bool(row[1])  # no hash: a user who signs in with OpenID Connect only
    try:
        _hasher.verify(row[1] if row and row[1] else _DUMMY_HASH, password)  # same cost when unknown
    except (VerificationError, InvalidHashError):
        return None
    return User(row[0], email) if row and usable else None


def start_session(engine: Engine, user: User, org_id: str | None = None) -> tuple[str, str]:
    """A new browser session in ``org_id`` (default: the user's first organization): (token, csrf)."""
    orgs = user_orgs(engine, user.id)
    if not orgs:
        raise TenancyError("this user is not a member of any organization")
    chosen = next((o for o in orgs if o["id"] == org_id), None) if org_id else orgs[0]
    if chosen is None:
        raise TenancyError("not a member of that organization")
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = time.time_ns()
    with engine.begin() as conn:
        conn.execute(delete(web_sessions).where(web_sessions.c.expires_ns < now))
        conn.execute(
            insert(web_sessions).values(
                token_hash=hash_key(token),
                user_id=user.id,
                org_id=chosen["id"],
                csrf_token=csrf,
                created_ns=now,
                expires_ns=now + SESSION_TTL_NS,
            )
        )
    return token, csrf


def load_session(engine: Engine, token: str) -> WebSession | None:
    query = (
        select(web_sessions, users.c.email, memberships.c.role)
        .join(users, users.c.id == web_sessions.c.user_id)
        .join(
            memberships,
            (memberships.c.user_id == web_sessions.c.user_id)
            & (memberships.c.org_id == web_sessions.c.org_id),
        )
        .where(web_sessions.c.token_hash == hash_key(token), web_sessions.c.expires_ns > time.time_ns())
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    m = row._mapping
    try:
        org = get_org(engine, m["org_id"])
    except TenancyError:
        return None
    return WebSession(User(m["user_id"], m["email"]), org, m["role"], m["csrf_token"])


def end_session(engine: Engine, token: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(web_sessions).where(web_sessions.c.token_hash == hash_key(token)))
