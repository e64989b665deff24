"""A real MCP server written with the `mcp` SDK, used by the tests and benchmarks."""

from __future__ import annotations

import os
import sys
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("km-test-echo")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    if os.environ.get("KM_TEST_VARIANT") == "changed":  # a regressed version, for km replay's tests
        return text.upper()
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def fail(reason: str) -> str:
    """Always fails (a tool error, not a protocol error)."""
    raise ValueError(reason)


@server.tool()
def where() -> str:
    """The server's working directory and one environment variable, to check inheritance."""
    return f"{os.getcwd()}|{os.environ.get('KM_TEST_MARKER', '')}"


@server.prompt()
def greeting(name: str) -> str:
    """A greeting prompt."""
    return f"Hello {name}"


@server.resource("test://static")
def static_resource() -> str:
    """A static resource."""
    return "static content"


if __name__ == "__main__":
    print("echo server starting", file=sys.stderr)
    server.run()
    if os.environ.get("KM_TEST_LINGER"):  # busy after its stdin closed, as many servers are
        time.sleep(600)
