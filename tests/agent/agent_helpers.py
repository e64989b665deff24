"""What the agent's tests share: JSON-RPC lines to send, what the store holds per session, and
``km monitor``s started all at once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from km_helpers import KM, PYTHON, RAW_CAT


def lines(n: int, tag: str, start: int = 0) -> bytes:
    """``n`` tools/call requests (ids ``start``…) naming ``tag``, one per line."""
    return b"".join(
        json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": tag}}).encode()
        + b"\n"
        for i in range(start, start + n)
    )


def stored(home: Path) -> dict[str, Counter[tuple[str, Any]]]:
    """Per session: how many times each (direction, JSON-RPC id) is stored."""
    out: dict[str, Counter[tuple[str, Any]]] = {}
    with sqlite3.connect(home / "km.db") as db:
        for session_id, direction, payload in db.execute("SELECT session_id, direction, payload FROM events"):
            msg = json.loads(payload) if payload else {}
            out.setdefault(session_id, Counter())[(direction, msg.get("id"))] += 1
    return out


def monitors_at_once(env: dict[str, str], count: int, each: int, prefix: str) -> None:
    """``count`` ``km monitor``s of a raw server (named ``prefix0``…), started together and given
    ``each`` lines: every one forwards them all and records through the agent, not by itself."""
    procs = [
        subprocess.Popen(
            [KM, "monitor", "--name", f"{prefix}{i}", "--", PYTHON, RAW_CAT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for i in range(count)
    ]
    outs = [p.communicate(lines(each, f"{prefix}{i}"), timeout=120) for i, p in enumerate(procs)]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and out.count(b"\n") == each, err
        assert b"without the agent" not in err and b"by itself" not in err, err
