"""km's record of what it wrapped: ``wrap-state.json`` in the km config dir.

For every entry ``km wrap`` changes it keeps, keyed by the config file's real path and the JSON
pointer of the entry, the entry's exact original text (the bytes of the file between its first and
last character), its parsed original and the wrapped entry km wrote. ``km unwrap`` puts the
original text back byte for byte when the entry is still what km wrote, so wrap + unwrap gives back
the identical file. The record stays out of the client's file: no client sees keys it does not know.

The file can hold secrets (servers' env blocks), so it is private to its owner (0600).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .. import paths
from .base import JSONPath

VERSION = 1


class StateError(RuntimeError):
    """The state file cannot be read or written."""


def state_file() -> Path:
    return paths.config_dir() / "wrap-state.json"


def pointer(path: JSONPath) -> str:
    """RFC 6901 JSON pointer of ``path``."""
    return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in path)


def file_key(config: Path) -> str:
    return str(config.resolve())


def load() -> dict[str, Any]:
    path = state_file()
    if not path.exists():
        return {"version": VERSION, "files": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StateError(f"cannot read km's wrap state {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise StateError(f"km's wrap state {path} is not in the expected format")
    return data


def records(data: dict[str, Any], config: Path) -> dict[str, dict[str, Any]]:
    """The saved originals of one config file, by entry pointer."""
    entry = data["files"].get(file_key(config), {})
    found = entry.get("entries", {}) if isinstance(entry, dict) else {}
    return found if isinstance(found, dict) else {}


def update(config: Path, client: str, add: dict[str, dict[str, Any]], remove: set[str]) -> None:
    """Add and drop records of one config file and save (the file is replaced atomically)."""
    data = load()
    key = file_key(config)
    current = dict(records(data, config))
    for name in remove:
        current.pop(name, None)
    current.update(add)
    if current:
        data["files"][key] = {"client": client, "entries": current}
    else:
        data["files"].pop(key, None)
    save(data)


def save(data: dict[str, Any]) -> None:
    path = state_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".wrap-state-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                os.chmod(tmp, 0o600)
                json.dump(data, file, indent=2, ensure_ascii=False)
                file.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise StateError(f"cannot write km's wrap state {path}: {exc}") from None
