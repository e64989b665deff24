"""Where km keeps its files: ``$KM_HOME`` when set, else the platform's config and data dirs.

Never relative to the current directory: clients launch servers from anywhere.
"""

from __future__ import annotations

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
