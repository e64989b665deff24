"""``km proxy`` with real servers and real clients: the results through km equal the results direct,
and the store holds every message, correlated, with the session's transport.

Servers: ``@modelcontextprotocol/server-everything`` (streamableHttp and sse modes) and the Python
SDK's server (tests/http/servers/upstream.py: stateless 2026-07-28, bearer auth, TLS, legacy SSE
with an absolute endpoint). Clients: the Python SDK (``streamable_http_client``, ``sse_client``)
and the MCP Inspector's CLI mode.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_helpers import (
    COOKIE_SECRET,
    SECRET_TOKEN,
    StartProxy,
    comparable,
    db_bytes,
    everything_scenario,
    free_port,
    inspector,
    requests_answered,
    start_upstream,
    upstream_scenario,
)

from kilometers.proxy.sse import SSEParser

from km_helpers import agents_under, km_events, km_sessions, wait_until

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def by_method(events: list[dict[str, Any]], method: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [e for e in events if e["method"] == method and (kind is None or e["kind"] == kind)]


def read_sse(response: httpx.Response, until: Any = None) -> list[Any]:
    """Parse an SSE response's events until ``until(event)`` is true (or the stream ends)."""
    parser = SSEParser()
    events = []
    for chunk in response.iter_raw():
        for event in parser.feed(chunk):
            events.append(event)
            if until is not None and until(event):
                return events
    return events


# -- Streamable HTTP ----------------------------------------------------------------------------------


def test_streamable_http_through_km_equals_direct(
    everything_http: str, km_proxy: StartProxy, km_home: Path
) -> None:
    km = km_proxy(everything_http)
    direct = asyncio.run(everything_scenario(everything_http))
    through = asyncio.run(everything_scenario(km.url(everything_http)))
    assert comparable(through) == comparable(direct)
    assert [p[:2] for p in through["progress"]] == [(1.0, 3.0), (2.0, 3.0), (3.0, 3.0)]
    # progress streamed as it happened, not buffered until the answer (steps are 0.5 s apart)
    assert through["progress"][0][2] < through["progress"][-1][2] - 0.6

    # the client's DELETE at the end closes the session in the records while km keeps running
    def ended() -> dict[str, Any] | None:
        sessions = km_sessions(km_home)
        return sessions[0] if len(sessions) == 1 and sessions[0]["ended_at"] else None

    session = wait_until(ended)
    assert session["transport"] == "streamable_http"
    assert session["command"] == [everything_http]
    assert session["cwd"] == "127.0.0.1"  # the client's address (until the schema has its own field)
    assert session["server"]["name"] == "mcp-servers/everything"
    assert session["client"]["name"]
    km.stop()

    events = km_events(km_home)
    requests_answered(events)
    progress = by_method(events, "notifications/progress")
    assert len(progress) == 3 and {e["direction"] for e in progress} == {"server_to_client"}
    for method in ("sampling/createMessage", "elicitation/create"):
        request, answer = by_method(events, method)
        assert (request["direction"], answer["direction"]) == ("server_to_client", "client_to_server")
        assert answer["request_event_id"] == request["id"] and answer["latency_ms"] > 0
    call = by_method(events, "tools/call", "response")
    assert {e["tool"] for e in call} >= {"echo", "get-sum", "trigger-long-running-operation"}
    assert session["event_count"] <= len(events)


def test_session_deleted_by_the_client(everything_http: str, km_proxy: StartProxy, km_home: Path) -> None:
    km = km_proxy(everything_http)
    outcomes = []
    for url in (everything_http, km.url(everything_http)):
        with httpx.Client(timeout=30) as client:
            r = client.post(url, json=INIT, headers=MCP_HEADERS)
            assert r.status_code == 200
            sid = r.headers["mcp-session-id"]
            headers = {**MCP_HEADERS, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"}
            deleted = client.delete(url, headers=headers)
            after = client.post(
                url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers
            )
            outcomes.append((deleted.status_code, after.status_code, after.json()))
    assert outcomes[1] == outcomes[0]
    assert outcomes[0][0] == 200 and outcomes[0][1] >= 400

    def sessions_ended() -> list[dict[str, Any]] | None:
        sessions = km_sessions(km_home)
        return sessions if sessions and all(s["ended_at"] for s in sessions) else None

    sessions = wait_until(sessions_ended)  # ended by the DELETE, not by km stopping
    deleted_session = [s for s in sessions if s["client"] and s["client"]["name"] == "raw"]
    assert deleted_session and deleted_session[0]["transport"] == "streamable_http"


def test_last_event_id_resumption_passes_through(
    everything_http: str, km_proxy: StartProxy, km_home: Path
) -> None:
    """A client resumes with Last-Event-ID: the server replays what came after that event, through km
    byte for byte as direct, and km records the replayed answer once."""
    km = km_proxy(everything_http)
    replays = []
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call"}
    call["params"] = {"name": "echo", "arguments": {"message": "again"}}

    def answers(id_: int) -> Any:
        return lambda e: f'"id":{id_}'.encode() in e.data

    for url in (everything_http, km.url(everything_http)):
        with httpx.Client(timeout=30) as client:
            with client.stream("POST", url, json=INIT, headers=MCP_HEADERS) as stream:
                init = read_sse(stream, until=answers(1))[-1]
                sid = stream.headers["mcp-session-id"]
            assert init.id, "server-everything gives its events ids (it has an event store)"
            headers = {**MCP_HEADERS, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"}
            client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
            with client.stream("POST", url, json=call, headers=headers) as stream:
                answer = read_sse(stream, until=answers(2))[-1]
            # resume after the initialize answer: the server replays the echo answer
            resume = {**headers, "Accept": "text/event-stream", "Last-Event-ID": init.id}
            with client.stream("GET", url, headers=resume) as stream:
                assert stream.status_code == 200
                replayed = read_sse(stream, until=answers(2))[-1]
            assert (replayed.data, replayed.id) == (answer.data, answer.id)
            replays.append(replayed.data)
            client.delete(url, headers=headers)
    assert replays[0] == replays[1]
    km.stop()
    echo_answers = by_method(km_events(km_home), "tools/call", "response")
    assert len(echo_answers) == 1 and echo_answers[0]["latency_ms"] is not None


def test_stateless_2026_protocol_through_km_equals_direct(
    stateless_upstream: str, km_proxy: StartProxy, km_home: Path
) -> None:
    km = km_proxy(stateless_upstream)
    direct = asyncio.run(upstream_scenario(stateless_upstream))
    through = asyncio.run(upstream_scenario(km.url(stateless_upstream)))
    assert through == direct
    assert through["protocol"] == "2026-07-28"  # with Mcp-Method / Mcp-Name / Mcp-Param-* headers
    assert through["regional"]["content"][0]["text"] == "eu-west:hi"

    # two other clients (other User-Agents) on the same address: their own sessions
    for agent in ("agent-a/1", "agent-b/1"):
        with httpx.Client(timeout=30, headers={"User-Agent": agent}) as client:
            r = client.post(km.url(stateless_upstream), json=INIT, headers=MCP_HEADERS)
            assert r.status_code == 200 and "mcp-session-id" not in r.headers
    km.stop()
    sessions = km_sessions(km_home)
    assert len(sessions) == 3
    assert {s["transport"] for s in sessions} == {"streamable_http"}
    assert all(s["ended_at"] for s in sessions)  # closed when km stopped
    sdk = [s for s in sessions if s["protocol_version"] == "2026-07-28"]
    assert len(sdk) == 1
    events = [e for e in km_events(km_home) if e["session_id"] == sdk[0]["id"]]
    requests_answered(events)
    assert len(by_method(events, "notifications/progress")) == 3
    assert {e["tool"] for e in by_method(events, "tools/call", "response")} == {
        "echo",
        "add",
        "regional",
        "slow",
    }


def test_oauth_401_metadata_pass_through_and_credentials_are_never_stored(
    auth_upstream: str, km_proxy: StartProxy, km_home: Path
) -> None:
    km = km_proxy(auth_upstream)
    origin = auth_upstream.rsplit("/", 1)[0]
    seen = []
    for url, base in ((auth_upstream, origin), (km.url(auth_upstream), km.origin)):
        with httpx.Client(timeout=30) as client:
            refused = client.post(url, json=INIT, headers=MCP_HEADERS)
            metadata = client.get(base + "/.well-known/oauth-protected-resource")
            seen.append(
                (refused.status_code, refused.headers["www-authenticate"], refused.content, metadata.json())
            )
    assert seen[1] == seen[0]
    assert seen[0][0] == 401 and "resource_metadata=" in seen[0][1]

    headers = {"Authorization": f"Bearer {SECRET_TOKEN}"}
    direct = asyncio.run(upstream_scenario(auth_upstream, mode="legacy", headers=headers))
    through = asyncio.run(upstream_scenario(km.url(auth_upstream), mode="legacy", headers=headers))
    assert through == direct
    km.stop()
    stored = db_bytes(km_home)
    assert b"hello km" in stored  # the messages are there...
    assert SECRET_TOKEN.encode() not in stored  # ...the bearer token is not
    assert COOKIE_SECRET.encode() not in stored  # ...nor the cookie the server set and the client sent back
    sdk = [s["id"] for s in km_sessions(km_home) if s["client"] and s["client"]["name"] != "raw"]
    assert len(sdk) == 1
    requests_answered([e for e in km_events(km_home) if e["session_id"] == sdk[0]])


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "km test upstream")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_tls_upstream(tmp_path: Path, km_proxy: StartProxy, km_home: Path) -> None:
    cert, key = _self_signed(tmp_path)
    proc, port = start_upstream("--certfile", str(cert), "--keyfile", str(key))
    try:
        upstream = f"https://127.0.0.1:{port}/mcp"
        km = km_proxy(upstream, "--upstream-ca", str(cert))
        assert km.origin.startswith("http://127.0.0.1:")  # the listener stays plain HTTP on loopback
        direct = asyncio.run(upstream_scenario(upstream, mode="legacy", verify=str(cert)))
        through = asyncio.run(upstream_scenario(km.url(upstream), mode="legacy"))
        assert through == direct
        km.stop()
        (session,) = km_sessions(km_home)
        assert session["command"] == [upstream]
    finally:
        proc.stop()


# -- legacy HTTP+SSE ------------------------------------------------------------------------------------


def test_legacy_sse_through_km_equals_direct(
    everything_sse: str, km_proxy: StartProxy, km_home: Path
) -> None:
    km = km_proxy(everything_sse)
    direct = asyncio.run(everything_scenario(everything_sse, sse=True))
    through = asyncio.run(everything_scenario(km.url(everything_sse), sse=True))
    assert comparable(through) == comparable(direct)
    assert through["progress"][0][2] < through["progress"][-1][2] - 0.6  # streamed, not buffered

    def ended() -> dict[str, Any] | None:
        sessions = km_sessions(km_home)
        return sessions[0] if len(sessions) == 1 and sessions[0]["ended_at"] else None

    session = wait_until(ended)  # a legacy session ends with its SSE stream
    assert session["transport"] == "sse"
    assert session["command"] == [everything_sse]
    km.stop()
    events = km_events(km_home)
    requests_answered(events)
    assert len(by_method(events, "notifications/progress")) == 3
    assert len(by_method(events, "sampling/createMessage")) == 2


def test_legacy_sse_absolute_endpoint_is_rewritten(km_proxy: StartProxy, km_home: Path) -> None:
    proc, port = start_upstream("--transport", "sse", "--absolute-endpoint")
    try:
        upstream = f"http://127.0.0.1:{port}/sse"
        km = km_proxy(upstream)
        endpoints = []
        for url in (upstream, km.url(upstream)):
            with (
                httpx.Client(timeout=30) as client,
                client.stream("GET", url, headers={"Accept": "text/event-stream"}) as stream,
            ):
                endpoints.append(read_sse(stream, until=lambda e: e.event == "endpoint")[0].text)
        assert endpoints[0].startswith(f"http://127.0.0.1:{port}/messages/?session_id=")
        assert endpoints[1].startswith(km.origin + "/messages/?session_id=")
        # the SDK's SSE client refuses an endpoint on another origin: it only works if km rewrote it
        direct = asyncio.run(upstream_scenario(upstream, mode="legacy", sse=True))
        through = asyncio.run(upstream_scenario(km.url(upstream), mode="legacy", sse=True))
        assert through == direct
        km.stop()
        sessions = [s for s in km_sessions(km_home) if s["event_count"]]
        assert len(sessions) == 1 and sessions[0]["transport"] == "sse"
    finally:
        proc.stop()


# -- policy -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
def test_blocked_tool_call_is_answered_with_a_jsonrpc_error(
    transport: str,
    everything_http: str,
    everything_sse: str,
    km_proxy: StartProxy,
    km_home: Path,
    tmp_path: Path,
) -> None:
    """Policy block mode (the same policy file as for km monitor): the refused call never reaches
    the server; the client gets the error in the POST's answer (Streamable HTTP) or on the
    session's SSE stream (legacy SSE)."""
    from http_helpers import sdk_target
    from mcp import Client
    from mcp.shared.exceptions import MCPError

    policy = tmp_path / "policy.toml"
    policy.write_text('mode = "block"\ndeny_tools = ["ech?", "get-env"]\n')
    upstream = everything_http if transport == "streamable_http" else everything_sse
    km = km_proxy(upstream, "--policy", str(policy))

    async def scenario() -> tuple[str, dict[str, Any]]:
        async with Client(sdk_target(km.url(upstream), sse=transport == "sse"), mode="legacy") as client:
            with pytest.raises(MCPError) as refused:
                await client.call_tool("echo", {"message": "should not reach the server"})
            allowed = await client.call_tool("get-sum", {"a": 1, "b": 2})
            return str(refused.value), allowed.model_dump()

    refusal, allowed = asyncio.run(scenario())
    assert "Blocked by km policy" in refusal and "echo" in refusal
    assert "is 3" in allowed["content"][0]["text"]
    km.stop()
    events = km_events(km_home)
    requests_answered(events)
    request, answer = by_method(events, "tools/call")[:2]
    assert request["tool"] == "echo" and answer["kind"] == "error"
    assert answer["error"]["code"] == -32001 and answer["request_event_id"] == request["id"]
    assert "policy.blocked" in {f["rule"] for f in answer["risk"]["findings"]}
    assert {s["transport"] for s in km_sessions(km_home)} == {transport}
    assert agents_under(km_home), "a blocking policy decides in km proxy's process; the agent records"


def test_secrets_are_redacted_before_they_are_stored(
    everything_http: str, km_proxy: StartProxy, km_home: Path
) -> None:
    """The security stage of km monitor runs on HTTP sessions too: findings, and redaction before
    anything is stored."""
    from mcp import Client

    secret = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    km = km_proxy(everything_http)

    async def scenario() -> str:
        async with Client(km.url(everything_http), mode="legacy") as client:
            result = await client.call_tool("echo", {"message": f"token {secret}"})
            return str(result.content[0].text)  # type: ignore[union-attr]

    assert secret in asyncio.run(scenario())  # forwarded unchanged
    km.stop()
    assert secret.encode() not in db_bytes(km_home)  # stored redacted
    call = by_method(km_events(km_home), "tools/call", "request")[0]
    assert "secret.github_token" in {f["rule"] for f in call["risk"]["findings"]}


def test_payload_limit_applies_to_what_is_stored_not_to_what_is_forwarded(
    everything_http: str, km_proxy: StartProxy, km_home: Path
) -> None:
    from mcp import Client

    km = km_proxy(everything_http, "--payload-limit", "300")
    long = "x" * 5000

    async def scenario() -> str:
        async with Client(km.url(everything_http), mode="legacy") as client:
            result = await client.call_tool("echo", {"message": long})
            return str(result.content[0].text)  # type: ignore[union-attr]

    assert asyncio.run(scenario()) == f"Echo: {long}"
    km.stop()
    request, answer = by_method(km_events(km_home), "tools/call")
    assert request["truncated"] and answer["truncated"]
    assert request["size_bytes"] > 5000 and answer["latency_ms"] is not None


# -- errors -----------------------------------------------------------------------------------------------


def test_unreachable_upstream_gives_a_clear_error(km_proxy: StartProxy, km_home: Path) -> None:
    upstream = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens there
    km = km_proxy(upstream)
    r = httpx.post(km.url(upstream), json=INIT, headers=MCP_HEADERS, timeout=30)
    assert r.status_code == 502
    error = r.json()["error"]
    assert "cannot reach the upstream server" in error["message"] and upstream in error["message"]
    km.stderr.wait_for(lambda data: b"cannot reach the upstream server" in data, timeout=30)
    km.stop()
    (answer,) = [e for e in km_events(km_home) if e["kind"] == "error"]
    assert answer["method"] == "initialize" and answer["latency_ms"] is not None


def test_km_proxy_refuses_a_bad_upstream_url(km_home: Path) -> None:
    import subprocess

    from km_helpers import KM, km_env

    proc = subprocess.run(
        [KM, "proxy", "--upstream", "ftp://example.com/"],
        env=km_env(km_home),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2 and b"http:// or https://" in proc.stderr


# -- a second client: the MCP Inspector's CLI ------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_inspector_cli_through_km_equals_direct(
    transport: str, everything_http: str, everything_sse: str, km_proxy: StartProxy, km_home: Path
) -> None:
    upstream = everything_http if transport == "http" else everything_sse
    km = km_proxy(upstream)
    calls = [
        ("--method", "tools/list"),
        ("--method", "tools/call", "--tool-name", "echo", "--tool-arg", "message=from inspector"),
        ("--method", "tools/call", "--tool-name", "get-sum", "--tool-arg", "a=20", "b=22"),
        ("--method", "prompts/get", "--prompt-name", "simple-prompt"),
    ]
    for call in calls:
        direct = inspector(upstream, "--transport", transport, *call)
        through = inspector(km.url(upstream), "--transport", transport, *call)
        assert through == direct, call
    km.stop()
    sessions = km_sessions(km_home)
    assert len(sessions) == len(calls)  # the CLI opens one session per run
    assert {s["transport"] for s in sessions} == {"streamable_http" if transport == "http" else "sse"}
    events = km_events(km_home)
    requests_answered(events)
    assert {e["tool"] for e in by_method(events, "tools/call", "response")} == {"echo", "get-sum"}
