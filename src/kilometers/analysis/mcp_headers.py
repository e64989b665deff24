"""The 2026-07-28 Streamable HTTP request headers that mirror the JSON-RPC body, and their check.

A client sends ``Mcp-Method`` (the body's ``method``), ``Mcp-Name`` (``params.name`` of
``tools/call`` and ``prompts/get``, ``params.uri`` of ``resources/read``) and ``Mcp-Param-{Name}``
(a ``tools/call`` argument whose schema says ``x-mcp-header: Name``, at any depth: km learns the
marks from the session's ``tools/list`` answers; for a tool it has not seen listed it compares
the top-level argument of that name, case-insensitively, when the body has one) so that
gateways can route and filter without reading the body. A gateway that trusts them while the
server reads the body can be shown one call and pass another: every disagreement between a
header and the body is a ``protocol.header_mismatch`` finding. Values written
``=?base64?{base64}?=`` (non-ASCII text) are decoded before comparing. Only these headers are
kept, never ``Authorization`` or cookies, and the bytes forwarded are not touched.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ..model import Event
from .findings import Finding, Scoring
from .redact import redact

HEADER_MISMATCH_RULE = "protocol.header_mismatch"
HEADER_MISMATCH_SEVERITY = "high"
PARAM_PREFIX = "mcp-param-"
NAME_FIELDS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
"""The methods whose ``Mcp-Name`` header mirrors a field of ``params``, and that field."""
_B64_START, _B64_END = "=?base64?", "?="


def decode_value(raw: bytes) -> str:
    """A header value as text: ``=?base64?...?=`` decoded (UTF-8), anything else as Latin-1.
    A value that claims base64 but is not valid stays as written (and so will not match)."""
    text = raw.decode("latin-1").strip()
    if text.startswith(_B64_START) and text.endswith(_B64_END) and len(text) >= len(_B64_START + _B64_END):
        inner = text[len(_B64_START) : -len(_B64_END)]
        try:
            return base64.b64decode(inner, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return text
    return text


def mcp_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The ``Mcp-Method``, ``Mcp-Name`` and ``Mcp-Param-*`` headers of an ASGI request, by
    lower-case name, values decoded (empty when there are none). A header sent twice is one
    value joined with ``, `` (RFC 9110 §5.3), so it never matches the body: readers that take the
    first copy and readers that take the last would see different calls."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.decode("latin-1").lower()
        if key in ("mcp-method", "mcp-name") or key.startswith(PARAM_PREFIX):
            text = decode_value(value)
            out[key] = f"{out[key]}, {text}" if key in out else text
    return out


def _text(value: Any) -> str:
    """An argument as a client renders it in a header: strings as they are, the rest as JSON
    (``true``, ``42``)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _finding(path: str, message: str) -> dict[str, str]:
    # the message quotes header and body values, which may hold what the payload's redaction
    # removes (an argument carrying a token): it is redacted the same way before it is stored
    return {
        "rule": HEADER_MISMATCH_RULE,
        "severity": HEADER_MISMATCH_SEVERITY,
        "path": path,
        "message": str(redact(message).message),
    }


def header_findings(
    headers: Mapping[str, str], message: Any, marks: Mapping[str, tuple[str, ...]] | None = None
) -> list[dict[str, str]]:
    """Where the headers disagree with one JSON-RPC request (``[]`` when they agree, when there
    are none, or for a batch element, which no single header can describe). ``marks``: the called
    tool's ``x-mcp-header`` names and the argument each marks (from its ``tools/list``
    definition); without them an ``Mcp-Param-X`` header is compared with the top-level argument
    named X, when the body has one."""
    if not headers or not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return []
    found: list[dict[str, str]] = []
    method = message["method"]
    raw_params = message.get("params")
    params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
    claimed = headers.get("mcp-method")
    if claimed is not None and claimed != method:
        found.append(_finding("/method", f"Mcp-Method header {claimed!r} but the body calls {method!r}"))
    name = headers.get("mcp-name")
    field = NAME_FIELDS.get(method)
    if name is not None and field is not None:
        target = params.get(field)
        if name != target:
            found.append(
                _finding(f"/params/{field}", f"Mcp-Name header {name!r} but the body names {target!r}")
            )
    raw_arguments = params.get("arguments")
    arguments: dict[str, Any] = raw_arguments if isinstance(raw_arguments, dict) else {}
    by_name = {str(k).lower(): (k, v) for k, v in arguments.items()}
    for key, value in headers.items():
        if not key.startswith(PARAM_PREFIX):
            continue
        path = (marks or {}).get(key[len(PARAM_PREFIX) :])
        if path is not None:  # the schema says which argument the header mirrors: it must be there
            actual = _at(arguments, path)
            shown = "absent" if actual is _MISSING else repr(_text(actual))
            if actual is _MISSING or _text(actual) != value:
                found.append(
                    _finding(
                        "/params/arguments/" + "/".join(path),
                        f"{key.title()} header {value!r} but the body's argument is {shown}",
                    )
                )
            continue
        arg = by_name.get(key[len(PARAM_PREFIX) :])
        if arg is not None and _text(arg[1]) != value:
            found.append(
                _finding(
                    f"/params/arguments/{arg[0]}",
                    f"{key.title()} header {value!r} but the body's argument is {_text(arg[1])!r}",
                )
            )
    return found


_MISSING = object()


def _at(arguments: Any, path: tuple[str, ...]) -> Any:
    value = arguments
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def schema_marks(tool: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """A tool definition's ``x-mcp-header`` names (lower-cased) and the argument each marks (its
    path in the arguments: the marks may sit at any depth of the input schema)."""
    marks: dict[str, tuple[str, ...]] = {}

    def walk(schema: Any, path: tuple[str, ...]) -> None:
        if not isinstance(schema, dict):
            return
        mark = schema.get("x-mcp-header")
        if isinstance(mark, str) and mark and path:
            marks.setdefault(mark.lower(), path)
        properties = schema.get("properties")
        if isinstance(properties, dict) and len(path) < 16:
            for key, sub in properties.items():
                walk(sub, (*path, str(key)))

    walk(tool.get("inputSchema"), ())
    return marks


class HeaderMarks:
    """One session's tools' ``x-mcp-header`` marks, learned from its ``tools/list`` answers."""

    def __init__(self) -> None:
        self.by_tool: dict[str, dict[str, tuple[str, ...]]] = {}

    def learn(self, event: Event) -> None:
        if event.kind != "response" or event.method != "tools/list":
            return
        message = event.decoded()
        result = (
            message.value.get("result") if message is not None and isinstance(message.value, dict) else None
        )
        tools = result.get("tools") if isinstance(result, dict) else None
        for tool in tools if isinstance(tools, list) else ():
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                self.by_tool[tool["name"]] = schema_marks(tool)


def check_headers(event: Event, headers: Mapping[str, str], marks: HeaderMarks | None = None) -> None:
    """Add the ``protocol.header_mismatch`` findings of a captured request to its risk (scored on
    the one scale; the security stage rescores them with the policy's :class:`Scoring`)."""
    message = event.decoded()
    if message is None or event.kind not in ("request", "notification"):
        return
    event.mcp_headers = dict(headers)
    tool_marks = marks.by_tool.get(event.tool) if marks is not None and event.tool else None
    found = header_findings(headers, message.value, tool_marks)
    if not found:
        return
    previous = (event.risk or {}).get("findings") or []
    findings = [Finding.from_dict(f) for f in previous if isinstance(f, dict)]
    findings.extend(Finding.from_dict(f) for f in found)
    event.risk = Scoring().risk(findings).to_dict()
