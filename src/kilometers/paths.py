"""Where km keeps its files: ``$KM_HOME`` when set, else the platform's config and data dirs.

Never relative to the current directory: clients launch servers from anywhere.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

APP = "kilometers"


def _home() -> Path | None:
    value = os.environ.get("KM_HOME")
    return Path(value).expanduser().resolve() if value else None


def _xdg(variable: str, default: str) -> Path | None:
    """The XDG base directory in its plainest form (``$XDG_…_HOME``, else ``$HOME/<default>``),
    or None where platformdirs must decide. Every ``km monitor`` resolves its data dir, and
    platformdirs' import (tempfile, shutil, bz2, lzma, random) costs each relay ~1 MiB of RSS;
    tests/unit/test_paths.py holds this to platformdirs' answer."""
    if sys.platform != "linux":
        return None
    value = os.environ.get(variable, "")
    if os.path.isabs(value):
        return Path(value) / APP
    home = os.environ.get("HOME", "")
    return Path(home, default, APP) if os.path.isabs(home) else None


def config_dir() -> Path:
    return _home() or _xdg("XDG_CONFIG_HOME", ".config") or _platform("user_config_dir")


def data_dir() -> Path:
    return _home() or _xdg("XDG_DATA_HOME", ".local/share") or _platform("user_data_dir")


def _platform(kind: str) -> Path:
    """platformdirs' answer (imported only where km's plain XDG case does not apply)."""
    import platformdirs

    return Path(getattr(platformdirs, kind)(APP, appauthor=False))


def config_file() -> Path:
    return config_dir() / "config.toml"


def default_db_path() -> Path:
    return data_dir() / "km.db"


def default_db_url() -> str:
    return f"sqlite:///{default_db_path()}"


def private_dir(path: Path) -> Path:
    """Make sure ``path`` exists for km's files: a directory km creates is its owner's only
    (0700), and so is km's own data or config directory when it already exists."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.resolve() in (data_dir().resolve(), config_dir().resolve()):
        with contextlib.suppress(OSError):  # not ours to change
            if path.stat().st_mode & 0o077:
                path.chmod(0o700)
    return path
