"""VS Code: the user profile's ``mcp.json`` and a workspace's ``.vscode/mcp.json`` (servers under
``servers``), and servers under ``mcp.servers`` in the user's ``settings.json`` (the older place).

These files are JSONC: comments and trailing commas are allowed, and kept. Entries are
``{"type": "stdio", "command", "args", "env", "envFile"}`` or ``{"type": "http"|"sse", "url",
"headers"}``.
"""

from __future__ import annotations

from pathlib import Path

from .base import Client, ConfigLocation, Format, app_config_dir, locations, static_maps

MCP_FORMAT = Format("vscode", static_maps(("servers",)), jsonc=True, url_type="http")
SETTINGS_FORMAT = Format(
    "vscode-settings", static_maps(("mcp", "servers"), ("mcp.servers",)), jsonc=True, url_type="http"
)
EDITIONS = ("Code", "Code - Insiders")


def locate(cwd: Path, os_name: str) -> list[ConfigLocation]:
    entries: list[tuple[Path, Format, str]] = []
    for edition in EDITIONS:
        user = app_config_dir(edition, os_name) / "User"
        if edition != "Code" and not user.exists():
            continue
        entries.append((user / "mcp.json", MCP_FORMAT, "user"))
        entries.append((user / "settings.json", SETTINGS_FORMAT, "user"))
        profiles = user / "profiles"
        if profiles.is_dir():
            entries.extend((p, MCP_FORMAT, "user") for p in sorted(profiles.glob("*/mcp.json")))
    entries.append((cwd / ".vscode" / "mcp.json", MCP_FORMAT, "project"))
    return locations("vscode", "VS Code", entries)


def format_for(path: Path) -> Format:
    return SETTINGS_FORMAT if path.name == "settings.json" else MCP_FORMAT


CLIENT = Client("vscode", "VS Code", locate, format_for)
