"""km's messages: library code logs them, the CLI shows them.

Library modules (everything outside ``kilometers.cli``) never print: they report through
``logging.getLogger(__name__)`` with the one line users read (``km: cannot write the event
store …``). The CLI installs one handler (:func:`setup`) that writes each message as it is, one
line on stderr (never stdout: ``km monitor``'s stdout is the client's protocol stream).

A problem that repeats (every event of a session failing to reach the store, every upload pass
refused) is said once: log it with ``extra=once("store-write")`` and the handler's :class:`Once`
filter lets the first record with that key through and drops the rest. Records without a key are
always shown. Without :func:`setup` (the library used on its own) records of level WARNING and
above still reach stderr through :data:`logging.lastResort`, only without the filter.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, TextIO

LOGGER = "kilometers"
"""The parent of every library module's logger (``logging.getLogger(__name__)``)."""


def once(key: str) -> dict[str, Any]:
    """``extra`` for a record that is said the first time only (per process and ``key``)."""
    return {"once": key}


class Once(logging.Filter):
    """Lets the first record of each ``once`` key through; records without a key always pass."""

    def __init__(self) -> None:
        super().__init__()
        self._said: set[str] = set()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = getattr(record, "once", None)
        if key is None:
            return True
        with self._lock:
            if key in self._said:
                return False
            self._said.add(key)
            return True

    def reset(self) -> None:
        """Forget what was said (a new run in the same process, such as a test)."""
        with self._lock:
            self._said.clear()


class StderrLines(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each message as it is, one line, to the ``sys.stderr`` of the moment (so that a
    redirected stderr, or a test capturing it, gets it too)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self, logging.INFO)
        self.setFormatter(logging.Formatter("%(message)s"))
        self.once = Once()
        self.addFilter(self.once)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass  # always the current sys.stderr


def setup() -> StderrLines:
    """Install the one handler on km's logger (again: the same handler, its memory cleared)."""
    logger = logging.getLogger(LOGGER)
    for handler in logger.handlers:
        if isinstance(handler, StderrLines):
            handler.once.reset()
            return handler
    handler = StderrLines()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # said once, by this handler, whatever the root logger has
    return handler
