"""A real MCP server (the `mcp` SDK) whose ``tools/list`` answers carry cache hints (``ttlMs``,
``cacheScope``) and, with ``--shuffle``, list the same tools in another order on every call
(what breaks a client's prompt cache)."""

from __future__ import annotations

import sys

from mcp.server.caching import CacheHint
from mcp.server.mcpserver import MCPServer
from mcp_types import Tool


class ReorderingServer(MCPServer):
    shuffle = False
    calls = 0

    async def list_tools(self) -> list[Tool]:
        tools = await super().list_tools()
        if not self.shuffle:
            return tools
        self.calls += 1
        turn = self.calls % len(tools)
        return tools[turn:] + tools[:turn]


server = ReorderingServer("km-test-reorder", cache_hints={"tools/list": CacheHint(ttl_ms=0, scope="public")})


@server.tool()
def alpha() -> str:
    """The first tool."""
    return "a"


@server.tool()
def beta() -> str:
    """The second tool."""
    return "b"


@server.tool()
def gamma() -> str:
    """The third tool."""
    return "c"


if __name__ == "__main__":
    server.shuffle = "--shuffle" in sys.argv
    server.run()
