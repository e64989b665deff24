"""Sinks: small consumers of the event pipeline (store, uploader, exporters, live streams...).

A sink overrides only the hooks it needs. Hooks run on the recorder thread, never on the
forwarding path; a sink that raises is reported once and never stops the others.
"""

from __future__ import annotations

from collections.abc import Sequence

from .model import Event, Session


class Sink:
    name = "sink"

    def on_session_start(self, session: Session) -> None:
        """A session began (its row may be incomplete: client/server arrive later)."""

    def on_session_update(self, session: Session) -> None:
        """Negotiated details (client, server, protocol version...) became known."""

    def on_events(self, session: Session, events: Sequence[Event]) -> None:
        """Events captured since the last call, in wire order."""

    def on_session_end(self, session: Session) -> None:
        """The session ended; ``session.ended_ns`` and ``exit_code`` are set."""

    def release(self) -> None:
        """The session went idle: let go of what can be reopened on the next event (file handles,
        database connections)."""

    def close(self) -> None:
        """Release resources; called once, after on_session_end."""

    @property
    def lost_events(self) -> int:
        """Events this sink accepted but could not keep (reported in the session record)."""
        return 0
