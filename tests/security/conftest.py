"""Fixtures for the red-team regression suite: the team-server fixtures (SQLite and a real
PostgreSQL 15) and the ``km proxy`` fixtures, shared with ``tests/server`` and ``tests/http``.

Each test in this folder reproduces one defect a red-team pass found (issue "Close the holes
a red team found") and must fail on the code before its fix.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS / "http"))  # http_helpers


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_server = _load("km_server_fixtures", TESTS / "server" / "conftest.py")
_http = _load("km_http_fixtures", TESTS / "http" / "conftest.py")

Api = _server.Api
pg_cluster = _server.pg_cluster
store_url = _server.store_url
engine = _server.engine
api = _server.api
km_proxy = _http.km_proxy
everything_http = _http.everything_http
