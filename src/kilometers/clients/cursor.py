"""Cursor: ``~/.cursor/mcp.json`` and a project's ``.cursor/mcp.json``, servers under ``mcpServers``;
remote servers are ``{"url", "headers"}`` without a type."""

from __future__ import annotations

from pathlib import Path

from .base import Client, ConfigLocation, Format, home, locations, static_maps

FORMAT = Format("cursor", static_maps(("mcpServers",)))


def locate(cwd: Path, os_name: str) -> list[ConfigLocation]:
    # the same on every OS: %USERPROFILE%\.cursor\mcp.json on Windows
    return locations(
        "cursor",
        "Cursor",
        [
            (home() / ".cursor" / "mcp.json", FORMAT, "user"),
            (cwd / ".cursor" / "mcp.json", FORMAT, "project"),
        ],
    )


CLIENT = Client("cursor", "Cursor", locate, lambda _path: FORMAT)
