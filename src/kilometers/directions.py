"""The two directions of an MCP session's traffic (without :mod:`kilometers.model`'s imports:
``km monitor``'s relay needs only these names before it forwards its first byte)."""

from __future__ import annotations

TYPE_CHECKING = False  # (not typing's: importing it costs km monitor ~5 ms before its first byte)
if TYPE_CHECKING:
    from typing import Literal

    Direction = Literal["client_to_server", "server_to_client"]
else:
    Direction = str

CLIENT_TO_SERVER: Direction = "client_to_server"
SERVER_TO_CLIENT: Direction = "server_to_client"
