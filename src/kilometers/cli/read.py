"""Reading the store: ``km sessions``, ``km events``, ``km show``, ``km tail`` and ``km stats``."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

from ..jsonrpc import CANCELLED, PROGRESS
from ..model import ERROR_NAMES, Event, Session
from .common import db_option, echo_json, fail, open_engine, since_to_ns

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ..store.queries import Call, EventFilter

F = TypeVar("F", bound=Callable[..., Any])
risk_option = click.option(
    "--risk",
    type=click.Choice(["low", "medium", "high", "critical"]),
    help="Only events at or above this risk level (as stored: decided by the policy's scale).",
)
ARROWS = {"client_to_server": "→", "server_to_client": "←"}
KIND_COLOURS = {
    "request": "cyan",
    "notification": "blue",
    "response": "green",
    "error": "red",
    "invalid": "yellow",
}


def _local_time(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).astimezone().strftime("%H:%M:%S.%f")[:-3]


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n = n / 1024  # type: ignore[assignment]
    return f"{n}B"


def _params(e: Event) -> dict[str, Any]:
    """The stored message's ``params`` (``result`` for a response), {} when absent or cut."""
    try:
        value = orjson.loads(e.payload) if e.payload is not None else None
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(value, dict):
        return {}
    inner = value.get("result" if e.kind == "response" else "params")
    return inner if isinstance(inner, dict) else {}


def questions(e: Event) -> list[str]:
    """What an ``input_required`` result asks the client: ``elicitation/create: Which city?``,
    ``sampling/createMessage``, ``roots/list``, one per input request."""
    if e.kind != "response" or e.payload is None or "inputRequests" not in e.payload:
        return []
    asked = _params(e).get("inputRequests")
    found = []
    for request in asked.values() if isinstance(asked, dict) else ():
        if not isinstance(request, dict):
            continue
        method = str(request.get("method") or "?")
        params = request.get("params")
        message = params.get("message") if isinstance(params, dict) else None
        found.append(f"{method}: {message}" if isinstance(message, str) else method)
    return found


def progress(e: Event) -> str | None:
    """A progress notification's values: ``2/5 "message"`` (``2`` without a total)."""
    if e.method != PROGRESS:
        return None
    params = _params(e)
    done, total, message = params.get("progress"), params.get("total"), params.get("message")
    if not isinstance(done, int | float) or isinstance(done, bool):
        return None
    text = (
        f"{done:g}/{total:g}"
        if isinstance(total, int | float) and not isinstance(total, bool)
        else f"{done:g}"
    )
    return f"{text} {orjson.dumps(message).decode()}" if isinstance(message, str) else text


def _event_json(e: Event) -> dict[str, Any]:
    """An event as ``--json`` shows it: its record, and a list result's cache hints (``cache``)."""
    data = e.to_dict()
    cache = e.list_cache()
    if cache is not None:
        data["cache"] = cache
    return data


def _links(e: Event, cancelled: bool) -> list[str]:
    """What an event's line says of its links: round, total latency, questions, progress, state."""
    parts = []
    if e.round is not None:
        parts.append(click.style(f"round {e.round}", fg="magenta"))
    if e.call_latency_ms is not None:
        parts.append(click.style(f"call {e.call_latency_ms:.1f}ms", fg="magenta"))
    parts += [click.style(f"asks {q}", fg="magenta") for q in questions(e)]
    cache = e.list_cache()
    if cache is not None:
        ttl = f"ttl {cache['ttl_ms']:g}ms" if cache["ttl_ms"] is not None else "ttl ?"
        parts.append(click.style(f"cache {ttl} {cache['scope'] or '?'}", fg="cyan"))
    values = progress(e)
    if values is not None:
        parts.append(click.style(f"progress {values}", fg="blue"))
    if cancelled:
        parts.append(click.style("cancelled", fg="red", bold=True))
    if e.call_id is not None:
        verb = "cancels" if e.method == CANCELLED else "of"
        parts.append(click.style(f"{verb} {e.call_id}", dim=True))
    return parts


def event_line(e: Event, cancelled: bool = False) -> str:
    """One coloured line per message: time, arrow, kind, method/tool, latency, size, its links
    (``cancelled``: the request was cancelled)."""
    name = e.method or "-"
    if e.tool:
        name += f" {e.tool}"
    elif e.prompt_name:
        name += f" {e.prompt_name}"
    elif e.resource_uri:
        name += f" {e.resource_uri}"
    parts = [
        click.style(_local_time(e.ts_ns), dim=True),
        ARROWS[e.direction],
        click.style(f"{e.kind:<12}", fg=KIND_COLOURS.get(e.kind)),
        click.style(name, bold=True),
    ]
    if e.jsonrpc_id is not None:
        parts.append(click.style(f"#{e.jsonrpc_id}", dim=True))
    if e.latency_ms is not None:
        parts.append(f"{e.latency_ms:.1f}ms")
    parts.append(_size(e.size_bytes))
    if e.error_message or e.is_error:
        named = ERROR_NAMES.get(e.error_code) if e.error_code is not None else None
        text = e.error_message or "isError"
        parts.append(click.style(f"{named}: {text}" if named else text, fg="red"))
    parts += _links(e, cancelled)
    if e.risk:
        colour = {"critical": "red", "high": "red", "medium": "yellow"}.get(e.risk["level"], "white")
        parts.append(click.style(f"risk:{e.risk['level']}", fg=colour, bold=True))
    parts.append(click.style(e.id, dim=True))
    return " ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


STOP_SIGNALS = {"SIGTERM", "SIGINT", "SIGHUP"}
"""Signals that ask a server to stop (a client's normal close): its session ended, it did not fail."""


def _ending(exit_code: int | None) -> str:
    """`` exit N``, `` ended by SIGTERM`` for a stop request, `` killed by SIGKILL`` in red."""
    if exit_code is None:
        return ""
    if exit_code >= 0:
        return f" exit {exit_code}"
    try:
        name = signal.Signals(-exit_code).name
    except ValueError:
        name = f"signal {-exit_code}"
    if name in STOP_SIGNALS:
        return f" ended by {name}"
    return click.style(f" killed by {name}", fg="red")


def _session_line(s: Session) -> str:
    duration = f"{(s.ended_ns - s.started_ns) / 1e9:.1f}s" if s.ended_ns else "running"
    reported = (s.server or {}).get("name")
    server = s.name or reported or "-"
    if reported and reported != server:
        server += f" ({reported})"
    client = (s.client or {}).get("name") or "-"
    errors = click.style(_plural(s.error_count, "error"), fg="red") if s.error_count else "0 errors"
    dropped = click.style(f" {s.dropped_events} dropped", fg="yellow") if s.dropped_events else ""
    exit_code = _ending(s.exit_code)
    started = datetime.fromtimestamp(s.started_ns / 1e9, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{click.style(s.id, dim=True)}  {started}  {duration:>8}  "
        f"{client} → {click.style(server, bold=True)}  "
        f"{_plural(s.event_count, 'event')}  {errors}{dropped}{exit_code}"
    )


def _empty_hint(what: str) -> None:
    click.echo(f"no {what} (record some with `km monitor -- CMD`, or widen the filters)", err=True)


SERVER_HELP = "Only sessions of the servers with this name (a glob: `*`, `?`), km's or their own."
server_option = click.option("--server", metavar="NAME", help=SERVER_HELP)


@click.command("sessions")
@server_option
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@db_option
def sessions_cmd(server: str | None, limit: int, as_json: bool, db_url: str | None) -> None:
    """List recorded sessions, newest first."""
    from ..store import queries

    engine = open_engine(db_url)
    found = queries.list_sessions(engine, limit, server=server)
    if not found and server:
        fail(str(queries.no_server(server)))
    if not found and not as_json:
        _empty_hint("sessions recorded yet")
    risk = queries.session_risk(engine, [s.id for s in found])
    for s in found:
        if as_json:
            echo_json({**s.to_dict(), "risk": risk[s.id]})
        else:
            line = _session_line(s)
            r = risk[s.id]
            if r["events_with_findings"]:
                colour = "red" if r["level"] in ("high", "critical") else "yellow"
                line += "  " + click.style(
                    f"risk:{r['level']} ({r['events_with_findings']})", fg=colour, bold=True
                )
            click.echo(line)


def _filter(
    engine: Engine,
    session: str | None,
    method: str | None,
    tool: str | None,
    errors: bool,
    since: str | None,
    kind: tuple[str, ...] = (),
    risk: str | None = None,
    server: str | None = None,
    wait: bool = False,
) -> EventFilter:
    """The filter of the options; ``wait``: a ``--server`` without sessions yet is no error."""
    from ..store import queries

    session_id = session_ids = None
    try:
        if session:
            session_id = queries.resolve_session(engine, session)
        if server:
            session_ids = queries.server_sessions(engine, server)
            if not session_ids and not wait:
                raise queries.no_server(server)
    except queries.NotFound as exc:
        fail(str(exc))
    return queries.EventFilter(
        session_id=session_id,
        session_ids=session_ids,
        method=method,
        tool=tool,
        kinds=list(kind),
        errors_only=errors,
        since_ns=since_to_ns(since, "--since") if since else None,
        min_level=risk,
    )


session_option = click.option(
    "--session",
    help="Session id, its first or last characters, `latest`, or a server's name (its latest session).",
)
filter_options = [
    session_option,
    server_option,
    click.option("--method", help="Only this JSON-RPC method."),
    click.option("--tool", help="Only calls of this tool."),
    click.option(
        "--errors", is_flag=True, help="Only errors (JSON-RPC errors and tool results with isError)."
    ),
    click.option("--since", help="Only newer than a duration ago (10m, 2h, 1d) or an ISO 8601 time."),
]


def _with_filters(fn: F) -> F:
    for option in reversed(filter_options):
        fn = option(fn)
    return fn


@click.command("events")
@_with_filters
@risk_option
@click.option(
    "--kind",
    multiple=True,
    type=click.Choice(["request", "notification", "response", "error", "invalid"]),
    help="Only messages of this kind (repeatable).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="At most this many (the newest).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@db_option
def events_cmd(
    session: str | None,
    server: str | None,
    method: str | None,
    tool: str | None,
    errors: bool,
    since: str | None,
    risk: str | None,
    kind: tuple[str, ...],
    limit: int,
    as_json: bool,
    db_url: str | None,
) -> None:
    """List recorded messages (the newest LIMIT, oldest first)."""
    from ..store import queries

    engine = open_engine(db_url)
    flt = _filter(engine, session, method, tool, errors, since, kind, risk, server)
    found = queries.list_events(engine, flt, limit)
    if not found and not as_json:
        _empty_hint("matching events")
    cancelled = set() if as_json else queries.cancelled(engine, [e.id for e in found if e.kind == "request"])
    for e in found:
        if as_json:  # the same object as the API's (a cancellation is linked by its call_id)
            echo_json(_event_json(e))
        else:
            click.echo(event_line(e, e.id in cancelled))


@click.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="The event as one JSON object.")
@db_option
def show_cmd(event_id: str, as_json: bool, db_url: str | None) -> None:
    """Show one event in full, with the request or response it pairs with."""
    from ..store import queries

    engine = open_engine(db_url)
    try:
        event = queries.get_event(engine, event_id)
    except queries.NotFound as exc:
        fail(str(exc))
    pair = queries.paired_event(engine, event)
    call = queries.call_of(engine, event)
    data = _event_json(event)
    data["paired_event_id"] = pair.id if pair else None
    data["call"] = call.to_dict() if call is not None else None
    if call is not None:  # what the call asked the client, and its progress
        data["call"]["questions"] = [q for e in call.events for q in questions(e)]
        data["call"]["progress"] = [p for e in call.events if (p := progress(e)) is not None]
    if as_json:
        echo_json(data)
        return
    click.echo(event_line(event, call is not None and call.id == event.id and call.state == "cancelled"))
    for key in ("session_id", "ts", "jsonrpc_id", "resource_uri", "prompt_name", "error", "truncated"):
        if data.get(key) is not None and data[key] is not False:  # a jsonrpc_id 0 is shown
            click.echo(f"  {key}: {orjson.dumps(data[key]).decode()}")
    if pair is not None:
        click.echo(f"  paired with: {pair.kind} {pair.id}")
    if call is not None:
        _show_call(call)
    click.echo(orjson.dumps(data["payload"], option=orjson.OPT_INDENT_2).decode())


def _show_call(call: Call) -> None:
    """The logical call an event belongs to: state, rounds, total latency, each linked event."""
    info = call.to_dict()
    colour = {"cancelled": "red", "error": "red", "pending": "yellow", "input_required": "yellow"}
    head = f"  call {call.id}: {click.style(info['state'], fg=colour.get(info['state'], 'green'), bold=True)}"
    head += f", {_plural(info['rounds'], 'round')}"
    if info["latency_ms"] is not None:
        head += f", {info['latency_ms']:.1f}ms in all"
    click.echo(head)
    for e in call.events:
        click.echo("    " + event_line(e))


@click.command("tail")
@_with_filters
@click.option("-f", "--follow", is_flag=True, help="Keep printing new messages as they are recorded.")
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Recent messages to print first.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--interval", type=click.FloatRange(min=0.01), default=0.2, hidden=True)
@db_option
def tail_cmd(
    session: str | None,
    server: str | None,
    method: str | None,
    tool: str | None,
    errors: bool,
    since: str | None,
    follow: bool,
    lines: int,
    as_json: bool,
    interval: float,
    db_url: str | None,
) -> None:
    """Print the latest messages, one line each; with -f, follow new ones live."""
    from ..store import queries

    engine = open_engine(db_url)
    flt = _filter(engine, session, method, tool, errors, since, server=server, wait=follow)
    known = dict.fromkeys(flt.session_ids or (), True)  # --server: does the session's server match

    def emit(e: Event) -> None:
        click.echo(orjson.dumps(_event_json(e)).decode() if as_json else event_line(e))

    def wanted(e: Event) -> bool:
        """With --server, sessions started after km tail are followed too."""
        if server is None:
            return True
        if e.session_id in known:
            return known[e.session_id]
        try:
            s = queries.get_session(engine, e.session_id)
        except queries.NotFound:
            return False
        match = queries.server_matches(s.name, s.server, server)
        if match or s.server is not None:  # else the server may still report a matching name
            known[e.session_id] = match
        return match

    seq = queries.last_seq(engine)
    if lines:
        for e in queries.list_events(engine, flt, lines):
            emit(e)
    if not follow:
        return
    flt.session_ids = None  # decided per session as they come (wanted)
    try:
        while True:
            batch = queries.events_after(engine, seq, flt)
            for position, e in batch:
                if wanted(e):
                    emit(e)
                seq = position
            if not batch:
                time.sleep(interval)
    except KeyboardInterrupt:
        pass


def _ms(value: object) -> str:
    return "-" if value is None else f"{value:.1f}"


@click.command("stats")
@session_option
@server_option
@click.option("--since", help="Only newer than a duration ago (10m, 2h, 1d) or an ISO 8601 time.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option(
    "--radar",
    is_flag=True,
    help="Per server and client: protocol versions, and features 2026-07-28 deprecates or removes.",
)
@db_option
def stats_cmd(
    session: str | None,
    server: str | None,
    since: str | None,
    as_json: bool,
    radar: bool,
    db_url: str | None,
) -> None:
    """Per method and tool: calls, errors, latency p50/p95/p99 and bytes (--radar: the
    deprecation radar instead)."""
    from ..store import queries

    engine = open_engine(db_url)
    flt = _filter(engine, session, None, None, False, since, server=server)
    if radar:
        if session:
            raise click.UsageError("--radar covers every session; narrow it with --server or --since")
        _radar(engine, server, flt.since_ns, as_json)
        return
    rows = [r.to_dict() for r in queries.stats(engine, flt)]
    if as_json:
        for row in rows:
            echo_json(row)
        return
    if not rows:
        _empty_hint("messages recorded yet")
        return
    mw = max(6, *(len(str(r["method"])) for r in rows))
    tw = max(4, *(len(str(r["tool"] or "")) for r in rows))
    header = (
        f"{'method':<{mw}} {'tool':<{tw}} {'calls':>7} {'errors':>7} {'cancelled':>9} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'bytes':>10}"
    )
    click.echo(click.style(header, bold=True))
    for r in rows:
        click.echo(
            f"{r['method']!s:<{mw}} {r['tool'] or '':<{tw}} {r['count']:>7} {r['errors']:>7} "
            f"{r['cancelled']:>9} "
            f"{_ms(r['p50_ms']):>8} {_ms(r['p95_ms']):>8} {_ms(r['p99_ms']):>8} {r['bytes']:>10}"
        )


def _radar(engine: Engine, server: str | None, since_ns: int | None, as_json: bool) -> None:
    from ..store.radar import CURRENT_VERSION, radar

    peers = radar(engine, server=server, since_ns=since_ns)
    if as_json:
        for peer in peers:
            echo_json(peer.to_dict())
        return
    if not peers:
        _empty_hint("sessions recorded yet")
        return
    for peer in peers:
        versions = ", ".join(sorted(peer.versions)) or "version unknown"
        state = click.style("current", fg="green") if peer.current else f"not yet on {CURRENT_VERSION}"
        plural = "s" if peer.sessions != 1 else ""
        head = f"{click.style(peer.role, bold=True)} {peer.name}: {versions} ({state})"
        click.echo(f"{head}, {peer.sessions} session{plural}")
        if not peer.uses:
            click.echo("  relies on nothing 2026-07-28 deprecates or removes")
        for feature in peer.to_dict()["features"]:
            color = "red" if feature["status"] == "removed" else "yellow"
            count = f"{feature['sessions']} session{'s' if feature['sessions'] != 1 else ''}"
            if feature["messages"]:
                count += f", {feature['messages']} message{'s' if feature['messages'] != 1 else ''}"
            click.echo(f"  {click.style(feature['status'], fg=color)} {feature['label']} ({count})")


@click.command("findings")
@_with_filters
@risk_option
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Events to look at."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per finding.")
@db_option
def findings_cmd(
    session: str | None,
    server: str | None,
    method: str | None,
    tool: str | None,
    errors: bool,
    since: str | None,
    risk: str | None,
    limit: int,
    as_json: bool,
    db_url: str | None,
) -> None:
    """List security findings (secrets, personal data, dangerous calls, poisoning, pinning, policy)."""
    from ..store import queries

    engine = open_engine(db_url)
    flt = _filter(engine, session, method, tool, errors, since, (), risk or "low", server)
    found = queries.list_events(engine, flt, limit)
    if not found and not as_json:
        _empty_hint("findings")
    for e in found:
        for f in (e.risk or {}).get("findings", []):
            if as_json:
                echo_json({"event_id": e.id, "session_id": e.session_id, "ts": e.to_dict()["ts"], **f})
            else:
                colour = {"critical": "red", "high": "red", "medium": "yellow"}.get(
                    f.get("severity"), "white"
                )
                click.echo(
                    f"{click.style(f.get('severity', '?'), fg=colour, bold=True):<8} {f['rule']:<28} "
                    f"{e.method or '-'} {e.tool or ''} {f.get('path', '')}  {f.get('message', '')}  "
                    + click.style(e.id, dim=True)
                )
