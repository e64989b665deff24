"""The events table on PostgreSQL, range-partitioned by time (declarative partitioning, one
partition per calendar month of ``ts_ns``, UTC; SQLite keeps the plain table).

- ``events_pYYYYMM`` holds the month; ``events_default`` holds events dated outside
  :func:`in_window` (before 2000 or more than a year ahead: a client's clock gone wrong), so
  that no timestamp can make the server create thousands of partitions.
- Partitions are created ahead: for the months of each batch before it is stored
  (:class:`PartitionKeeper`, remembered per process), and for this month and the next
  :data:`MONTHS_AHEAD` at start-up and by the retention pass (:func:`create_ahead`).
- Retention drops a month's partition whole (:func:`drop_expired`) when every row in it has
  expired, i.e. no organization that keeps data past the month's end has a row in it; the
  partitions that straddle an organization's cutoff are trimmed row by row as before.
- The unique key is ``(org_id, id, ts_ns)`` (a unique index on a partitioned table must contain
  the partition key): a re-sent event carries its id and time unchanged, so it is still stored
  once.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text

MONTHS_AHEAD = 2
FIRST_YEAR = 2000
LOCK_KEY = 0x6B6D5F70  # pg_advisory_xact_lock: one partition creator at a time
NAME = re.compile(r"^events_p(\d{4})(\d{2})$")

Month = tuple[int, int]


def month_of(ts_ns: int) -> Month:
    when = datetime.fromtimestamp(ts_ns // 10**9, UTC)
    return when.year, when.month


def next_month(month: Month) -> Month:
    year, m = month
    return (year + 1, 1) if m == 12 else (year, m + 1)


def start_ns(month: Month) -> int:
    return int(datetime(month[0], month[1], 1, tzinfo=UTC).timestamp()) * 10**9


def name_of(month: Month) -> str:
    return f"events_p{month[0]:04d}{month[1]:02d}"


def in_window(month: Month, now_ns: int) -> bool:
    """Months that get a partition of their own: from 2000 to a year ahead of now."""
    now = month_of(now_ns)
    return (FIRST_YEAR, 1) <= month <= (now[0] + 1, now[1])


def partitioned(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass('events')")).scalar()
    return kind == "p"


def existing(conn: Connection) -> set[Month]:
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass('events')"
        )
    ).scalars()
    return {(int(m[1]), int(m[2])) for name in rows if (m := NAME.match(name))}


def create(conn: Connection, months: Iterable[Month]) -> list[Month]:
    """Create the monthly partitions that are missing (in the caller's transaction, one creator
    at a time); returns those created. A month whose events already went to the default
    partition (dated beyond the window when they came) stays there."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    have = existing(conn)
    created = []
    for month in sorted(set(months) - have):
        lo, hi = start_ns(month), start_ns(next_month(month))
        if conn.execute(text("SELECT 1 FROM events_default WHERE ts_ns >= :lo AND ts_ns < :hi LIMIT 1"),
                        {"lo": lo, "hi": hi}).first():  # fmt: skip
            continue
        conn.execute(
            text(f"CREATE TABLE {name_of(month)} PARTITION OF events FOR VALUES FROM ({lo}) TO ({hi})")
        )
        created.append(month)
    return created


def ahead(now_ns: int) -> list[Month]:
    months = [month_of(now_ns)]
    for _ in range(MONTHS_AHEAD):
        months.append(next_month(months[-1]))
    return months


def create_ahead(engine: Engine, now_ns: int) -> list[Month]:
    """This month's partition and the next :data:`MONTHS_AHEAD` (the maintenance step)."""
    with engine.begin() as conn:
        return create(conn, ahead(now_ns)) if partitioned(conn) else []


def drop_expired(conn: Connection, cutoffs: dict[str, int | None]) -> dict[str, int]:
    """Drop each monthly partition none of whose rows is kept: for every organization,
    ``cutoffs`` says before which time its events expire (None: kept forever), and a partition
    goes only when no row in it is at or after its organization's cutoff (one indexed probe per
    organization that may still have rows in that month). Returns the events dropped per org id."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})  # one pass at a time
    dropped: dict[str, int] = {}
    for month in sorted(existing(conn)):
        lo, hi = start_ns(month), start_ns(next_month(month))
        keep = {org: max(lo, cutoff or 0) for org, cutoff in cutoffs.items() if cutoff is None or cutoff < hi}
        name = name_of(month)
        probe = (
            f"SELECT 1 FROM {name} p, unnest(CAST(:orgs AS text[]), CAST(:since AS int8[])) AS k(org, since) "
            "WHERE p.org_id = k.org AND p.ts_ns >= k.since LIMIT 1"
        )
        if keep and conn.execute(text(probe), {"orgs": list(keep), "since": list(keep.values())}).first():
            continue
        counts = conn.execute(text(f"SELECT org_id, count(*) FROM {name} GROUP BY org_id")).all()
        if any(org not in cutoffs for org, _ in counts):
            continue  # rows of an organization retention does not know of: leave them
        conn.execute(text(f"DROP TABLE {name}"))
        for org, n in counts:
            dropped[org] = dropped.get(org, 0) + int(n)
    return dropped


class PartitionKeeper:
    """Makes sure the months of a batch have their partitions before it is stored; the months
    known to exist are remembered, so the check costs nothing after the first batch of a month."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.active: bool | None = None if engine.dialect.name == "postgresql" else False
        self._known: set[Month] = set()
        self._lock = threading.Lock()

    def ensure(self, ts_ns: Iterable[int], now_ns: int) -> None:
        if self.active is False:
            return
        months = {m for m in map(month_of, ts_ns) if in_window(m, now_ns)} - self._known
        if not months and self.active:
            return
        with self._lock, self.engine.begin() as conn:
            if self.active is None:
                self.active = partitioned(conn)
                if not self.active:
                    return
            if months - self._known:
                create(conn, months - self._known)
                self._known |= months


_keepers: weakref.WeakKeyDictionary[Engine, PartitionKeeper] = weakref.WeakKeyDictionary()
_keepers_lock = threading.Lock()


def keeper(engine: Engine) -> PartitionKeeper:
    """The process's :class:`PartitionKeeper` for ``engine``."""
    with _keepers_lock:
        found = _keepers.get(engine)
        if found is None:
            found = _keepers[engine] = PartitionKeeper(engine)
        return found
