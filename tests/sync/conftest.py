"""Fixtures for the forwarding tests: a fresh ``$KM_HOME`` per test (``km_home``, from the root
conftest) and a real team server (``km serve`` as a subprocess) on a throwaway database."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sync_helpers import TeamServer

from pg import Cluster, remove_cluster, start_cluster

_databases = itertools.count()


@pytest.fixture(scope="session")
def sync_pg_cluster() -> Iterator[Cluster]:
    cluster = start_cluster()  # fails the run (no skip) when PostgreSQL cannot start
    yield cluster
    remove_cluster(cluster)


@pytest.fixture(scope="session")
def server_template(tmp_path_factory: pytest.TempPathFactory) -> TeamServer:
    """A migrated SQLite server database with the organization and keys, copied by each test."""
    return TeamServer(tmp_path_factory.mktemp("server_template"))


@pytest.fixture
def team_server(tmp_path: Path, server_template: TeamServer) -> Iterator[Callable[..., TeamServer]]:
    """Factory: ``team_server(db_url=None, serve_args=(), start=True)``; every server is killed at the end."""
    made: list[TeamServer] = []

    def make(
        db_url: str | None = None, serve_args: tuple[str, ...] = ("--rate", "0"), start: bool = True
    ) -> TeamServer:
        workdir = tmp_path / f"server{len(made)}"
        workdir.mkdir()
        server = TeamServer(workdir, db_url, serve_args, template=server_template)
        made.append(server)
        return server.start() if start else server

    yield make
    for server in made:
        server.kill()


@pytest.fixture(params=["sqlite", "postgresql"])
def server_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """The team server's database: a SQLite file, or a database on a real PostgreSQL 15."""
    if request.param == "sqlite":
        return None
    cluster: Cluster = request.getfixturevalue("sync_pg_cluster")
    return cluster.create_database(f"km_sync_{next(_databases)}")
