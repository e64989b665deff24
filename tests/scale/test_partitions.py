"""The events table partitioned by month on PostgreSQL (issue "Past one machine", item 1):
partitions made ahead and for each batch's months, retention that drops whole months and trims
exactly inside the months straddling an organization's cutoff, and `km db upgrade` converting
an installation that holds data. SQLite keeps the plain table."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, Table, func, insert, select, text

from kilometers.server import ingest, tenancy
from kilometers.server.retention import DAY_NS, apply_retention
from kilometers.store import db, partitions, queries
from kilometers.store.schema import events

from factory import session_batch
from km_helpers import wait_until
from pg import Cluster

KM = str(Path(sys.executable).parent / "km")
NOW = partitions.start_ns((2026, 9)) + 15 * DAY_NS  # 2026-09-16
_n = iter(range(10**6))


@pytest.fixture
def pg(pg_cluster: Cluster) -> Iterator[tuple[str, Engine]]:
    url = pg_cluster.create_database(f"km_part_{os.getpid()}_{next(_n)}")
    engine = db.open_store(url)
    yield url, engine
    engine.dispose()


def batch(start_ns: int, calls: int = 2) -> dict[str, object]:
    session, evs = session_batch(calls, start_ns=start_ns)
    return {"session": session, "events": evs}


def count(engine: Engine, org: tenancy.Org, lo: int = 0, hi: int = 2**63 - 1) -> int:
    with engine.connect() as conn:
        query = (
            select(func.count())
            .select_from(events)
            .where(events.c.org_id == org.id, events.c.ts_ns >= lo, events.c.ts_ns < hi)
        )
        return int(conn.execute(query).scalar_one())


def months(engine: Engine) -> set[tuple[int, int]]:
    with engine.connect() as conn:
        return partitions.existing(conn)


def test_partitions_are_made_ahead_and_for_each_batch(pg: tuple[str, Engine]) -> None:
    _url, engine = pg
    with engine.connect() as conn:
        assert partitions.partitioned(conn)
    assert set(partitions.ahead(NOW)) - months(engine) == set(partitions.create_ahead(engine, NOW))
    assert set(partitions.ahead(NOW)) <= months(engine)
    org = tenancy.create_org(engine, "acme", "unlimited")
    back = partitions.start_ns((2024, 3)) + 5 * DAY_NS
    result = ingest.ingest(engine, org, batch(back))
    assert result.accepted > 0 and (2024, 3) in months(engine)
    with engine.connect() as conn:  # the rows are in that month's partition
        assert conn.execute(text("SELECT count(*) FROM events_p202403")).scalar() == result.accepted
    # a clock gone wrong (year 2200) makes no partition: those events go to the default one
    far = partitions.start_ns((2200, 1))
    before = months(engine)
    assert ingest.ingest(engine, org, batch(far)).accepted > 0
    assert months(engine) == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events_default")).scalar() > 0
    # a re-sent batch is still stored once (the unique key carries ts_ns)
    same = batch(back)
    first = ingest.ingest(engine, org, same)
    assert ingest.ingest(engine, org, same).duplicates == first.accepted


def test_retention_drops_whole_months_and_trims_the_straddling_ones_exactly(
    pg: tuple[str, Engine],
) -> None:
    """acme keeps 30 days (cutoff Aug 17), globex 90 (cutoff Jun 18), initech forever. April
    holds only expired events: dropped whole. May holds initech's events too: kept, the others'
    rows deleted. June and August straddle a cutoff: trimmed row by row, exactly."""
    _url, engine = pg
    acme = tenancy.set_limits(engine, tenancy.create_org(engine, "acme", "unlimited"), None, 30)
    globex = tenancy.set_limits(engine, tenancy.create_org(engine, "globex", "unlimited"), None, 90)
    initech = tenancy.create_org(engine, "initech", "unlimited")
    day = partitions.start_ns
    plan = {
        acme: [day((2026, 4)) + DAY_NS, day((2026, 5)) + DAY_NS, day((2026, 6)) + 2 * DAY_NS,
               day((2026, 8)) + 2 * DAY_NS, NOW - 31 * DAY_NS, NOW - 29 * DAY_NS, NOW - DAY_NS],
        globex: [day((2026, 4)) + 2 * DAY_NS, day((2026, 5)) + DAY_NS, NOW - 91 * DAY_NS,
                 NOW - 89 * DAY_NS, NOW - 2 * DAY_NS],
        initech: [day((2026, 5)) + 4 * DAY_NS, day((2026, 7)) + DAY_NS],
    }  # fmt: skip
    sent: dict[str, list[int]] = {}
    for org, times in plan.items():
        sent[org.id] = []
        for ts in times:
            result = ingest.ingest(engine, org, batch(ts, calls=1))
            sent[org.id] += [r["ts_ns"] for r in result.stored]
    assert {(2026, 4), (2026, 5), (2026, 6), (2026, 7), (2026, 8)} <= months(engine)
    removed = apply_retention(engine, now_ns=NOW)
    # April: every row expired, dropped whole; the other months stay
    assert (2026, 4) not in months(engine)
    assert {(2026, 5), (2026, 6), (2026, 7), (2026, 8)} <= months(engine)
    for org, days in ((acme, 30), (globex, 90), (initech, None)):
        cutoff = 0 if days is None else NOW - days * DAY_NS
        kept = sorted(t for t in sent[org.id] if t >= cutoff)
        with engine.connect() as conn:
            stored = conn.execute(select(events.c.ts_ns).where(events.c.org_id == org.id)).scalars()
            assert sorted(stored) == kept, org.name
        assert removed.get(org.name, 0) == len(sent[org.id]) - len(kept), org.name
    # the straddling month is exact at the cutoff: acme's rows one day either side of it
    assert count(engine, acme, NOW - 30 * DAY_NS - DAY_NS, NOW - 30 * DAY_NS) == 0
    assert count(engine, acme, NOW - 30 * DAY_NS, NOW - 28 * DAY_NS) > 0
    # queries still work across partitions
    assert queries.list_events(engine, queries.EventFilter(org_id=acme.id), limit=1000)


def _known(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k in table.c}


def _at_0008_with_events(engine: Engine) -> tuple[tenancy.Org, list[dict[str, Any]], list[Any]]:
    """The store at revision 0008 (a plain events table) holding events of three months: the
    organization, the rows as parsed, and (seq, id, ts_ns) of the stored ones."""
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    with engine.begin() as conn:
        command.upgrade(db._alembic_config(conn), "0008")
    with engine.connect() as conn:
        assert not partitions.partitioned(conn)
    org = tenancy.create_org(engine, "acme", "unlimited")
    rows = []
    for month in ((2025, 11), (2026, 1), (2026, 2)):
        session, evs = session_batch(3, start_ns=partitions.start_ns(month) + DAY_NS)
        session_row = ingest._session_row(
            org.id, ingest.SessionIn.model_validate(session), True, ingest.Checks().config()
        )
        _s, parsed, errors = ingest.parse_batch({"session": session, "events": evs})
        assert not errors
        with engine.begin() as conn:  # the tables as they are at 0008 (later revisions add columns)
            old_sessions = Table("sessions", MetaData(), autoload_with=conn)
            old_events = Table("events", MetaData(), autoload_with=conn)
            conn.execute(insert(old_sessions).values(_known(old_sessions, session_row)))
            conn.execute(insert(old_events), [_known(old_events, {**r, "org_id": org.id}) for r in parsed])
        rows += parsed
    return org, rows, _stored(engine)


def _stored(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(select(events.c.seq, events.c.id, events.c.ts_ns).order_by(events.c.seq)).all()
        )


def test_km_db_upgrade_converts_an_installation_holding_data(pg: tuple[str, Engine]) -> None:
    """A store at revision 0008 (plain events table) with events over several months: `km db
    upgrade` partitions it, every row is kept with its seq, and ingestion and queries go on."""
    url, engine = pg
    org, rows, before = _at_0008_with_events(engine)
    assert len(before) == len(rows)
    result = subprocess.run([KM, "db", "upgrade", "--db", url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert db.current_revision(engine) == db.HEAD
    with engine.connect() as conn:
        assert partitions.partitioned(conn)
        assert conn.execute(text("SELECT count(*) FROM events_p202601")).scalar() == len(rows) // 3
    assert [tuple(r) for r in _stored(engine)] == [tuple(r) for r in before]
    assert {(2025, 11), (2026, 1), (2026, 2)} <= months(engine)
    # running it again changes nothing; new events get new seqs; a re-sent one is a duplicate
    result = subprocess.run([KM, "db", "upgrade", "--db", url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    session, evs = session_batch(1, start_ns=partitions.start_ns((2026, 2)) + 2 * DAY_NS)
    fresh = ingest.ingest(engine, org, {"session": session, "events": evs})
    assert fresh.accepted == len(evs)
    with engine.connect() as conn:
        newest = conn.execute(select(func.min(events.c.seq)).where(events.c.id.in_([e["id"] for e in evs])))
        assert newest.scalar_one() > before[-1].seq
    one = {"session": session, "events": evs}
    assert ingest.ingest(engine, org, one).duplicates == len(evs)
    got = queries.get_event(engine, str(before[0].id), org.id)
    assert got.id == before[0].id


def _activity(engine: Engine, query: Any, **params: Any) -> Any:
    """One value from ``pg_stat_activity``, in a transaction of its own: within one, PostgreSQL
    shows the view as it was at the transaction's first look."""
    with engine.connect() as conn:
        return conn.execute(query, params).scalar()


def test_an_interrupted_conversion_leaves_the_table_as_it_was_and_runs_again(pg: tuple[str, Engine]) -> None:
    """`km db upgrade` killed after it converted the table but before it committed (held, here, at
    recording the revision): PostgreSQL rolls the whole conversion back, so the plain table is
    there with every row, and the next `km db upgrade` converts it (docs/deploy.md)."""
    url, engine = pg
    _org, _rows, before = _at_0008_with_events(engine)
    waiting = text(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND query ILIKE 'UPDATE alembic_version%'"
    )
    holder = engine.connect()
    hold = holder.begin()
    holder.execute(text("SELECT version_num FROM alembic_version FOR UPDATE"))
    upgrade = subprocess.Popen(
        [KM, "db", "upgrade", "--db", url], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )

    def converted() -> int | None:
        """The upgrade's backend once it waits to record the revision (the table converted)."""
        assert upgrade.poll() is None, upgrade.stderr.read() if upgrade.stderr else ""
        pid: int | None = _activity(engine, waiting)
        return pid

    try:
        pid = wait_until(converted, 60, "the conversion to reach its revision update")
    finally:
        upgrade.kill()  # (whatever happened above: never left running)
        upgrade.wait(10)
        hold.rollback()
        holder.close()
    gone = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
    # its backend finishes the statement, finds the client gone and rolls back
    wait_until(lambda: not _activity(engine, gone, pid=pid), 30, "its backend to end")
    assert db.current_revision(engine) == "0008"
    with engine.connect() as conn:
        assert not partitions.partitioned(conn)
    assert _stored(engine) == before
    result = subprocess.run([KM, "db", "upgrade", "--db", url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert db.current_revision(engine) == db.HEAD
    with engine.connect() as conn:
        assert partitions.partitioned(conn)
    assert [tuple(r) for r in _stored(engine)] == [tuple(r) for r in before]
