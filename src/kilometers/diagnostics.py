"""The checks behind ``km doctor``: the installation, config, store, wrapped clients, servers,
team server and the deprecation radar, each as a :class:`Check` (``ok``, ``fail``, ``warn`` or
``info``, with how to fix it). The command only prints them (cli/doctor.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__, config, paths
from .clients import ConfigLocation, find_locations, storeenv, wrapped_files
from .clients.entries import EntryError, inner_server, is_wrapped, km_command, parse_monitor_args
from .clients.rewrite import ConfigFileError, parse_config, read_text, server_entries
from .clients.state import StateError

TIMEOUT = 3.0
PROBE_TIMEOUT = 30.0
"""Seconds a wrapped entry's km gets to say which store it records into (`km status --json`)."""


@dataclass
class Check:
    status: str
    text: str
    fix: str = ""


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


# -- installation ---------------------------------------------------------------------------------


def check_install() -> list[Check]:
    from .install import detect_install

    checks = []
    version = ".".join(map(str, sys.version_info[:3]))
    checks.append(Check("ok", f"km {__version__}, Python {version} ({sys.executable})"))
    try:
        this: str | None = km_command()
    except EntryError:
        this = None
    on_path = shutil.which("km")
    if on_path is None:
        where = f"{Path(this).parent}" if this else "the directory km is installed in"
        checks.append(
            Check("fail", "km is not on PATH", f"add {where} to PATH (install.sh puts km in ~/.local/bin)")
        )
    elif this and not _same(on_path, this):
        checks.append(
            Check(
                "warn",
                f"km on PATH is {on_path}, not this km ({this})",
                "remove the other installation, or put this one first on PATH",
            )
        )
    else:
        checks.append(Check("ok", f"km on PATH: {on_path}"))
    install = detect_install()
    if install.method in ("uv", "pipx", "venv"):
        checks.append(
            Check("info", f"installed with {install.method} in {install.prefix}; upgrade: km self-update")
        )
    elif install.method == "dev":
        checks.append(Check("info", f"development install in {install.prefix}; upgrade: git pull"))
    else:
        checks.append(Check("info", f"installed in {install.prefix} (not by install.sh, uv or pipx)"))
    return checks


def check_dashboard() -> Check:
    """The dashboard `km ui` and `km serve` serve: index.html and every /assets/ file it loads."""
    from .install import detect_install

    static = Path(__file__).resolve().parent / "server" / "static"
    index = static / "index.html"
    if index.is_file():
        refs = re.findall(r'(?:src|href)="/(assets/[^"]+)"', index.read_text(encoding="utf-8"))
        missing = [ref for ref in refs if not (static / ref).is_file()]
        if not any(ref.endswith(".js") for ref in refs):
            missing.append("the script index.html loads")
    else:
        missing = ["index.html"]
    if not missing:
        return Check("ok", f"dashboard assets present ({static})")
    fix = (
        "build it: `make web` (needs Node.js and npm)"
        if detect_install().method == "dev"
        else "reinstall km (`km self-update`, or pip install from a wheel or sdist): every build includes it"
    )
    return Check(
        "fail",
        f"the dashboard is not installed ({static} lacks {', '.join(missing)}): `km ui` cannot show it",
        fix,
    )


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# -- config ---------------------------------------------------------------------------------------


def check_config() -> tuple[list[Check], config.Settings]:
    path = paths.config_file()
    checks = []
    if not path.exists():
        checks.append(Check("info", f"no config file ({path}): defaults in use; `km init` writes one"))
    else:
        try:
            config.read_file(path)
            checks.append(Check("ok", f"config file {path} reads fine"))
        except config.ConfigError as exc:
            checks.append(Check("fail", str(exc), "fix the file, or replace it with `km init --force`"))
    try:
        settings = config.load()
    except config.ConfigError as exc:
        if "environment variable" in str(exc):
            checks.append(Check("fail", str(exc), "fix or unset that variable"))
        settings = config.Settings()
    return checks, settings


# -- store ----------------------------------------------------------------------------------------


def _revision_status(current: str | None) -> Check:
    from alembic.script import ScriptDirectory

    from .store import db

    head = db.head_revision()
    if current == head:
        return Check("ok", f"schema current (revision {head})")
    if current is None:
        return Check(
            "warn", "the store has no schema yet", "it is created on first use, or run `km db upgrade`"
        )
    try:
        ScriptDirectory(str(db.MIGRATIONS)).get_revision(current)
    except Exception:
        return Check(
            "fail",
            f"schema at revision {current}, which this km does not know (newer km?)",
            "upgrade km: km self-update",
        )
    return Check(
        "warn",
        f"schema at revision {current}, km needs {head}",
        "`km monitor` migrates the local store by itself; or run `km db upgrade`",
    )


def check_store(settings: config.Settings) -> list[Check]:
    from .store import db

    url = db.resolve_url(settings.db_url)
    if url.startswith("sqlite"):
        return _check_sqlite(url)
    try:
        from sqlalchemy import create_engine, text

        engine_url = (
            "postgresql+psycopg://" + url[len("postgresql://") :] if url.startswith("postgresql://") else url
        )
        engine = create_engine(engine_url, connect_args={"connect_timeout": int(TIMEOUT)})
        with engine.connect() as conn:
            size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
            writable = conn.execute(
                text("SELECT to_regclass('events') IS NULL OR has_table_privilege('events', 'INSERT')")
            ).scalar()
        current = db.current_revision(engine)
    except Exception as exc:
        return [
            Check(
                "fail", f"cannot open the store {_safe(url)}: {exc}", "check the URL and the database server"
            )
        ]
    checks = [Check("ok", f"store {_safe(url)} opens, {_size(float(size or 0))}"), _revision_status(current)]
    if not writable:
        checks.append(
            Check("fail", "no INSERT permission on the events table", "grant it to this database user")
        )
    return checks


RADAR_DAYS = 30


def check_protocol(settings: config.Settings) -> list[Check]:
    """The deprecation radar over the last RADAR_DAYS days of the store, read-only: who still
    relies on what MCP 2026-07-28 deprecates or removes (warnings, never failures)."""
    import time

    from .store import db
    from .store.radar import CURRENT_VERSION, radar

    url = db.resolve_url(settings.db_url)
    file = db.sqlite_file(url)
    if url.startswith("sqlite") and (file is None or not os.path.exists(file)):
        return [Check("info", "no sessions recorded yet")]
    try:
        engine = db.make_engine(url)
        if db.current_revision(engine) != db.head_revision():
            return [Check("info", "not checked: the store is not at the current schema revision")]
        peers = radar(engine, since_ns=time.time_ns() - RADAR_DAYS * 86400 * 10**9)
    except Exception as exc:
        return [Check("info", f"not checked: {db.error_text(exc, url)}")]
    if not peers:
        return [Check("info", f"no sessions in the last {RADAR_DAYS} days")]
    checks = []
    for peer in peers:
        versions = ", ".join(sorted(peer.versions)) or "version unknown"
        features = peer.to_dict()["features"]
        removed = [f["label"] for f in features if f["status"] == "removed"]
        deprecated = [f["label"] for f in features if f["status"] == "deprecated"]
        who = f"{peer.role} {peer.name} ({versions})"
        if not removed and not deprecated:
            checks.append(Check("ok", f"{who}: relies on nothing {CURRENT_VERSION} deprecates or removes"))
            continue
        said = "; ".join(
            part
            for part in (
                f"removed in {CURRENT_VERSION}: {', '.join(removed)}" if removed else "",
                f"deprecated: {', '.join(deprecated)}" if deprecated else "",
            )
            if part
        )
        checks.append(Check("warn", f"{who}: {said}", "`km stats --radar` shows sessions and messages"))
    return checks


def check_agent(settings: config.Settings) -> list[Check]:
    """The background recorders of this data directory (``km agent``)."""
    from .agent.link import request_all
    from .agent.wire import VERSION, agent_dir

    home = paths.data_dir()
    if not settings.agent:
        return [Check("info", "the agent is off (agent = false): each km monitor records by itself")]
    answers = request_all(home, "status", timeout=TIMEOUT)
    if not answers:
        return [
            Check("info", f"no agent runs for {home}: the next km monitor starts one ({agent_dir(home)})")
        ]
    checks = []
    for answer in answers:
        checks.append(
            Check(
                "ok",
                f"agent {answer['id']} (pid {answer['pid']}, store {answer['store']}) up "
                f"{answer['uptime_s']:g} s: {len(answer['sessions'])} sessions open, "
                f"{answer['served']} recorded since it started",
            )
        )
        if answer.get("version") != VERSION:
            checks.append(
                Check(
                    "warn",
                    f"agent {answer['id']} is km {answer.get('version')}, this is km {VERSION}: "
                    "its km monitors record by themselves",
                    "`km agent stop` (the next km monitor starts a current one)",
                )
            )
    return checks


def _safe(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@", 1)[0]:
        user = rest.split("@", 1)[0].split(":", 1)[0]
        rest = f"{user}:***@{rest.split('@', 1)[1]}"
    return f"{scheme}{sep}{rest}"


def _check_sqlite(url: str) -> list[Check]:
    from .store import db

    file = Path(url.split("///", 1)[1]) if "///" in url else None
    if file is None or str(file) == ":memory:":
        return [Check("info", f"store {url} is in memory")]
    if not file.exists():
        parent = next((p for p in [file.parent, *file.parent.parents] if p.exists()), None)
        if parent is None or not os.access(parent, os.W_OK):
            return [
                Check(
                    "fail",
                    f"store {file} does not exist and cannot be created",
                    f"make {file.parent} writable",
                )
            ]
        return [Check("ok", f"store {file} not created yet: `km monitor` creates it")]
    checks = []
    try:
        engine = db.make_engine(url)
        current = db.current_revision(engine)
        engine.dispose()
    except Exception as exc:
        return [
            Check(
                "fail",
                f"cannot open the store {file}: {exc}",
                "check the file, or move it away to start afresh",
            )
        ]
    size = sum(p.stat().st_size for p in (file, Path(f"{file}-wal"), Path(f"{file}-shm")) if p.exists())
    checks.append(Check("ok", f"store {file} opens, {_size(float(size))}"))
    checks.append(_revision_status(current))
    if not (os.access(file, os.W_OK) and os.access(file.parent, os.W_OK)):
        checks.append(
            Check("fail", f"store {file} is not writable", f"give this user write access to {file.parent}")
        )
    else:
        checks.append(Check("ok", "store writable"))
    return checks


# -- clients and servers --------------------------------------------------------------------------


def _entries(location: ConfigLocation) -> list[tuple[str, Any]] | Check:
    try:
        doc = parse_config(location, read_text(location.path))
    except ConfigFileError as exc:
        return Check("fail", str(exc), "fix the syntax error at the place it names")
    return [(member.key, member.node.value) for _path, member in server_entries(location, doc)]


def check_clients(locations: list[ConfigLocation]) -> tuple[list[Check], list[tuple[str, str, Any]]]:
    checks: list[Check] = []
    servers: list[tuple[str, str, Any]] = []
    existing = [location for location in locations if location.path.is_file()]
    if not existing:
        checks.append(
            Check("info", "no MCP client config file found", "`km wrap --config PATH` takes any file")
        )
    for location in existing:
        found = _entries(location)
        if isinstance(found, Check):
            checks.append(found)
            continue
        wrapped = [name for name, entry in found if is_wrapped(entry)]
        plain = [name for name, entry in found if not is_wrapped(entry)]
        servers.extend((location.label, name, entry) for name, entry in found)
        head = f"{location.title} {location.path}:"
        if not found:
            checks.append(Check("info", f"{head} no MCP servers"))
        elif plain:
            checks.append(
                Check(
                    "warn",
                    f"{head} {len(wrapped)} of {len(found)} servers through km; not: {', '.join(plain)}",
                    f"km wrap --config '{location.path}'",
                )
            )
        else:
            checks.append(Check("ok", f"{head} all {len(found)} servers through km"))
        for name, entry in found:
            command = entry.get("command") if is_wrapped(entry) else None
            if isinstance(command, str) and os.path.isabs(command) and not os.access(command, os.X_OK):
                checks.append(
                    Check(
                        "fail",
                        f"{location.label} server {name} runs {command}, which is not there any more",
                        f"km unwrap --config '{location.path}' && km wrap --config '{location.path}'",
                    )
                )
    return checks, servers


def _resolve(command: str, entry: dict[str, Any]) -> str | None:
    env = entry.get("env") if isinstance(entry.get("env"), dict) else {}
    search = env.get("PATH") if isinstance(env, dict) and isinstance(env.get("PATH"), str) else None
    cwd = entry.get("cwd") if isinstance(entry.get("cwd"), str) else None
    if os.sep in command or "/" in command:
        path = Path(command).expanduser()
        if not path.is_absolute() and cwd:
            path = Path(cwd) / path
        return str(path) if os.access(path, os.X_OK) and path.is_file() else None
    return shutil.which(command, path=search)


def check_servers(servers: list[tuple[str, str, Any]], offline: bool) -> list[Check]:
    checks: list[Check] = []
    if not servers:
        checks.append(Check("info", "no servers to check"))
    for label, name, entry in servers:
        who = f"{name} ({label})"
        if not isinstance(entry, dict):
            checks.append(Check("fail", f"{who}: the entry is not a JSON object", "fix the config file"))
            continue
        if entry.get("disabled") is True:
            checks.append(Check("info", f"{who}: disabled in the client; not checked"))
            continue
        try:
            server = inner_server(entry)
        except EntryError as exc:
            checks.append(Check("fail", f"{who}: {exc}", "fix its args, or `km unwrap` and `km wrap` again"))
            continue
        if server.url is not None:
            checks.append(_check_url(who, server.url, offline))
            continue
        command = server.command[0] if server.command else None
        if not isinstance(command, str) or not command:
            checks.append(Check("fail", f"{who}: no command", "give the entry a command"))
        elif "${" in command:
            checks.append(Check("info", f"{who}: command {command} uses a variable; not checked"))
        else:
            found = _resolve(command, entry)
            if found:
                checks.append(Check("ok", f"{who}: {command} found ({found})"))
            else:
                checks.append(
                    Check(
                        "fail",
                        f"{who}: command {command} not found on PATH",
                        "install it, or write its absolute path in the config (clients start servers "
                        "with a shorter PATH than your shell's)",
                    )
                )
    return checks


def _check_url(who: str, url: str, offline: bool) -> Check:
    if "${" in url:
        return Check("info", f"{who}: {url} uses a variable; not checked")
    if offline:
        return Check("info", f"{who}: {url} not checked (--offline)")
    import httpx

    try:
        response = httpx.get(url, timeout=TIMEOUT, follow_redirects=False)
    except httpx.HTTPError as exc:
        return Check(
            "fail", f"{who}: {url} unreachable ({exc or type(exc).__name__})", "check the URL and the network"
        )
    return Check("ok", f"{who}: {url} answers (HTTP {response.status_code})")


# -- where wrapped servers record -----------------------------------------------------------------


def check_recording(locations: list[ConfigLocation]) -> list[Check]:
    """Each wrapped entry's km, started the way a client starts it (only ``PATH=/usr/bin:/bin`` and
    the entry's own env), records into the store this shell reads."""
    shell = storeenv.store_url()
    checks: list[Check] = []
    probes: dict[tuple[Any, ...], str | Check] = {}
    for location in locations:
        found = _entries(location) if location.path.is_file() else []
        if isinstance(found, Check):
            continue  # reported under Clients
        good = 0
        for name, entry in found:
            if not is_wrapped(entry) or entry.get("disabled") is True:
                continue
            who = f"{name} ({location.label})"
            store = _recording_store(entry, probes)
            if store is None:
                continue
            if isinstance(store, Check):
                checks.append(Check(store.status, f"{who}: {store.text}", store.fix))
            elif storeenv.display(store) == storeenv.display(shell):
                good += 1
            else:
                checks.append(
                    Check(
                        "fail",
                        f"{who} records into {storeenv.display(store)}, but this shell reads "
                        f"{storeenv.display(shell)}",
                        f"run `km wrap --config '{location.path}'` again in this shell: it writes the "
                        "store settings (KM_HOME, KM_DB) into the entry's env",
                    )
                )
        if good:
            servers = "1 wrapped server records" if good == 1 else f"{good} wrapped servers record"
            checks.append(
                Check(
                    "ok",
                    f"{location.title}: {servers} into {storeenv.display(shell)}, the store this shell reads",
                )
            )
    return checks or [Check("info", "no wrapped servers to check")]


def _recording_store(entry: dict[str, Any], probes: dict[tuple[Any, ...], str | Check]) -> str | Check | None:
    """The store ``entry``'s km records into, by running ``km status --json`` as the client would
    run the entry; a Check when that cannot be told, None when its km is missing (see Clients)."""
    env = entry.get("env", {})
    if not isinstance(env, dict):
        return Check("fail", "its env is not an object", "make it an object, then run `km wrap` again")
    environ = {**storeenv.CLIENT_ENV, **{k: v for k, v in env.items() if isinstance(v, str)}}
    if any("${" in environ.get(var, "") for var in storeenv.STORE_VARS):
        return Check("info", "its store setting uses a variable the client expands; not checked")
    command = entry.get("command")
    found = shutil.which(command, path=environ["PATH"]) if isinstance(command, str) else None
    if found is None:
        return None
    cwd = entry.get("cwd")
    cwd = cwd if isinstance(cwd, str) and os.path.isdir(cwd) else "/"
    try:
        db = parse_monitor_args(list(entry["args"])[1:]).db
    except EntryError:
        return None  # reported under Servers
    if db is not None:
        return storeenv.absolute_url(db, Path(cwd))
    key = (found, tuple(sorted(environ.items())), cwd)
    if key not in probes:
        probes[key] = _probe(found, environ, cwd)
    return probes[key]


def _probe(km: str, environ: dict[str, str], cwd: str) -> str | Check:
    fix = "run that command with the entry's env to see why"
    try:
        proc = subprocess.run(
            [km, "status", "--json"],
            env=environ,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
        store = json.loads(proc.stdout)["store"] if proc.returncode == 0 else None
    except subprocess.TimeoutExpired:
        return Check("warn", f"`{km} status --json` did not answer in {PROBE_TIMEOUT:g} s", fix)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Check("warn", f"cannot run `{km} status --json` ({exc})", fix)
    if not isinstance(store, str):
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        return Check("warn", f"cannot tell where it records: `{km} status --json` failed: {why}", fix)
    return storeenv.absolute_url(store, Path(cwd))


# -- team server ----------------------------------------------------------------------------------


def check_team(settings: config.Settings, offline: bool) -> list[Check]:
    if not settings.api_url:
        return [Check("info", "no team server configured: events stay in the local store")]
    checks = []
    if not settings.api_key:
        checks.append(
            Check("fail", f"team server {settings.api_url} set but no API key", "km init --api-key KEY")
        )
    if offline:
        return [*checks, Check("info", f"team server {settings.api_url} not checked (--offline)")]
    import httpx

    try:
        response = httpx.get(f"{settings.api_url}/health", timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        return [
            *checks,
            Check(
                "fail",
                f"team server {settings.api_url} unreachable ({exc or type(exc).__name__})",
                "check the URL (`km init --api-url`) and that `km serve` runs there",
            ),
        ]
    if response.status_code == 200:
        version = ""
        with contextlib.suppress(ValueError):
            version = f", km {response.json().get('version')}"
        checks.append(Check("ok", f"team server {settings.api_url} is up{version}"))
    else:
        checks.append(
            Check(
                "fail",
                f"team server {settings.api_url}/health answered HTTP {response.status_code}",
                "check the URL points at `km serve`",
            )
        )
    return checks


def diagnose(offline: bool) -> list[tuple[str, list[Check]]]:
    """Every check, in sections: installation, configuration, store, clients, recording,
    servers, team server and the deprecation radar."""
    sections: list[tuple[str, list[Check]]] = [("Installation", [*check_install(), check_dashboard()])]
    config_checks, settings = check_config()
    sections.append(("Configuration", config_checks))
    sections.append(("Store", check_store(settings)))
    sections.append(("Agent", check_agent(settings)))
    locations = find_locations()
    try:
        locations += wrapped_files("all", locations)
    except StateError as exc:
        sections.append(
            ("km's wrap state", [Check("fail", str(exc), "move the file away; `km wrap` starts afresh")])
        )
    client_checks, servers = check_clients(locations)
    sections.append(("Clients", client_checks))
    sections.append(("Recording", check_recording(locations)))
    sections.append(("Servers", check_servers(servers, offline)))
    sections.append(("Team server", check_team(settings, offline)))
    sections.append((f"Protocol (last {RADAR_DAYS} days)", check_protocol(settings)))
    return sections
