"""``km agent status|stop|run``: the per-user recorder that ``km monitor`` hands sessions to."""

from __future__ import annotations

import sys
import time

import click

from ..agent.link import request
from ..agent.wire import log_path, socket_path
from ..paths import data_dir
from .common import echo_json


@click.group("agent")
def agent_group() -> None:
    """The background recorder of this data directory (started by the first `km monitor`)."""


@agent_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def status_cmd(as_json: bool) -> None:
    """Whether the agent runs: pid, version, socket, open sessions, uptime. Exit status 1 when not."""
    home = data_dir()
    answer = request(home, "status")
    if as_json:
        echo_json(answer or {"running": False, "socket": str(socket_path(home))})
    elif answer is None:
        click.echo(f"no agent runs for {home} (the next `km monitor` starts one)")
    else:
        click.echo(f"agent pid {answer['pid']}, km {answer['version']}, up {answer['uptime_s']:g} s")
        click.echo(f"  socket    {answer['socket']}")
        click.echo(f"  log       {log_path(home)}")
        click.echo(f"  sessions  {len(answer['sessions'])} open, {answer['served']} since it started")
        for s in answer["sessions"]:
            click.echo(f"            {s['name'] or '?'} (server pid {s['pid']}, session {s['id']})")
        if answer.get("refused"):
            click.echo(
                f"  refused   {answer['refused']} (other settings or km version: recorded by km itself)"
            )
        port = answer.get("metrics_port")
        click.echo(f"  metrics   {f'http://127.0.0.1:{port}/metrics' if port else 'off (metrics_port)'}")
        click.echo(f"  exits     after {answer['idle_s']:g} s without a session")
    sys.exit(0 if answer is not None else 1)


@agent_group.command("stop")
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to wait for it to store what it holds and exit.")  # fmt: skip
def stop_cmd(timeout: float) -> None:
    """Stop the agent once it has stored what it holds (running sessions go on recording by themselves)."""
    home = data_dir()
    answer = request(home, "stop")
    if answer is None:
        click.echo("no agent runs")
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and request(home, "status", timeout=1.0) is not None:
        time.sleep(0.05)
    _wait_gone(int(answer["pid"]), deadline)
    click.echo(f"agent {answer['pid']} stopped")


def _wait_gone(pid: int, deadline: float) -> None:
    import os

    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        time.sleep(0.05)


@agent_group.command("run")
def run_cmd() -> None:
    """Be the agent in the foreground (it exits after `agent_idle` seconds without a session)."""
    from ..agent.daemon import run

    code = run()
    if code == 0 and request(data_dir(), "status", timeout=1.0) is not None:
        click.echo("another agent runs for this data directory", err=True)
        code = 1
    sys.exit(code)
