"""Where km keeps its files: ``$KM_HOME`` when set, else the platform's config and data dirs.

Never relative to the current directory: clients launch servers from anywhere.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import platformdirs

APP = "kilometers"


def _home() -> Path | None:
    value = os.environ.get("KM_HOME")
    return Path(value).expanduser().resolve() if value else None


def config_dir() -> Path:
    home = _home()
    return home if home else Path(platformdirs.user_config_dir(APP, appauthor=False))


def data_dir() -> Path:
    home = _home()
    return home if home else Path(platformdirs.user_data_dir(APP, appauthor=False))


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
