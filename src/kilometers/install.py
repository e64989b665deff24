"""How this km was installed (install.sh's marker, uv, pipx, an editable checkout): what
``km self-update`` upgrades and ``km doctor`` reports."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "kilometers"
MARKER = "km-install.json"
"""Written by install.sh into the environment it installed km in: ``{"method", "source"}``."""


@dataclass(frozen=True)
class Install:
    method: str
    """``uv``, ``pipx``, ``venv`` (install.sh's own venv), ``dev`` (an editable checkout) or ``unknown``."""
    source: str
    """What to install from: the PyPI package name (or a requirement) or a local path."""
    prefix: Path


def _data_home() -> Path:
    value = os.environ.get("XDG_DATA_HOME")
    return Path(value) if value else Path.home() / ".local" / "share"


def _editable() -> bool:
    from importlib import metadata

    try:
        text = metadata.distribution(PACKAGE).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return False
    try:
        return bool(text and json.loads(text).get("dir_info", {}).get("editable"))
    except ValueError:
        return False


def detect_install(prefix: Path | None = None) -> Install:
    """How this km was installed, from the marker install.sh leaves or from where it lives."""
    prefix = Path(sys.prefix) if prefix is None else prefix
    source = os.environ.get("KM_INSTALL_SOURCE") or ""
    marker = prefix / MARKER
    if marker.is_file():
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if isinstance(data, dict) and data.get("method") in ("uv", "pipx", "venv"):
            return Install(str(data["method"]), source or str(data.get("source") or PACKAGE), prefix)
    parts = prefix.as_posix().lower()
    if "/uv/tools/" in parts:
        method = "uv"
    elif "/pipx/venvs/" in parts or "/pipx/" in parts:
        method = "pipx"
    elif prefix == _data_home() / "kilometers" / "venv":
        method = "venv"
    elif _editable():
        method = "dev"
    else:
        method = "unknown"
    return Install(method, source or PACKAGE, prefix)
