"""Plugins: third-party sinks and detectors, loaded from the ``kilometers`` entry-point group.

A plugin is a module (or object) with hook implementations::

    # pyproject.toml of the plugin:  [project.entry-points.kilometers] myplugin = "my_km_plugin"
    import kilometers.plugins as km

    @km.hookimpl
    def km_sinks(settings):            # -> list of kilometers.sinks.Sink
        return [MySink()]

    @km.hookimpl
    def km_detectors():                # -> list of detectors
        return [my_detector]

``km_sinks`` is called once per process, by its :class:`~kilometers.host.Host`: the sinks it
returns are shared by every session of the process (``km proxy`` has many at once), so a sink
keeps per-session state by ``session.id``, may see its hooks called from several threads, and
gets ``close`` once, when the process stops recording.

A detector is a callable ``(direction, kind, method, tool, message) -> list[dict]`` returning
findings shaped like km's own (``rule``, ``severity``, ``path``, ``message``); its rule ids
should use the plugin's own prefix (``plugin.<name>.*``). Set ``KM_NO_PLUGINS=1`` to disable
every plugin.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import pluggy

from .sinks import Sink

_log = logging.getLogger(__name__)

PROJECT = "kilometers"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Detector = Callable[[str, str, "str | None", "str | None", Any], list[dict[str, Any]]]


class Hooks:
    @hookspec
    def km_sinks(self, settings: Any) -> list[Sink]:  # type: ignore[empty-body]
        """Sinks shared by every recording session of the process (called once per process)."""

    @hookspec
    def km_detectors(self) -> list[Detector]:  # type: ignore[empty-body]
        """Extra detectors run on every message by the security analysis."""


_manager: pluggy.PluginManager | None = None


def manager() -> pluggy.PluginManager:
    global _manager
    if _manager is None:
        pm = pluggy.PluginManager(PROJECT)
        pm.add_hookspecs(Hooks)
        if not os.environ.get("KM_NO_PLUGINS"):
            try:
                pm.load_setuptools_entrypoints(PROJECT)
            except Exception as exc:  # a broken plugin must not break km
                _log.warning(f"km: a plugin failed to load and is ignored: {exc!r}")
        _manager = pm
    return _manager


def plugin_sinks(settings: Any) -> list[Sink]:
    out: list[Sink] = []
    for result in _call(manager().hook.km_sinks, settings=settings):
        out.extend(result)
    return out


def plugin_detectors() -> list[Detector]:
    out: list[Detector] = []
    for result in _call(manager().hook.km_detectors):
        out.extend(result)
    return out


def _call(hook: Any, **kwargs: Any) -> list[Any]:
    try:
        return list(hook(**kwargs))
    except Exception as exc:
        _log.warning(f"km: a plugin hook failed and is ignored: {exc!r}")
        return []
