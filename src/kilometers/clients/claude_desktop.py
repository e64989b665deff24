"""Claude Desktop: ``claude_desktop_config.json``, servers under ``mcpServers`` (stdio only)."""

from __future__ import annotations

from pathlib import Path

from .base import Client, ConfigLocation, Format, app_config_dir, locations, static_maps

FORMAT = Format("claude-desktop", static_maps(("mcpServers",)))


def locate(cwd: Path, os_name: str) -> list[ConfigLocation]:
    # macOS: ~/Library/Application Support/Claude, Windows: %APPDATA%\Claude, Linux: ~/.config/Claude
    path = app_config_dir("Claude", os_name) / "claude_desktop_config.json"
    return locations("claude-desktop", "Claude Desktop", [(path, FORMAT, "user")])


CLIENT = Client("claude-desktop", "Claude Desktop", locate, lambda _path: FORMAT)
