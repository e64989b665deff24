"""An example third-party km plugin: a sink that appends event kinds to a file, and a detector."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import kilometers.plugins as km
from kilometers.model import Event, Session
from kilometers.sinks import Sink


class KindsToFile(Sink):
    name = "example-kinds"

    def __init__(self, path: str) -> None:
        self.path = path

    def on_events(self, session: Session, events: Sequence[Event]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.writelines(f"{e.kind}\n" for e in events)


def shouting(
    direction: str, kind: str, method: str | None, tool: str | None, message: Any
) -> list[dict[str, Any]]:
    """Flags tool calls whose arguments are written in capitals (a silly rule, for the test)."""
    params = message.get("params") if isinstance(message, dict) else None
    arguments = params.get("arguments") if isinstance(params, dict) else None
    if isinstance(arguments, dict) and any(isinstance(v, str) and v.isupper() for v in arguments.values()):
        return [{"rule": "plugin.example.shouting", "severity": "low", "path": "/params/arguments",
                 "message": "arguments in capitals"}]  # fmt: skip
    return []


@km.hookimpl
def km_sinks(settings: Any) -> list[Sink]:
    path = os.environ.get("KM_EXAMPLE_PLUGIN_OUT")
    return [KindsToFile(path)] if path else []


@km.hookimpl
def km_detectors() -> list[Any]:
    return [shouting]
