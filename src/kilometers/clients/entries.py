"""One server entry: is it wrapped, wrap it, and take km out of it again.

A wrapped stdio entry runs ``km monitor --name NAME -- CMD ARGS...``; a wrapped remote entry runs
``km monitor --name NAME --url URL --header 'K: V'...`` (km bridges stdio to the remote server).
Every other key of the entry (env, cwd, disabled, ...) stays as it was.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import Format

KM_NAMES = {"km", "km.exe"}
URL_KEYS = ("url", "serverUrl")
REMOTE_TYPES = {"http", "sse", "streamable-http", "streamableHttp", "streamable_http"}
_VALUE_OPTIONS = {
    "--name",
    "--db",
    "--include-method",
    "--exclude-method",
    "--payload-limit",
    "--grace-period",
    "--transport",
}
_FLAGS = {"--server", "--exclude-ping", "--include-ping"}


class EntryError(ValueError):
    """This entry cannot be wrapped or unwrapped; the message says why."""


def km_command() -> str:
    """The absolute path of this km, as clients (which start servers with a small PATH) need it."""
    exe = "km.exe" if sys.platform.startswith("win") else "km"
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name.lower() in KM_NAMES and argv0.exists():
        return os.path.abspath(argv0)  # keeps a ~/.local/bin/km symlink stable across reinstalls
    scripts = Path(sys.executable).parent
    for candidate in (scripts / exe, scripts / "Scripts" / exe):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("km")
    if found:
        return os.path.abspath(found)
    raise EntryError("cannot find the km executable; pass its path with --km")


def _basename(command: str) -> str:
    return command.replace("\\", "/").rsplit("/", 1)[-1].lower()


def is_wrapped(entry: Any) -> bool:
    """Whether this entry already runs through ``km monitor``."""
    if not isinstance(entry, dict):
        return False
    command, args = entry.get("command"), entry.get("args")
    return (
        isinstance(command, str)
        and _basename(command) in KM_NAMES
        and isinstance(args, list)
        and args[:1] == ["monitor"]
    )


def entry_url(entry: dict[str, Any]) -> str | None:
    for key in URL_KEYS:
        value = entry.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def is_remote(entry: dict[str, Any]) -> bool:
    command = entry.get("command")
    if entry_url(entry) is None:
        return False
    return entry.get("type") in REMOTE_TYPES or not (isinstance(command, str) and command)


def wrap_entry(name: str, entry: Any, km: str) -> dict[str, Any]:
    """The entry that runs ``entry`` through km; raises EntryError when it cannot be wrapped."""
    if not isinstance(entry, dict):
        raise EntryError("the entry is not a JSON object")
    out: dict[str, Any] = {}
    if is_remote(entry):
        url = entry_url(entry)
        headers = entry.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise EntryError("its headers are not an object of strings")
        args = ["monitor", "--name", name, "--url", url]
        for key, value in headers.items():
            args += ["--header", f"{key}: {value}"]
        for key, value in entry.items():
            if key == "type":
                out["type"] = "stdio"
            elif key in URL_KEYS:
                if "command" not in out:
                    out["command"], out["args"] = km, args
            elif key != "headers":
                out[key] = value
        return out
    command = entry.get("command")
    if not isinstance(command, str) or not command:
        raise EntryError("it has neither a command nor a url")
    original_args = entry.get("args", [])
    if not isinstance(original_args, list):
        raise EntryError("its args is not a list")
    args = ["monitor", "--name", name, "--", command, *original_args]
    for key, value in entry.items():
        if key == "command":
            out["command"] = km
            if "args" not in entry:
                out["args"] = args
        elif key == "args":
            out["args"] = args
        else:
            out[key] = value
    return out


@dataclass
class MonitorArgs:
    """What a ``km monitor`` command line runs: a stdio command, or a remote URL with headers."""

    command: list[Any] = field(default_factory=list)
    url: str | None = None
    headers: list[str] = field(default_factory=list)
    db: str | None = None
    """The store given with ``--db``, if any."""


def parse_monitor_args(args: list[Any]) -> MonitorArgs:
    """Read ``km monitor``'s arguments (after ``monitor``) back into the server they run."""
    result = MonitorArgs()
    i = 0
    while i < len(args):
        arg = args[i]
        if not isinstance(arg, str):
            raise EntryError(f"unexpected argument {arg!r} in its km monitor command")
        if arg == "--":
            result.command = args[i + 1 :]
            break
        option, eq, value = arg.partition("=")
        if option in ("--url", "--header") or option in _VALUE_OPTIONS:
            if not eq:
                if i + 1 >= len(args) or not isinstance(args[i + 1], str):
                    raise EntryError(f"{option} has no value in its km monitor command")
                value = args[i + 1]
                i += 1
            if option == "--url":
                result.url = value
            elif option == "--header":
                result.headers.append(value)
            elif option == "--db":
                result.db = value
        elif arg in _FLAGS:
            pass
        elif not arg.startswith("-"):
            result.command = args[i:]
            break
        else:
            raise EntryError(f"unknown km monitor option {arg!r} in its command")
        i += 1
    if result.url is None and not result.command:
        raise EntryError("its km monitor command runs no server")
    return result


def _headers(lines: list[str]) -> dict[str, str]:
    headers = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if not sep:
            raise EntryError(f"header {line!r} is not 'Name: value'")
        headers[key.strip()] = value[1:] if value.startswith(" ") else value
    return headers


def unwrap_entry(
    entry: dict[str, Any], fmt: Format, original: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The entry with km taken out, from its km command line; keys km did not touch stay.

    ``original`` (the entry as it was before km wrapped it, when known) gives back details the
    command line does not hold: which URL key and type a remote entry used, whether ``args`` was
    there, and the key order.
    """
    parsed = parse_monitor_args(list(entry.get("args", []))[1:])
    out: dict[str, Any] = {}
    if parsed.url is not None:
        url_key = fmt.url_key
        url_type = fmt.url_type
        if original is not None:
            url_key = next((k for k in original if k in ("url", "serverUrl")), url_key)
            url_type = original.get("type") if "type" in original else None
        headers = _headers(parsed.headers)
        for key, value in entry.items():
            if key == "type":
                if url_type is not None:
                    out["type"] = url_type
            elif key == "command":
                if url_type is not None and "type" not in entry:
                    out["type"] = url_type
                out[url_key] = parsed.url
                if headers or (original is not None and "headers" in original):
                    out["headers"] = headers
            elif key != "args":
                out[key] = value
    else:
        command = parsed.command
        if not command or not isinstance(command[0], str):
            raise EntryError("its km monitor command runs no server")
        keep_args = len(command) > 1 or (original is not None and "args" in original)
        for key, value in entry.items():
            if key == "command":
                out["command"] = command[0]
                if "args" not in entry and keep_args:
                    out["args"] = command[1:]
            elif key == "args":
                if keep_args:
                    out["args"] = command[1:]
            else:
                out[key] = value
    if original is not None:
        ordered = {key: out[key] for key in original if key in out}
        ordered.update((key, value) for key, value in out.items() if key not in ordered)
        out = ordered
    return out


def inner_server(entry: dict[str, Any]) -> MonitorArgs:
    """The server an entry runs (through km or not): its command, or its URL."""
    if is_wrapped(entry):
        return parse_monitor_args(list(entry["args"])[1:])
    if is_remote(entry):
        headers = entry.get("headers")
        lines = [f"{k}: {v}" for k, v in headers.items()] if isinstance(headers, dict) else []
        return MonitorArgs(url=entry_url(entry), headers=lines)
    command = entry.get("command")
    args = entry.get("args", [])
    return MonitorArgs(command=[command, *(args if isinstance(args, list) else [])] if command else [])
