"""A real MCP 2026-07-28 server written with the `mcp` SDK: a tool that asks for input through a
multi-round-trip request (``input_required`` with ``inputRequests`` and an opaque
``requestState``), and a tool that changes the tool list (a ``subscriptions/listen`` event)."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ElicitRequest, ElicitRequestFormParams, InputRequiredResult

server = MCPServer("km-test-mrtr")
STATE = "mrtr-state-secret-"
"""The start of the requestState the weather tool hands out (what km must not store)."""


@server.tool()
async def weather(ctx: Context) -> str | InputRequiredResult:
    """Asks which city (first round), then which unit (second round), then answers."""
    answers = ctx.input_responses or {}
    state = ctx.request_state or ""
    if "city" not in answers and not state:
        return _ask("city", "Which city?", STATE + "1")
    if state == STATE + "1":
        city = _answer(answers, "city")
        return _ask("unit", "Celsius or Fahrenheit?", STATE + "2:" + city)
    city = state.split(":", 1)[1]
    return f"sunny in {city}, 21 degrees {_answer(answers, 'unit')}"


def _ask(key: str, message: str, state: str) -> InputRequiredResult:
    schema = {"type": "object", "properties": {key: {"type": "string"}}, "required": [key]}
    question = ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema))
    asked = {key: question}
    return InputRequiredResult(input_requests=asked, request_state=state, result_type="input_required")


def _answer(answers: Mapping[str, object], key: str) -> str:
    """The field ``key`` of the elicitation result the client sent for the question ``key``."""
    content = getattr(answers.get(key), "content", None) or {}
    return str(content.get(key, "?"))


@server.tool()
async def touch(ctx: Context) -> str:
    """Announces a change of the tool list to subscribers."""
    await ctx.notify_tools_changed()
    return "touched"


if __name__ == "__main__":
    print("mrtr server starting", file=sys.stderr)
    server.run()
