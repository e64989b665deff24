"""MCP clients whose config files ``km wrap`` rewrites: one module per client format.

``find_locations`` lists the config files a client may read on this OS; ``location_for`` tells the
format of a file given with ``--config``. The edit itself is in ``rewrite`` (on top of the
text-preserving JSON editor ``jsonedit``); the saved originals are in ``state``.
"""

from __future__ import annotations

from pathlib import Path

from . import claude_code, claude_desktop, cursor, vscode, windsurf
from .base import Client, ConfigLocation, system
from .jsonedit import JSONEditError, parse

CLIENTS: dict[str, Client] = {
    client.name: client
    for client in (claude_desktop.CLIENT, claude_code.CLIENT, cursor.CLIENT, vscode.CLIENT, windsurf.CLIENT)
}
CHOICES = [*CLIENTS, "all"]

__all__ = [
    "CHOICES",
    "CLIENTS",
    "Client",
    "ConfigLocation",
    "find_locations",
    "location_for",
    "wrapped_files",
]


def find_locations(
    client: str = "all", cwd: Path | None = None, os_name: str | None = None
) -> list[ConfigLocation]:
    """The config files of ``client`` (or all clients), existing or not, each file once."""
    cwd = cwd or Path.cwd()
    os_name = os_name or system()
    chosen = CLIENTS.values() if client == "all" else [CLIENTS[client]]
    found: list[ConfigLocation] = []
    seen: set[Path] = set()
    for each in chosen:
        for location in each.locate(cwd, os_name):
            real = location.path.resolve()
            if real not in seen:
                seen.add(real)
                found.append(location)
    return found


def _by_content(path: Path) -> str:
    try:
        doc = parse(path.read_text(encoding="utf-8"), jsonc=True).value
    except (OSError, UnicodeDecodeError, JSONEditError):
        return "cursor"
    if isinstance(doc, dict) and "servers" in doc and "mcpServers" not in doc:
        return "vscode"
    return "cursor"


def location_for(path: Path, client: str | None = None) -> ConfigLocation:
    """The config file ``path`` given with ``--config``: its client from ``client`` or its name."""
    if client is None or client == "all":
        name, parent = path.name, path.parent.name
        if name == "claude_desktop_config.json":
            client = "claude-desktop"
        elif name in (".claude.json", ".mcp.json"):
            client = "claude-code"
        elif name == "mcp_config.json":
            client = "windsurf"
        elif name == "settings.json" or (
            name == "mcp.json" and (parent in (".vscode", "User") or path.parent.parent.name == "profiles")
        ):
            client = "vscode"
        elif name == "mcp.json" and parent == ".cursor":
            client = "cursor"
        else:
            client = _by_content(path)
    chosen = CLIENTS[client]
    return ConfigLocation(chosen.name, chosen.label, path, chosen.format_for(path), "file")


def wrapped_files(client: str = "all", known: list[ConfigLocation] | None = None) -> list[ConfigLocation]:
    """Existing files km wrapped that are not among ``known`` (those wrapped with ``--config``)."""
    from . import state

    seen = {location.path.resolve() for location in known or []}
    found = []
    for name, record in state.load()["files"].items():
        path = Path(name)
        owner = record.get("client") if isinstance(record, dict) else None
        if path in seen or not path.is_file() or (client != "all" and owner != client):
            continue
        found.append(location_for(path, owner if isinstance(owner, str) and owner in CLIENTS else None))
    return found
