"""Which store a wrapped server records into, and the ``env`` settings that make it the shell's.

Clients start servers with an environment of their own, often little more than ``PATH``: a
``KM_HOME`` or ``KM_DB`` set in the user's shell never reaches the ``km monitor`` a client starts,
which then records into the default store while ``km sessions`` in the shell reads another.
``km wrap`` therefore writes the settings that choose the store into each wrapped entry's ``env``,
and checks, with the code km itself uses (``config`` and ``paths``), that km started with only
``CLIENT_ENV`` and the entry's ``env`` records where the shell reads; ``km doctor`` checks it again
by running the entry's km the way a client would.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .entries import EntryError, is_wrapped, parse_monitor_args

STORE_VARS = ("KM_HOME", "KM_DB", "KM_DATABASE_URL")
"""The environment variables that choose km's store (and, ``KM_HOME``, its config file)."""
CLIENT_ENV = {"PATH": "/usr/bin:/bin"}
"""What a client gives a server besides the entry's ``env``, at the least: km counts on nothing more."""


class StoreEnvError(RuntimeError):
    """No ``env`` km can write makes a client's km record where this shell reads."""


def absolute_url(url: str, cwd: Path | None = None) -> str:
    """``url`` with a relative SQLite file made absolute (against ``cwd``, default the current
    directory): clients start servers in a directory of their choosing."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return url
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return url
    if database.startswith("file:") or Path(database).is_absolute():
        return url
    return parsed.set(database=str((cwd or Path.cwd()) / database)).render_as_string(hide_password=False)


def display(url: str) -> str:
    """A store's URL as km prints it (never with a password)."""
    from ..store import db

    return db.display_url(url)


def shell_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The store settings set in ``environ`` (default: this process's), made independent of the
    current directory the way km reads them."""
    environ = os.environ if environ is None else environ
    found = {}
    for var in STORE_VARS:
        value = environ.get(var)
        if value:
            found[var] = str(Path(value).expanduser().resolve()) if var == "KM_HOME" else absolute_url(value)
    return found


@contextlib.contextmanager
def _environment(environ: Mapping[str, str]) -> Iterator[None]:
    saved = os.environ.copy()
    os.environ.clear()
    os.environ.update(environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def store_url(environ: Mapping[str, str] | None = None) -> str:
    """The store ``km monitor`` records into when it runs with exactly ``environ`` (default: this
    process's environment): config file and ``KM_*`` variables as ``config.load_lenient`` reads
    them, then the default in ``paths``."""
    from .. import config
    from ..store import db

    def resolve() -> str:
        settings, _problem = config.load_lenient({})
        return absolute_url(db.resolve_url(settings.db_url))

    if environ is None:
        return resolve()
    with _environment(environ):
        return resolve()


def _has_password(url: str) -> bool:
    from sqlalchemy.engine import make_url

    try:
        return bool(make_url(url).password)
    except Exception:
        return False


@dataclass
class Target:
    """The store this shell reads, and the ``env`` settings that make a client's km record there."""

    store: str
    settings: dict[str, str]
    _stores: dict[tuple[tuple[str, str], ...], str] = field(default_factory=dict, repr=False)

    @classmethod
    def of_shell(cls) -> Target:
        """This shell's store and settings; raises StoreEnvError when the settings cannot choose
        that store for a client's km (the shell chooses it by other variables, e.g. XDG_DATA_HOME)."""
        target = cls(store_url(), shell_settings())
        theirs = target.client_store(target.settings)
        if display(theirs) != display(target.store):
            raise StoreEnvError(
                f"a client would start km with its own environment, in which km records into "
                f"{display(theirs)}, while this shell reads {display(target.store)}; km wrap can carry "
                f"only {', '.join(STORE_VARS)} into the entries: set KM_DB='{display(target.store)}' "
                "(or KM_HOME) in this shell and run km wrap again"
            )
        return target

    def client_store(self, env: Mapping[str, Any]) -> str:
        """The store of a km started by a client with the entry environment ``env``."""
        environ = {**CLIENT_ENV, **{k: v for k, v in env.items() if isinstance(v, str)}}
        key = tuple(sorted(environ.items()))
        if key not in self._stores:
            self._stores[key] = store_url(environ)
        return self._stores[key]

    def env_changes(self, entry: dict[str, Any], shared: bool = False) -> dict[str, str]:
        """The ``env`` values ``entry`` needs (added or changed) to record into this shell's store;
        raises EntryError when none will do."""
        db = None
        if is_wrapped(entry):
            with contextlib.suppress(EntryError):  # km monitor options km wrap does not know
                db = parse_monitor_args(list(entry["args"])[1:]).db
        if db is not None and display(absolute_url(db)) != display(self.store):
            raise EntryError(
                f"its km monitor command records into {display(db)} (--db), not into "
                f"{display(self.store)}, which this shell reads: take --db out of it and run km wrap again"
            )
        env = entry.get("env", {})
        if not isinstance(env, dict):
            raise EntryError(
                "its env is not an object, so km cannot add the settings that choose its store "
                f"({', '.join(self.settings)}); make env an object and run km wrap again"
            )
        changes = {var: value for var, value in self.settings.items() if env.get(var) != value}
        secret = [var for var, value in changes.items() if var != "KM_HOME" and _has_password(value)]
        if shared and secret:
            raise EntryError(
                f"{secret[0]} holds a database password, and this project file is often shared: put "
                f"the store's URL in km's config file instead (`km init --db URL`), unset {secret[0]} "
                "and run km wrap again"
            )
        theirs = self.client_store({**env, **changes})
        if display(theirs) != display(self.store):
            own = [var for var in STORE_VARS if var in env and var not in self.settings]
            because = f"its env sets {', '.join(own)}" if own else "its env chooses another store"
            raise EntryError(
                f"it would record into {display(theirs)}, not into {display(self.store)}, which this "
                f"shell reads ({because}): remove that from the entry, or set it in this shell, and "
                "run km wrap again"
            )
        return changes


def with_env(entry: dict[str, Any], changes: dict[str, str]) -> dict[str, Any]:
    """``entry`` with ``changes`` in its ``env`` (added at the end when it has none)."""
    if not changes:
        return entry
    env = entry.get("env")
    return {**entry, "env": {**(env if isinstance(env, dict) else {}), **changes}}


def restore_env(entry: dict[str, Any], original: dict[str, Any] | None) -> dict[str, Any]:
    """``entry`` without the store settings km wrap put in its ``env``: each is as in ``original``
    (the entry before km wrapped it), or gone; an ``env`` km added is gone when nothing else is in it.
    With no original, every store setting goes: they are km's, and km is out of the entry."""
    env = entry.get("env")
    if not isinstance(env, dict) or not any(var in env for var in STORE_VARS):
        return entry
    before = original.get("env") if original is not None else None
    before = before if isinstance(before, dict) else {}
    restored = {k: v for k, v in env.items() if k not in STORE_VARS or k in before}
    restored.update((var, before[var]) for var in STORE_VARS if var in before and var in env)
    out = dict(entry)
    if restored or (original is not None and "env" in original):
        out["env"] = restored
    else:
        del out["env"]
    return out
