"""Shared fixtures for the integration tests: real `km` processes, a throwaway store.

Every test that runs km must use the ``km_home`` fixture: it points ``$KM_HOME`` at a fresh
temporary directory so nothing touches the developer's real store. Helpers live in
``km_helpers.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from km_helpers import KmProcess, stop_agents


@pytest.fixture(autouse=True)
def km_messages() -> None:
    """Library messages go to stderr as under the CLI (``kilometers.log``), each test afresh."""
    from kilometers.log import setup

    setup()


@pytest.fixture
def km_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``$KM_HOME`` (store + config) for this test; other ``KM_*`` settings are cleared.
    The agent a ``km monitor`` of the test started for it is stopped when the test ends."""
    home = tmp_path / "km_home"
    home.mkdir()
    for key in list(os.environ):
        if key.startswith("KM_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("KM_HOME", str(home))
    yield home
    if (home / "agent").exists():
        stop_agents(tmp_path)


@pytest.fixture(scope="session", autouse=True)
def no_agent_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Agents started under any test's directory (a KM_HOME of its own) end with the run."""
    yield
    stop_agents(tmp_path_factory.getbasetemp())


@pytest.fixture
def run_km(km_home: Path) -> Iterator[Callable[..., KmProcess]]:
    """Factory: ``run_km(command, km_args=(), env=None, cwd=None)`` starts ``km monitor -- command``."""
    started: list[KmProcess] = []

    def start(
        command: Sequence[str],
        km_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        keep_stdout: bool = True,
    ) -> KmProcess:
        km = KmProcess(km_home, command, km_args, env=env, cwd=cwd, keep_stdout=keep_stdout)
        started.append(km)
        return km

    yield start
    for km in started:
        km.cleanup()


@pytest.fixture
def patient_sdk_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the `mcp` SDK's stdio client wait longer for a server to exit after closing its stdin.

    The SDK sends SIGTERM after 2 s; on a loaded machine a server (and km behind it) can take
    longer to wind down, and the session would then record -15 (ended by SIGTERM) instead of
    the server's own exit code. This changes only the client's patience, not what km or the server do."""
    import mcp.client.stdio

    monkeypatch.setattr(mcp.client.stdio, "PROCESS_TERMINATION_TIMEOUT", 30.0)
