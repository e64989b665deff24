"""Team-server fixtures: every API test runs against SQLite and a real PostgreSQL 15."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from kilometers.server import tenancy
from kilometers.server.app import ServerSettings, create_app
from kilometers.store import db

from pg import Cluster, remove_cluster, start_cluster

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    cluster = start_cluster()  # fails the run (no skip) when PostgreSQL cannot start
    yield cluster
    remove_cluster(cluster)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'server.db'}"
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"km_test_{next(_counter)}")


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = db.open_store(store_url)
    yield engine
    engine.dispose()


class Api:
    """A real app on a real database, called in-process over ASGI."""

    def __init__(self, engine: Engine, url: str, settings: ServerSettings | None = None) -> None:
        self.engine = engine
        self.client = TestClient(create_app(url, settings), raise_server_exceptions=False)

    def org_with_keys(self, name: str, plan: str = "unlimited") -> tuple[tenancy.Org, str, str]:
        org = tenancy.create_org(self.engine, name, plan)
        return (
            org,
            tenancy.create_key(self.engine, org, "ingest"),
            tenancy.create_key(self.engine, org, "read"),
        )


@pytest.fixture
def api(engine: Engine, store_url: str) -> Api:
    return Api(engine, store_url)
