"""The HTTP API's OpenAPI schema, what ``/openapi.json`` serves, without a database or a server:
``python -m kilometers.server.openapi`` prints it, the input of the dashboard's generated
TypeScript types (``make types``; web/scripts/gen-types.mjs writes web/src/api-types.ts)."""

from __future__ import annotations

import sys
from typing import Any

import orjson

from .app import create_app


def schema() -> dict[str, Any]:
    """The schema of the app ``km serve`` and ``km ui`` run (routes do not depend on the database)."""
    return create_app("sqlite://", check_schema=False).openapi()


def main() -> None:
    sys.stdout.buffer.write(orjson.dumps(schema(), option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    main()
