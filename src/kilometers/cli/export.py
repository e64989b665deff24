"""``km export`` (JSON Lines, CSV, HAR) and ``km import`` (JSON Lines into a store)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from .common import db_option, fail, open_engine, since_to_ns

IMPORT_BATCH = 1000


@click.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "har"]),
    default="jsonl",
    show_default=True,
    help="jsonl is lossless (for km import); csv has one row per event; har one entry per call.",
)
@click.option(
    "--session",
    help="Only this session (id, its first or last characters, `latest`, or a server's name: its latest).",
)
@click.option(
    "--server",
    metavar="NAME",
    help="Only sessions of the servers with this name (a glob: `*`, `?`), km's or their own.",
)
@click.option("--since", help="Only newer than a duration ago (10m, 2h, 1d) or an ISO 8601 time.")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="File to write (default: stdout)."
)
@db_option
def export_cmd(
    fmt: str,
    session: str | None,
    server: str | None,
    since: str | None,
    output: str | None,
    db_url: str | None,
) -> None:
    """Write recorded sessions and events to a file: jsonl (lossless, for km import), csv or har."""
    from ..export import files
    from ..store import queries

    engine = open_engine(db_url)
    flt = queries.EventFilter()
    try:
        if session:
            flt.session_id = queries.resolve_session(engine, session)
        if server:
            flt.session_ids = queries.server_sessions(engine, server)
            if not flt.session_ids:
                raise queries.no_server(server)
    except queries.NotFound as exc:
        fail(str(exc))
    if since:
        flt.since_ns = since_to_ns(since, "--since")
    total = files.count_events(engine, flt)
    out = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
    try:
        show = total > 5000 and (output is not None or not sys.stdout.isatty())
        with click.progressbar(length=total, label="exporting", file=sys.stderr, hidden=not show) as bar:

            def counted() -> Any:
                for record in files.iter_records(engine, flt):
                    if not hasattr(record, "started_ns"):
                        bar.update(1)
                    yield record

            n = files.WRITERS[fmt](counted(), out)
        out.flush()
    finally:
        if output:
            out.close()
    click.echo(f"exported {n} {'entries' if fmt == 'har' else 'events'}", err=True)


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@db_option
def import_cmd(file: str, db_url: str | None) -> None:
    """Load a `km export --format jsonl` file into the store. Events already there are skipped, so
    importing twice is harmless; with a team server configured, `km sync` then uploads them."""
    from ..export import files
    from ..server import ingest
    from ..server.auth import LOCAL_ORG_RECORD

    engine = open_engine(db_url)
    stream = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115
    size = os.fstat(stream.fileno()).st_size if file != "-" else 0
    accepted = duplicates = rejected = 0
    session: dict[str, Any] | None = None
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal accepted, duplicates, rejected, batch
        if session is None or (not batch and session.get("_sent")):
            batch = []
            return
        body = {"session": {k: v for k, v in session.items() if k != "_sent"}, "events": batch}
        result = ingest.ingest(engine, LOCAL_ORG_RECORD, body)
        accepted, duplicates = accepted + result.accepted, duplicates + result.duplicates
        rejected += len(result.errors)
        for err in result.errors[:3]:
            click.echo(f"km: skipped event {err['id']}: {err['message']}", err=True)
        session["_sent"] = True
        batch = []

    try:
        with click.progressbar(length=size, label="importing", file=sys.stderr, hidden=size < 1 << 20) as bar:
            for kind, obj in files.read_jsonl(_tracked(stream, bar)):
                if kind == "session":
                    flush()
                    session = obj
                elif session is None or obj.get("session_id") != session.get("id"):
                    fail(f"event {obj.get('id')} comes before its session record; is this a km export file?")
                else:
                    batch.append(obj)
                    if len(batch) >= IMPORT_BATCH:
                        flush()
            flush()
    except files.ImportError_ as exc:
        fail(f"{Path(file).name}: {exc}; nothing after that line was imported")
    except ingest.BatchError as exc:
        fail(f"{Path(file).name}: {exc}")
    finally:
        if file != "-":
            stream.close()
    click.echo(f"imported {accepted} events ({duplicates} already present, {rejected} invalid)", err=True)


def _tracked(stream: Any, bar: Any) -> Any:
    for line in stream:
        bar.update(len(line))
        yield line
