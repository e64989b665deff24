"""What km knows about an MCP client: where its config files are and where in them the servers are."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JSONPath = tuple[str, ...]


def system() -> str:
    """``linux``, ``macos`` or ``windows``: which per-OS default locations apply."""
    if sys.platform == "darwin":
        return "macos"
    if sys.platform.startswith(("win", "cygwin", "msys")):
        return "windows"
    return "linux"


def home() -> Path:
    return Path.home()


def appdata() -> Path:
    """``%APPDATA%`` (Windows' roaming application data)."""
    value = os.environ.get("APPDATA")
    return Path(value) if value else home() / "AppData" / "Roaming"


def xdg_config() -> Path:
    value = os.environ.get("XDG_CONFIG_HOME")
    return Path(value) if value else home() / ".config"


def app_config_dir(app: str, os_name: str) -> Path:
    """Where an Electron app such as ``Claude`` or ``Code`` keeps its user config on ``os_name``."""
    if os_name == "macos":
        return home() / "Library" / "Application Support" / app
    if os_name == "windows":
        return appdata() / app
    return xdg_config() / app


@dataclass(frozen=True)
class Format:
    """One config file format: where the server maps are and how a remote server is spelled."""

    name: str
    maps: Callable[[Any], list[JSONPath]]
    """The JSON paths of the objects that map server names to server entries, in this document."""
    jsonc: bool = False
    """Comments and trailing commas allowed (VS Code's files); they are kept outside changed entries."""
    url_key: str = "url"
    """The key of a remote server's URL, used when an entry is rebuilt without its saved original."""
    url_type: str | None = None
    """The ``type`` of a remote server entry in this format (None: remote entries have no type)."""


def static_maps(*paths: JSONPath) -> Callable[[Any], list[JSONPath]]:
    """A ``Format.maps`` for server maps at fixed places (those present in the document)."""

    def maps(doc: Any) -> list[JSONPath]:
        found = []
        for path in paths:
            node = doc
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, dict):
                found.append(path)
        return found

    return maps


@dataclass(frozen=True)
class ConfigLocation:
    """One config file of one client (it may not exist)."""

    client: str
    label: str
    path: Path
    format: Format
    scope: str
    """``user`` (this user, all projects) or ``project`` (the current directory's project)."""

    @property
    def title(self) -> str:
        return f"{self.label} ({self.scope})"


@dataclass(frozen=True)
class Client:
    name: str
    label: str
    locate: Callable[[Path, str], list[ConfigLocation]]
    """``(cwd, os_name)`` -> the files this client may read, user files first."""
    format_for: Callable[[Path], Format]
    """The format of a file given with ``--config``, from its name."""


def locations(client: str, label: str, entries: Sequence[tuple[Path, Format, str]]) -> list[ConfigLocation]:
    return [ConfigLocation(client, label, path, fmt, scope) for path, fmt, scope in entries]
