"""Several `km serve` processes on one database (issue "Past one machine"): the PostgreSQL
fixtures of tests/server, shared."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS / "server"))  # factory


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_server = _load("km_server_fixtures", TESTS / "server" / "conftest.py")
pg_cluster = _server.pg_cluster
