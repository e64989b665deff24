"""A throwaway PostgreSQL 15 cluster for the tests (real server, started and removed by the suite).

PostgreSQL refuses to run as root, so when the tests run as root the cluster belongs to the
``postgres`` user and its commands run through ``runuser``. If it cannot start, the run fails
(nothing is skipped silently).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("KM_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class Cluster:
    datadir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _as_postgres([str(PG_BIN / args[0]), *args[1:]]), check=check, capture_output=True, text=True
        )

    def start(self) -> None:
        self.run(
            "pg_ctl", "-D", str(self.datadir), "-w", "-t", "60", "-l", str(self.datadir / "server.log"),
            "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir} -c fsync=off",
            "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop", check=False)

    def create_database(self, name: str) -> str:
        host = ("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres")
        self.run("psql", *host, "-c", f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


def start_cluster() -> Cluster:
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL server binaries not found in {PG_BIN} (set KM_PG_BIN)")
    base = Path(tempfile.mkdtemp(prefix="km-pg-"))
    datadir = base / "data"
    datadir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(datadir, "postgres")
    cluster = Cluster(datadir, _free_port())
    result = cluster.run(
        "initdb", "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8", check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed: {result.stderr}")
    cluster.start()
    for _ in range(100):
        if cluster.run("pg_isready", "-h", "127.0.0.1", "-p", str(cluster.port), check=False).returncode == 0:
            return cluster
        time.sleep(0.1)
    raise RuntimeError("PostgreSQL did not become ready")


def remove_cluster(cluster: Cluster) -> None:
    cluster.stop("immediate")
    shutil.rmtree(cluster.datadir.parent, ignore_errors=True)
