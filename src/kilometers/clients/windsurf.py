"""Windsurf: ``~/.codeium/windsurf/mcp_config.json``, servers under ``mcpServers``; a remote server's
URL is ``serverUrl`` (``url`` is accepted too)."""

from __future__ import annotations

from pathlib import Path

from .base import Client, ConfigLocation, Format, home, locations, static_maps

FORMAT = Format("windsurf", static_maps(("mcpServers",)), url_key="serverUrl")


def locate(cwd: Path, os_name: str) -> list[ConfigLocation]:
    path = home() / ".codeium" / "windsurf" / "mcp_config.json"
    return locations("windsurf", "Windsurf", [(path, FORMAT, "user")])


CLIENT = Client("windsurf", "Windsurf", locate, lambda _path: FORMAT)
