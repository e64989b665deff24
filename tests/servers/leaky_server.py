"""An MCP server (mcp SDK) for the redaction tests: the secret in ``$KM_TEST_SECRET`` shows up
outside tool-result text, where km's redaction used to miss it:

- in a resource URI (``config://service?access_token=SECRET``), so in ``resources/read``'s URI;
- in the server's capabilities (an extension's settings) and its info (``websiteUrl``);
- in media content whose ``data``/``blob`` beside a ``mimeType`` is plain text, not base64
  (tool ``get_media``; it also returns a real base64 image that must be kept as it is);
- past 2,000,000 characters of a tool result (tool ``get_big``).
"""

from __future__ import annotations

import base64
import os
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import BlobResourceContents, EmbeddedResource, ImageContent, TextContent

SECRET = os.environ["KM_TEST_SECRET"]
URI = f"config://service?access_token={SECRET}"
IMAGE = base64.b64encode(bytes(range(256)) * 4).decode()
"""A real base64 blob (whose characters include ``ghp_``-like runs by chance or not): kept verbatim."""


server = MCPServer("km-leaky-test", website_url=f"https://example.com/?token={SECRET}")
_options = server._lowlevel_server.create_initialization_options
# capabilities the SDK has no decorator for: an experimental one whose settings hold the secret
server._lowlevel_server.create_initialization_options = lambda *args, **kwargs: _options(  # type: ignore[method-assign]
    experimental_capabilities={"upstream": {"endpoint": f"https://api.example.com/v1?access_token={SECRET}"}}
)


@server.resource(URI, mime_type="text/plain")
def service_config() -> str:
    return "region=eu-west-1"


@server.tool()
def get_media() -> list[Any]:
    """Return an image and a file."""
    return [
        ImageContent(type="image", data=f"not base64: GITHUB_TOKEN={SECRET}", mime_type="image/png"),
        ImageContent(type="image", data=IMAGE, mime_type="image/png"),
        EmbeddedResource(
            type="resource",
            resource=BlobResourceContents(
                uri="file:///tmp/notes.bin", mime_type="application/octet-stream", blob=f"token {SECRET}"
            ),
        ),
    ]


@server.tool()
def get_big() -> list[Any]:
    """Return a very large text with a secret at its end."""
    filler = "lorem ipsum dolor sit amet " * (2_100_000 // 27)
    return [TextContent(type="text", text=f"{filler}\nGITHUB_TOKEN={SECRET}\n")]


if __name__ == "__main__":
    server.run()
