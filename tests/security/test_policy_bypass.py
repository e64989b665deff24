"""Red-team items 1 and 9: the block-mode gate.

Item 1: a denied ``tools/call`` written so that km's gate did not see it (``tools\\/call``,
``tools\\u002fcall``, an invalid byte, a lone surrogate, ``NaN``, inside a batch, with an
unusual content type over HTTP) reached the server and the tool ran; such lines were stored as
``invalid`` with no method, tool or finding. Now the gate decides on the message as a server
reads it and refuses every call it cannot parse strictly; the records show the call.

Item 9: in block mode the last line without a newline was never forwarded (the gate was never
flushed); byte-exactness must not depend on the policy.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_helpers import StartProxy, start_upstream

from kilometers.security import BLOCKED_CODE, Gate, Policy, SecurityStage

from km_helpers import ECHO_SERVER, NODE_BIN, PYTHON, RAW_CAT, KmProcess, km_events

DENY_ECHO = 'mode = "block"\ndeny_tools = ["echo"]\n'
SERVERS = {
    "python": ([PYTHON, ECHO_SERVER], "text"),
    "node": ([str(NODE_BIN / "mcp-server-everything")], "message"),
}
INITIALIZE = (
    b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    b'"capabilities":{},"clientInfo":{"name":"red-team","version":"1"}}}'
)
INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


def call(
    jsonrpc_id: int, arg: str, method: bytes = b'"tools/call"', text: bytes = b"x", extra: bytes = b""
) -> bytes:
    """A tools/call of ``echo`` written as given (raw bytes: escapes and invalid UTF-8 stay)."""
    return b'{"jsonrpc":"2.0","id":%d,"method":%s,"params":{"name":"echo","arguments":{"%s":"%s"%s}}}' % (
        jsonrpc_id,
        method,
        arg.encode(),
        text,
        extra,
    )


# each bypass form: (id, method as written, argument text as written, extra argument)
FORMS = {
    "escaped slash": (1, b'"tools\\/call"', b"slash", b""),
    "unicode escape": (2, b'"tools\\u002fcall"', b"u002f", b""),
    "invalid byte": (3, b'"tools/call"', b"bad\xffbyte", b""),
    "lone surrogate": (4, b'"tools/call"', b"sur\\ud800", b""),
    "NaN": (5, b'"tools/call"', b"nan", b',"n":NaN'),
}
STRICT = {"escaped slash", "unicode escape"}  # valid JSON: recorded as requests


def answers_by_id(km: KmProcess, ids: set[int]) -> dict[int, dict[str, Any]]:
    """Wait until km's stdout holds an answer for each id; return them by id."""
    found: dict[int, dict[str, Any]] = {}

    def complete(data: bytes) -> bool:
        for line in data.splitlines():
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("id") in ids and "method" not in message:
                found[message["id"]] = message
        return set(found) == ids

    km.stdout.wait_for(complete)
    return found


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_no_written_form_of_a_denied_call_reaches_a_stdio_server(
    server: str, run_km: Any, km_home: Path, tmp_path: Path
) -> None:
    command, arg = SERVERS[server]
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_ECHO)
    km = run_km(command, km_args=["--policy", str(policy)])
    km.write(INITIALIZE + b"\n" + INITIALIZED + b"\n")
    answers_by_id(km, {0})
    for jsonrpc_id, method, text, extra in FORMS.values():
        km.write(call(jsonrpc_id, arg, method, text, extra) + b"\n")
    answers = answers_by_id(km, {form[0] for form in FORMS.values()})
    code, out, _ = km.finish()
    assert code == 0
    for name, (jsonrpc_id, *_) in FORMS.items():
        answer = answers[jsonrpc_id]
        assert "result" not in answer, f"{name}: the denied tool ran: {answer}"
        assert answer["error"]["code"] == BLOCKED_CODE, f"{name}: {answer}"
        assert answer["error"]["message"].startswith("Blocked by km policy"), name
    assert b"Echo" not in out and b"structuredContent" not in out  # no echo result at all

    events = km_events(km_home)
    for name, (jsonrpc_id, *_) in FORMS.items():
        [request] = [
            e for e in events if e["direction"] == "client_to_server" and e["jsonrpc_id"] == jsonrpc_id
        ]
        assert (request["method"], request["tool"]) == ("tools/call", "echo"), name
        assert request["kind"] == ("request" if name in STRICT else "invalid"), name
        rules = {f["rule"]: f["severity"] for f in request["risk"]["findings"]}
        rule = "policy.denied_tool" if name in STRICT else "jsonrpc.unparseable_request"
        assert rules.get(rule) == "high", (name, rules)
        [answer] = [
            e for e in events if e["direction"] == "server_to_client" and e["jsonrpc_id"] == jsonrpc_id
        ]
        assert answer["kind"] == "error" and answer["request_event_id"] == request["id"], name
        assert "policy.blocked" in {f["rule"] for f in answer["risk"]["findings"]}, name


def test_a_call_no_parser_reads_is_refused_and_other_lines_pass(tmp_path: Path) -> None:
    """What the gate does with the lines the end-to-end tests cannot show: a notification is
    refused without an answer, case variants of the keys count, a line no parser reads that
    spells tools/call is refused (answered when its id can be read), random bytes pass."""
    policy = Policy.from_dict({"mode": "block", "deny_tools": ["echo"]})
    gate = Gate(policy, SecurityStage(policy).tools_changed, "server")
    assert gate.check(b'{"jsonrpc":"2.0","method":"tools\\/call","params":{"name":"echo"}}') == b""
    assert gate.check(b'{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"Name":"echo"}}')
    assert gate.check(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add"}}') is None
    assert gate.check(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}')  # no name: unchecked
    answer = gate.check(b'{"jsonrpc":"2.0","id":9,"method":"tools\\/call","params":{"name":"add",}}')
    assert answer is not None and json.loads(answer)["id"] == 9  # not JSON at all, yet a call
    assert (
        gate.check(b'{"jsonrpc":"2.0","id":3,"method":"ping","x":"tools\\/call","n":NaN}') is None
    )  # no call
    noise = random.Random(9).randbytes(1 << 16).replace(b"\n", b" ")
    assert gate.check(noise + b"\\") is None
    # the stdio framing: complete lines are decided at once, the last one at the end
    forward, answers = gate.feed(
        b'{"id":1,"method":"ping"}\n{"id":2,"method":"tools/call","params":{"name":"echo"}}'
    )
    assert (forward, answers) == (b'{"id":1,"method":"ping"}\n', [])
    forward, [refused] = gate.flush()
    assert forward == b"" and json.loads(refused)["id"] == 2


# -- item 9: the last line in block mode ------------------------------------------------------------


def _echoed_in_block_mode(run_km: Any, tmp_path: Path, data: bytes) -> bytes:
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_ECHO)
    km = run_km([PYTHON, RAW_CAT], km_args=["--policy", str(policy)])
    km.write(data)
    code, out, _ = km.finish()
    assert code == 0
    return bytes(out)


def test_block_mode_delivers_a_last_line_without_newline(run_km: Any, tmp_path: Path) -> None:
    data = b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n{"jsonrpc":"2.0","id":2,"method":"ping"}'
    assert _echoed_in_block_mode(run_km, tmp_path, data) == data


def test_block_mode_refuses_a_denied_last_line_without_newline(run_km: Any, tmp_path: Path) -> None:
    ping = b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n'
    out = _echoed_in_block_mode(run_km, tmp_path, ping + call(2, "text"))
    [refusal] = [line + b"\n" for line in out.splitlines() if b'"error"' in line]  # km's answer
    answer = json.loads(refusal)
    assert answer["id"] == 2 and answer["error"]["code"] == BLOCKED_CODE
    assert out.replace(refusal, b"", 1) == ping  # the ping echoed; the call never reached the server


def test_block_mode_passes_random_bytes_byte_exact(run_km: Any, tmp_path: Path) -> None:
    data = random.Random(1).randbytes(1 << 20)
    assert _echoed_in_block_mode(run_km, tmp_path, data) == data


# -- km proxy (HTTP) ------------------------------------------------------------------------------


def _post(
    client: httpx.Client, url: str, body: bytes, sid: str | None, ctype: str = "application/json"
) -> httpx.Response:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": ctype}
    if sid:
        headers["Mcp-Session-Id"] = sid
    return client.post(url, content=body, headers=headers)


def _messages(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an answer (JSON body or SSE ``data:`` lines), batches flattened."""
    texts = [response.text]
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        texts = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
    out: list[dict[str, Any]] = []
    for text in texts:
        with contextlib.suppress(ValueError):
            decoded = json.loads(text)
            out.extend(
                m for m in (decoded if isinstance(decoded, list) else [decoded]) if isinstance(m, dict)
            )
    return out


def http_cases(arg: str) -> dict[str, tuple[str, bytes]]:
    """Each bypass form over HTTP: (content type, body); ids 11-16."""
    escaped = b'"tools\\/call"'
    return {
        "escaped slash": ("application/json", call(11, arg, escaped)),
        "invalid byte": ("application/json", call(12, arg, text=b"bad\xffbyte")),
        "batch": (
            "application/json",
            b"[" + call(13, arg, escaped).replace(b"echo", b"add") + b"," + call(14, arg, escaped) + b"]",
        ),
        "content type list": ("text/plain, application/json", call(15, arg)),
        "escaped jsonrpc key": ("application/json", call(16, arg).replace(b'"jsonrpc"', b'"json\\u0072pc"')),
        "NaN": ("application/json", call(17, arg, extra=b',"n":NaN')),
    }


@pytest.fixture(scope="module")
def python_http() -> Iterator[str]:
    """The `mcp` SDK's Streamable HTTP server (tests/http/servers/upstream.py)."""
    proc, port = start_upstream()
    yield f"http://127.0.0.1:{port}/mcp"
    proc.stop()


@pytest.mark.parametrize("server", ["node", "python"])
def test_no_written_form_of_a_denied_call_reaches_an_http_server(
    server: str, request: pytest.FixtureRequest, km_proxy: StartProxy, km_home: Path, tmp_path: Path
) -> None:
    upstream = request.getfixturevalue("everything_http" if server == "node" else "python_http")
    cases = http_cases(SERVERS[server][1])
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_ECHO)
    km = km_proxy(upstream, "--policy", str(policy))
    url = km.url(upstream)
    with httpx.Client(timeout=30) as client:
        init = _post(client, url, INITIALIZE, None)
        assert init.status_code == 200, init.text
        sid = init.headers["mcp-session-id"]
        assert _post(client, url, INITIALIZED, sid).status_code == 202
        responses = {name: _post(client, url, body, sid, ctype) for name, (ctype, body) in cases.items()}
    answers = {name: {m.get("id"): m for m in _messages(r)} for name, r in responses.items()}
    ran = {
        name: r.text for name, r in responses.items() if any("result" in m for m in answers[name].values())
    }
    assert not ran, f"the denied tool ran: {ran}"
    for name, by_id in answers.items():
        for answer in by_id.values():
            assert answer["error"]["code"] == BLOCKED_CODE, (name, answer)
    assert set(answers["batch"]) == {13, 14}  # the whole batch was held back
    assert answers["batch"][13]["error"]["message"].startswith("Not sent")
    km.stop()

    events = km_events(km_home)
    calls = [e for e in events if e["direction"] == "client_to_server" and e["tool"] == "echo"]
    assert sorted(e["jsonrpc_id"] for e in calls) == [11, 12, 14, 15, 16, 17]
    for e in calls:
        rules = {f["rule"] for f in e["risk"]["findings"]}
        assert rules & {"policy.denied_tool", "jsonrpc.unparseable_request"}, e
    blocked = [e for e in events if e["kind"] == "error" and e["error"]["code"] == BLOCKED_CODE]
    assert {e["jsonrpc_id"] for e in blocked} == set(range(11, 18))
