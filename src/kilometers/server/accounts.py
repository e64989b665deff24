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
from sqlalchemy import Connection, Engine, delete, insert, select, update

from ..model import new_id
from ..store.schema import invitations, memberships, organizations, users, web_sessions
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


def create_user(engine: Engine, email: str, password: str | None, managed_by: str | None = None) -> User:
    """A new user; ``password=None`` makes one who can only sign in with OpenID Connect (no
    password hash is stored, and :func:`verify_login` refuses every password for them).
    ``managed_by``: the organization that created them (see :func:`invite`)."""
    email = _normal_email(email)
    _check_password(password)
    if get_user(engine, email) is not None:
        raise TenancyError(f"a user {email!r} already exists")
    user = User(new_id(), email)
    with engine.begin() as conn:
        _insert_user(conn, user, _hash(password), managed_by)
    return user


class AlreadyMember(TenancyError):
    """The address is already a member of this organization."""


class LastOwner(TenancyError):
    """The change would leave the organization without an owner."""


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise TenancyError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")


def _check_password(password: str | None) -> None:
    if password is not None and len(password) < MIN_PASSWORD:
        raise TenancyError(f"a password needs at least {MIN_PASSWORD} characters")


def _hash(password: str | None) -> str | None:
    return _hasher.hash(password) if password is not None else None


def _insert_user(conn: Connection, user: User, password_hash: str | None, managed_by: str | None) -> None:
    conn.execute(
        insert(users).values(
            id=user.id,
            email=user.email,
            password_hash=password_hash,
            created_ns=time.time_ns(),
            managed_by=managed_by,
        )
    )


def _guard_last_owner(conn: Connection, org_id: str, user_id: str, new_role: str | None) -> None:
    """Refuse removing or demoting the organization's last owner (owner rows locked on PostgreSQL,
    so two concurrent demotions cannot both pass)."""
    owners = conn.execute(
        select(memberships.c.user_id)
        .where(memberships.c.org_id == org_id, memberships.c.role == "owner")
        .with_for_update()
    ).all()
    if new_role != "owner" and [r[0] for r in owners] == [user_id]:
        raise LastOwner("an organization needs at least one owner; make someone else owner first")


def invite(engine: Engine, org: Org, email: str, role: str, password: str | None, actor: str = "cli") -> User:
    """Offer ``email`` a membership with ``role``. An address nobody uses becomes a new user that
    this organization manages, with ``password`` (None: OpenID Connect only); the membership
    starts at their first sign-in. An existing user keeps their own credentials (``password`` is
    never applied to them) and joins when they accept after signing in. The caller cannot tell
    the two cases apart: same result, and the password is hashed in both."""
    email = _normal_email(email)
    _check_role(role)
    _check_password(password)
    password_hash = _hash(password)
    with engine.begin() as conn:
        row = conn.execute(select(users.c.id).where(users.c.email == email)).first()
        user = User(row[0] if row else new_id(), email)
        if row is None:
            _insert_user(conn, user, password_hash, org.id)
        elif conn.execute(
            select(memberships.c.role).where(memberships.c.org_id == org.id, memberships.c.user_id == user.id)
        ).first():
            raise AlreadyMember(f"{email} is already a member; change their role instead")
        conn.execute(
            delete(invitations).where(invitations.c.org_id == org.id, invitations.c.user_id == user.id)
        )
        conn.execute(
            insert(invitations).values(
                org_id=org.id, user_id=user.id, role=role, invited_by=actor, created_ns=time.time_ns()
            )
        )
        audit(conn, org.id, actor, "member.invited", {"user": email, "role": role})
    return user


def _may_accept(conn: Connection, user_id: str, org_id: str) -> bool:
    """A user another organization created with a password it chose (so that organization's
    admins know it) joins only that organization; everyone else may accept any invitation."""
    row = conn.execute(select(users.c.managed_by, users.c.password_hash).where(users.c.id == user_id)).first()
    return row is not None and (row[0] in (None, org_id) or not row[1])


def _join(conn: Connection, org_id: str, user_id: str, role: str, actor: str) -> None:
    conn.execute(delete(invitations).where(invitations.c.org_id == org_id, invitations.c.user_id == user_id))
    conn.execute(insert(memberships).values(org_id=org_id, user_id=user_id, role=role))
    audit(conn, org_id, actor, "member.joined", {"user_id": user_id, "role": role})


def accept_invitation(engine: Engine, user: User, org_id: str) -> None:
    with engine.begin() as conn:
        found = conn.execute(
            select(invitations.c.role).where(invitations.c.org_id == org_id, invitations.c.user_id == user.id)
        ).first()
        if found is None or not _may_accept(conn, user.id, org_id):
            raise TenancyError("no invitation to accept from that organization")
        _join(conn, org_id, user.id, found[0], f"user:{user.email}")


def decline_invitation(engine: Engine, user: User, org_id: str) -> None:
    with engine.begin() as conn:
        n = conn.execute(
            delete(invitations).where(invitations.c.org_id == org_id, invitations.c.user_id == user.id)
        ).rowcount
        if not n:
            raise TenancyError("no invitation from that organization")
        audit(conn, org_id, f"user:{user.email}", "member.declined", {"user_id": user.id})


def pending_invitations(engine: Engine, user_id: str) -> list[dict[str, str]]:
    """The invitations this user may accept (an organization's name and the role offered)."""
    query = (
        select(organizations.c.id, organizations.c.name, invitations.c.role)
        .join(invitations, invitations.c.org_id == organizations.c.id)
        .join(users, users.c.id == invitations.c.user_id)
        .where(
            invitations.c.user_id == user_id,
            (users.c.managed_by.is_(None))
            | (users.c.managed_by == invitations.c.org_id)
            | (users.c.password_hash.is_(None)),
        )
        .order_by(organizations.c.name)
    )
    with engine.connect() as conn:
        return [{"id": r[0], "name": r[1], "role": r[2]} for r in conn.execute(query)]


def set_member(engine: Engine, org: Org, user: User, role: str, actor: str = "cli") -> None:
    """Add the user to the organization with this role at once, or change their role (the
    operator's `km admin create-user`; Settings invites with :func:`invite` instead)."""
    _check_role(role)
    with engine.begin() as conn:
        found = conn.execute(
            select(memberships.c.role).where(memberships.c.org_id == org.id, memberships.c.user_id == user.id)
        ).first()
        if found is None:
            _join(conn, org.id, user.id, role, actor)
        elif found[0] != role:
            if found[0] == "owner":
                _guard_last_owner(conn, org.id, user.id, role)
            conn.execute(
                update(memberships)
                .where(memberships.c.org_id == org.id, memberships.c.user_id == user.id)
                .values(role=role)
            )
            audit(conn, org.id, actor, "member.role_changed", {"user": user.email, "role": role})


def change_role(engine: Engine, org: Org, user_id: str, role: str, actor: str = "cli") -> None:
    """A member's (or a pending invitation's) new role; never the last owner's."""
    _check_role(role)
    with engine.begin() as conn:
        found = conn.execute(
            select(memberships.c.role).where(memberships.c.org_id == org.id, memberships.c.user_id == user_id)
        ).first()
        table = memberships if found else invitations
        if found and found[0] == "owner":
            _guard_last_owner(conn, org.id, user_id, role)
        n = conn.execute(
            update(table).where(table.c.org_id == org.id, table.c.user_id == user_id).values(role=role)
        ).rowcount
        if not n:
            raise TenancyError("no such member in this organization")
        audit(conn, org.id, actor, "member.role_changed", {"user_id": user_id, "role": role})


def remove_member(engine: Engine, org: Org, user_id: str, actor: str = "cli") -> None:
    """Remove a member (never the last owner) or withdraw an invitation."""
    with engine.begin() as conn:
        _guard_last_owner(conn, org.id, user_id, None)
        n = conn.execute(
            delete(memberships).where(memberships.c.org_id == org.id, memberships.c.user_id == user_id)
        ).rowcount
        n += conn.execute(
            delete(invitations).where(invitations.c.org_id == org.id, invitations.c.user_id == user_id)
        ).rowcount
        if not n:
            raise TenancyError("no such member in this organization")
        conn.execute(
            delete(web_sessions).where(web_sessions.c.user_id == user_id, web_sessions.c.org_id == org.id)
        )
        audit(conn, org.id, actor, "member.removed", {"user_id": user_id})


def member_role(engine: Engine, org_id: str, user_id: str) -> str | None:
    """The user's current role in the organization (None: not a member)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(memberships.c.role).where(memberships.c.org_id == org_id, memberships.c.user_id == user_id)
        ).first()
    return row[0] if row else None


def list_members(engine: Engine, org: Org) -> list[dict[str, Any]]:
    """Members (``status`` "active") and invitations not yet accepted ("invited"), by e-mail."""
    found = []
    for table, status in ((memberships, "active"), (invitations, "invited")):
        query = (
            select(users.c.id, users.c.email, table.c.role)
            .join(table, table.c.user_id == users.c.id)
            .where(table.c.org_id == org.id)
        )
        with engine.connect() as conn:
            found += [
                {"user_id": r[0], "email": r[1], "role": r[2], "status": status} for r in conn.execute(query)
            ]
    return sorted(found, key=lambda m: (m["email"], m["status"]))


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
    """A new browser session in ``org_id`` (default: the user's first organization): (token, csrf).
    A user an organization created joins it here, at their first sign-in."""
    with engine.begin() as conn:
        own = conn.execute(
            select(invitations.c.org_id, invitations.c.role)
            .join(users, users.c.id == invitations.c.user_id)
            .where(invitations.c.user_id == user.id, invitations.c.org_id == users.c.managed_by)
        ).first()
        if own is not None:
            _join(conn, own[0], user.id, own[1], f"user:{user.email}")
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
