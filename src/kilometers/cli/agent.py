"""``km agent status|stop|run``: the background recorders that ``km monitor`` hands sessions to."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..agent.link import request, request_all
from ..agent.wire import log_path
from ..paths import data_dir
from .common import echo_json


@click.group("agent")
def agent_group() -> None:
    """The background recorder of this data directory (started by the first `km monitor`)."""


def _show(answer: dict[str, Any]) -> None:
    click.echo(
        f"agent {answer['id']}: pid {answer['pid']}, km {answer['version']}, up {answer['uptime_s']:g} s"
    )
    click.echo(f"  socket    {answer['socket']}")
    click.echo(f"  store     {answer['store']}")
    click.echo(f"  sessions  {len(answer['sessions'])} open, {answer['served']} since it started")
    for s in answer["sessions"]:
        click.echo(f"            {s['name'] or '?'} (server pid {s['pid']}, session {s['id']})")
    port = answer.get("metrics_port")
    click.echo(f"  metrics   {f'http://127.0.0.1:{port}/metrics' if port else 'off (metrics_port)'}")
    click.echo(f"  exits     after {answer['idle_s']:g} s without a session")


@agent_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="A JSON list, one object per agent.")
def status_cmd(as_json: bool) -> None:
    """The agents of this data directory (one per set of store, upload, policy, export and metrics
    settings): pid, version, socket, open sessions, uptime. Exit status 1 when none runs."""
    home = data_dir()
    answers = request_all(home, "status")
    if as_json:
        echo_json(answers)
    elif not answers:
        click.echo(f"no agent runs for {home} (the next `km monitor` starts one)")
    else:
        for answer in answers:
            _show(answer)
        click.echo(f"log: {log_path(home)}")
    sys.exit(0 if answers else 1)


@agent_group.command("stop")
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to wait for each to store what it holds and exit.")  # fmt: skip
def stop_cmd(timeout: float) -> None:
    """Stop the agents once they have stored what they hold (running sessions go on recording by
    themselves)."""
    home = data_dir()
    answers = request_all(home, "status")
    if not answers:
        click.echo("no agent runs")
        return
    deadline = time.monotonic() + timeout
    for answer in answers:
        request(Path(answer["socket"]), "stop")
    for answer in answers:
        _wait_gone(int(answer["pid"]), deadline)
        click.echo(f"agent {answer['id']} (pid {answer['pid']}) stopped")


def _wait_gone(pid: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)


@agent_group.command("run")
def run_cmd() -> None:
    """Be the agent for this data directory and settings in the foreground (it exits after
    `agent_idle` seconds without a session)."""
    from ..agent.daemon import LOST_RACE, run

    code = run()
    if code == LOST_RACE:
        click.echo("an agent with these settings runs already for this data directory", err=True)
        code = 1
    sys.exit(code)
