"""``km replay SESSION -- CMD…``: replay a recorded session against a server and diff the answers."""

from __future__ import annotations

import click
import orjson

from .common import db_option, echo_json, fail, open_engine


def _short(value: object) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


@click.command("replay")
@click.argument("session")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--speed", type=click.FloatRange(min=0), default=0, show_default=True,
              help="0: as fast as the server answers; 1: the recorded pace; 2: twice as fast.")  # fmt: skip
@click.option("--ignore", multiple=True, help="Volatile JSON pointer pattern to ignore, e.g. '*/timestamp'.")
@click.option(
    "--timeout", type=click.FloatRange(min=0.1), default=30, show_default=True, help="Seconds per answer."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per request.")
@db_option
def replay_cmd(
    session: str,
    command: tuple[str, ...],
    speed: float,
    ignore: tuple[str, ...],
    timeout: float,
    as_json: bool,
    db_url: str | None,
) -> None:
    """Send SESSION's recorded requests to CMD (after `--`) and compare its answers with the
    recorded ones. Exits 1 when any answer differs or is missing."""
    from .. import replay
    from ..store import queries

    engine = open_engine(db_url)
    try:
        session_id = queries.resolve_session(engine, session)
    except queries.NotFound as exc:
        fail(str(exc), 2)
    events = queries.list_events(engine, queries.EventFilter(session_id=session_id), limit=1_000_000)
    if any(e.truncated for e in events if e.direction == "client_to_server"):
        fail("this session was recorded with --payload-limit: its requests cannot be replayed exactly", 2)
    differing = total = 0
    try:
        for outcome in replay.replay(events, list(command), ignore, speed, timeout):
            total += 1
            differing += not outcome.same
            if as_json:
                echo_json(outcome.to_dict())
                continue
            name = outcome.method + (f" {outcome.target}" if outcome.target else "")
            if outcome.same:
                click.echo(f"{click.style('✓', fg='green')} {name} #{outcome.jsonrpc_id}")
            elif outcome.missing:
                click.echo(
                    f"{click.style('✗', fg='red')} {name} #{outcome.jsonrpc_id}: no answer within {timeout}s"
                )
            else:
                click.echo(f"{click.style('✗', fg='red')} {name} #{outcome.jsonrpc_id}")
                for change in outcome.changes:
                    click.echo(f"    {change.path}: {_short(change.recorded)} → {_short(change.replayed)}")
    except replay.ReplayError as exc:
        fail(str(exc), 2)
    click.echo(f"{total - differing} of {total} answers match the recording", err=True)
    if differing:
        raise SystemExit(1)
