"""Claude Code: ``~/.claude.json`` (user servers under ``mcpServers``, local-scope servers under
``projects.<dir>.mcpServers``) and a project's ``.mcp.json`` (``mcpServers``).

Entries are ``{"type": "stdio", "command", "args", "env"}`` or ``{"type": "http"|"sse", "url",
"headers"}``; ``type`` may be missing on stdio entries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .base import Client, ConfigLocation, Format, JSONPath, home, locations, static_maps


def _user_maps(doc: Any) -> list[JSONPath]:
    found = static_maps(("mcpServers",))(doc)
    projects = doc.get("projects") if isinstance(doc, dict) else None
    if isinstance(projects, dict):
        for key, project in projects.items():
            if isinstance(project, dict) and isinstance(project.get("mcpServers"), dict):
                found.append(("projects", key, "mcpServers"))
    return found


USER_FORMAT = Format("claude-code", _user_maps, url_type="http")
PROJECT_FORMAT = Format("claude-code-project", static_maps(("mcpServers",)), url_type="http")


def user_file() -> Path:
    config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(config_dir) / ".claude.json" if config_dir else home() / ".claude.json"


def locate(cwd: Path, os_name: str) -> list[ConfigLocation]:
    return locations(
        "claude-code",
        "Claude Code",
        [(user_file(), USER_FORMAT, "user"), (cwd / ".mcp.json", PROJECT_FORMAT, "project")],
    )


def format_for(path: Path) -> Format:
    return USER_FORMAT if path.name == ".claude.json" else PROJECT_FORMAT


CLIENT = Client("claude-code", "Claude Code", locate, format_for)
