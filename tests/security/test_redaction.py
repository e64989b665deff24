"""Red-team item 8, redaction gaps: a secret must not be stored in clear in any field km keeps.

- a resource URI (``?access_token=ghp_…``), tool and prompt names, string JSON-RPC ids;
- plain text in a media ``data``/``blob`` (only strict base64 is skipped as binary);
- the session's client and server info and capabilities (they were stored before redaction);
- text past the scan bound (2,000,000 characters): not kept, and the event says so;
- object keys (a map keyed by tokens, or by e-mail addresses with personal data redacted);
- the messages and paths of findings (a finding may quote a tool's name, a path a key);
- the team server's backstop (a client with analysis off) on all those columns.

Through ``km monitor`` with real MCP servers (the `mcp` SDK), and the team server on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from mcp.types import Implementation
from sqlalchemy import select

from kilometers.analysis import AnalysisConfig, Analyzer, redact
from kilometers.jsonrpc import Capture
from kilometers.model import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Session
from kilometers.security import Policy, SecurityStage
from kilometers.store.schema import events as events_table
from kilometers.store.schema import sessions as sessions_table

from conftest import Api

ROOT = Path(__file__).resolve().parents[2]
KM = str(Path(sys.executable).parent / "km")
LEAKY = [sys.executable, str(ROOT / "tests" / "servers" / "leaky_server.py")]
GITHUB = "[REDACTED:secret.github_token]"
PARTIAL = "[REDACTED:redaction.partial]"


def _secret() -> str:
    rng = random.Random()
    return "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
    return {**env, "KM_HOME": str(home), **extra}


def _km(home: Path, *args: str) -> str:
    proc = subprocess.run([KM, *args], capture_output=True, text=True, env=_env(home), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _lines(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def _assert_nowhere(home: Path, secret: str) -> None:
    """Not in the store's files, not in any export, not in what the CLI shows."""
    for db_file in home.glob("km.db*"):
        assert secret.encode() not in db_file.read_bytes(), db_file.name
    for args in (
        ("export",),
        ("export", "--format", "csv"),
        ("export", "--format", "har"),
        ("sessions", "--json"),
    ):
        out = _km(home, *args)
        assert out and secret not in out, args
    assert secret not in _km(home, "events", "--json", "--limit", "1000")


def _wait_for_session(home: Path, field: str, timeout: float = 60.0) -> str:
    """``km sessions --json`` once the (only) session has ``field`` set."""
    deadline = time.monotonic() + timeout
    while True:
        out = _km(home, "sessions", "--json")
        if any(s.get(field) for s in _lines(out)) or time.monotonic() > deadline:
            return out
        time.sleep(0.1)


async def _monitor(home: Path, secret: str, work: Any) -> Any:
    params = StdioServerParameters(
        command=KM, args=["monitor", "--name", "leaky", "--", *LEAKY], env=_env(home, KM_TEST_SECRET=secret)
    )
    info = Implementation(name="client", version="1", website_url=f"https://client.example/?t={secret}")
    async with stdio_client(params) as (read, write), ClientSession(read, write, client_info=info) as session:
        await session.initialize()
        return await work(session)


def test_a_secret_in_a_resource_uri_names_and_the_session_is_never_stored(tmp_path: Path) -> None:
    secret = _secret()

    async def work(session: ClientSession) -> Any:
        # while the session runs: the session row must never have held the secret either
        listed = await asyncio.to_thread(_wait_for_session, tmp_path, "capabilities")
        assert secret not in listed and GITHUB in listed
        [resource] = (await session.list_resources()).resources
        read = await session.read_resource(resource.uri)
        # a name carrying a secret: the server refuses it, km must still not keep it
        with pytest.raises(MCPError):
            await session.get_prompt(f"prompt:{secret}")
        # and one as an object key (a map keyed by tokens)
        missing = await session.call_tool(f"tool:{secret}", {"tokens": {secret: "ci"}})
        return str(resource.uri), read, missing

    uri, read, missing = asyncio.run(_monitor(tmp_path, secret, work))
    assert secret in uri and read.contents[0].text == "region=eu-west-1"  # the client got the real bytes
    assert missing.is_error
    _assert_nowhere(tmp_path, secret)

    events = _lines(_km(tmp_path, "events", "--json", "--limit", "1000"))
    [request] = [e for e in events if e["method"] == "resources/read" and e["kind"] == "request"]
    assert request["resource_uri"] == f"config://service?access_token={GITHUB}"
    assert any(f["rule"] == "secret.github_token" for f in request["risk"]["findings"])
    tools = {e["tool"] for e in events if e["method"] == "tools/call"}
    prompts = {e["prompt_name"] for e in events if e["method"] == "prompts/get"}
    assert tools == {f"tool:{GITHUB}"} and prompts == {f"prompt:{GITHUB}"}

    [session] = _lines(_km(tmp_path, "sessions", "--json"))
    assert session["capabilities"]["experimental"]["upstream"]["endpoint"].endswith(f"access_token={GITHUB}")
    assert session["capabilities"]["tools"] == {"listChanged": False}  # the rest is kept as it was
    assert session["server"]["websiteUrl"] == f"https://example.com/?token={GITHUB}"
    assert session["server"]["name"] == "km-leaky-test"
    assert session["client"]["websiteUrl"] == f"https://client.example/?t={GITHUB}"


def test_plain_text_in_media_data_or_blob_is_redacted_real_base64_is_kept(tmp_path: Path) -> None:
    secret = _secret()

    async def work(session: ClientSession) -> Any:
        return await session.call_tool("get_media", {})

    result = asyncio.run(_monitor(tmp_path, secret, work))
    assert secret in result.content[0].data  # traffic unchanged
    _assert_nowhere(tmp_path, secret)
    [reply] = [
        e for e in _lines(_km(tmp_path, "events", "--json", "--tool", "get_media")) if e["kind"] == "response"
    ]
    text, image, blob = reply["payload"]["result"]["content"]
    assert text["data"] == f"not base64: GITHUB_TOKEN={GITHUB}"
    assert blob["resource"]["blob"] == f"token {GITHUB}"
    assert image["data"] == base64.b64encode(bytes(range(256)) * 4).decode()  # binary: untouched
    paths = {f["path"] for f in reply["risk"]["findings"] if f["rule"] == "secret.github_token"}
    assert {"/result/content/0/data", "/result/content/2/resource/blob"} <= paths
    assert not any("/1/" in p for p in paths)


def test_text_past_the_scan_bound_is_not_kept_and_the_event_says_so(tmp_path: Path) -> None:
    secret = _secret()

    async def work(session: ClientSession) -> Any:
        return await session.call_tool("get_big", {})

    result = asyncio.run(_monitor(tmp_path, secret, work))
    assert result.content[0].text.rstrip().endswith(secret)
    _assert_nowhere(tmp_path, secret)
    [reply] = [
        e for e in _lines(_km(tmp_path, "events", "--json", "--tool", "get_big")) if e["kind"] == "response"
    ]
    text = reply["payload"]["result"]["content"][0]["text"]
    assert text.startswith("lorem ipsum") and text.endswith(PARTIAL)
    assert len(text) < 2_000_000 + len(PARTIAL)  # nothing past the bound is kept
    assert reply["truncated"] is True
    [finding] = [f for f in reply["risk"]["findings"] if f["rule"] == "redaction.partial"]
    assert finding["path"] == "/result/content/0/text" and "2,000,000" in finding["message"]
    assert reply["risk"]["level"] in ("medium", "high", "critical")


@pytest.mark.parametrize(
    "tail",
    [
        "QUJ D==",  # whitespace
        "QUJDRA",  # length not a multiple of 4
        "QU=JDRA",  # padding inside
        "QU-_DRA",  # base64url characters
        "QUJD===",  # too much padding
    ],
)
def test_only_strict_base64_media_is_skipped(tail: str) -> None:
    """Bad base64 beside a mimeType is scanned as text (a secret in it is redacted)."""
    # an AWS key id is made of base64 characters: only the tail decides whether this is base64
    pick = random.Random(7).choice  # fixed: an unseeded key made this test flaky (see note)
    key = "AKIA" + "".join(pick("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    message = {"content": [{"type": "image", "mimeType": "image/png", "data": f"{key}/{tail}"}]}
    assert redact(message).message["content"][0]["data"] == f"[REDACTED:secret.aws_access_key]/{tail}"
    # strict base64 (the same with a valid tail) is binary: never scanned, never changed
    media = {"content": [{"type": "image", "mimeType": "image/png", "data": f"{key}/QUJDRAA"}]}
    assert redact(media).changed is False


def test_a_secret_cut_by_the_scan_bound_is_not_half_kept() -> None:
    secret = _secret()
    config = AnalysisConfig(max_scan_chars=1000)
    for inside in (1, 5, 20, 39):  # the bound falls inside the token, after this many characters
        text = "x" * (1000 - inside - 1) + " " + secret + " tail"
        result = redact({"text": text}, config)
        kept = result.message["text"]
        assert kept.endswith(PARTIAL) and secret[:4] not in kept
        assert [f.rule for f in result.findings] == ["redaction.partial"]
    # a rule turned off (or no redaction at all) keeps the text, and says it was not scanned
    off = redact({"text": "y" * 2000 + secret}, AnalysisConfig(max_scan_chars=1000, redact_secrets=False))
    assert off.changed is False and "kept unscanned" in off.findings[0].message


def _batch(secret: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A session from a client with analysis off: captured, never redacted (no risk either)."""
    session = Session(command=["server"], cwd=f"/home/dev/{secret}", name="leaky")
    cap = Capture(session)
    uri = f"config://service?access_token={secret}"
    big = "lorem ipsum " * (2_100_000 // 12) + f"GITHUB_TOKEN={secret}"
    lines = [
        (CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                            "params": {"clientInfo": {"name": "c", "url": f"https://c/?t={secret}"}}}),
        (SERVER_TO_CLIENT, {"jsonrpc": "2.0", "id": 0, "result": {
            "serverInfo": {"name": "s", "websiteUrl": f"https://s/?token={secret}"},
            "protocolVersion": "2025-11-25",
            "capabilities": {"experimental": {"upstream": {"endpoint": f"https://api/?access_token={secret}"}}},
        }}),
        (CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": uri}}),
        (SERVER_TO_CLIENT, {"jsonrpc": "2.0", "id": 1, "result": {"contents": [{"uri": uri, "text": "ok"}]}}),
        (CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": f"req:{secret}", "method": "tools/call",
                            "params": {"name": f"tool:{secret}", "arguments": {"tokens": {secret: "ci"}}}}),
        (CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": 3, "method": "prompts/get",
                            "params": {"name": f"prompt:{secret}"}}),
        (SERVER_TO_CLIENT, {"jsonrpc": "2.0", "id": 3, "result": {"messages": [{"role": "user",
                            "content": {"type": "image", "mimeType": "image/png", "data": f"x {secret}"}}]}}),
        (CLIENT_TO_SERVER, {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                            "params": {"name": "get_big", "arguments": {}}}),
        (SERVER_TO_CLIENT, {"jsonrpc": "2.0", "id": 4,
                            "result": {"content": [{"type": "text", "text": big}]}}),
    ]  # fmt: skip
    events = []
    for i, (direction, message) in enumerate(lines):
        events += cap.feed(direction, orjson.dumps(message) + b"\n", session.started_ns + i * 10**6)
    return session.to_dict() | {"host": f"dev.{secret}"}, [e.to_dict() for e in events]


def test_the_team_server_backstop_redacts_every_column(api: Api) -> None:
    secret = _secret()
    _, ingest_key, read_key = api.org_with_keys("acme")
    session, events = _batch(secret)
    assert secret in orjson.dumps(session).decode() and all(e["risk"]["findings"] == [] for e in events)
    r = api.client.post(
        "/api/v1/events/batch",
        json={"session": session, "events": events},
        headers={"Authorization": f"Bearer {ingest_key}"},
    )
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text
    with api.engine.connect() as conn:
        # rows as tuples: a Row's repr shortens long values
        stored = str([tuple(r) for t in (events_table, sessions_table) for r in conn.execute(select(t))])
    assert secret not in stored and GITHUB in stored

    h = {"Authorization": f"Bearer {read_key}"}
    s = api.client.get(f"/api/v1/sessions/{session['id']}", headers=h).json()
    assert s["capabilities"]["experimental"]["upstream"]["endpoint"] == f"https://api/?access_token={GITHUB}"
    assert s["server"]["websiteUrl"] == f"https://s/?token={GITHUB}" and s["server"]["name"] == "s"
    assert s["client"]["url"] == f"https://c/?t={GITHUB}" and s["cwd"] == f"/home/dev/{GITHUB}"
    by_id = {e["id"]: api.client.get(f"/api/v1/events/{e['id']}", headers=h).json() for e in events}
    read = by_id[events[2]["id"]]
    assert read["resource_uri"] == f"config://service?access_token={GITHUB}"
    assert any(f["rule"] == "secret.github_token" for f in read["risk"]["findings"])
    call = by_id[events[4]["id"]]
    assert call["tool"] == f"tool:{GITHUB}" and call["jsonrpc_id"] == f"req:{GITHUB}"
    assert by_id[events[5]["id"]]["prompt_name"] == f"prompt:{GITHUB}"
    media = by_id[events[6]["id"]]["payload"]["result"]["messages"][0]["content"]
    assert media["data"] == f"x {GITHUB}"
    big = by_id[events[8]["id"]]
    assert big["truncated"] is True and big["payload"]["result"]["content"][0]["text"].endswith(PARTIAL)
    assert [f["rule"] for f in big["risk"]["findings"]] == ["redaction.partial"]
    assert big["risk"]["level"] == "medium"


RM_TOKEN = "ghp_fKKILQxQVn3K4PL4Xnoj4fS8pjRMPe3GsfMr"
"""A token the danger detector reads as ``rm`` (``…pjRMPe…``): its finding names the tool."""


def test_a_findings_message_never_quotes_a_secret_it_found() -> None:
    """The analysis redacts what its findings' messages quote (a tool's name), as it does the message."""
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": f"tool:{RM_TOKEN}"}}
    kept = Analyzer().process(CLIENT_TO_SERVER, "request", "tools/call", f"tool:{RM_TOKEN}", call)
    assert any(RM_TOKEN in f.message for f in kept.risk.findings)  # without redaction: as it was
    done = Analyzer().process(
        CLIENT_TO_SERVER, "request", "tools/call", f"tool:{RM_TOKEN}", call, redact=True
    )
    danger = [f for f in done.risk.findings if f.rule == "danger.destructive_tool"]
    assert danger and f"tool 'tool:{GITHUB}'" in danger[0].message
    assert RM_TOKEN not in str(done.risk.findings) and RM_TOKEN not in str(done.redacted)


def test_capture_and_plugin_findings_are_redacted_before_they_are_stored() -> None:
    """Findings the analysis did not make (capture's, a plugin's) are redacted by the stage."""
    session = Session(command=["server"], cwd="/tmp", name="s")
    cap = Capture(session)
    line = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t ' + RM_TOKEN.encode() + b'"}'
    events = cap.feed(CLIENT_TO_SERVER, line + b"\n", session.started_ns)  # a trailing brace missing
    assert events and RM_TOKEN in str(events[0].risk)  # capture quotes the tool it recovered
    stage = SecurityStage(Policy())
    stage.detectors = [lambda *a: [{"rule": "plugin.x", "severity": "low", "message": f"saw {RM_TOKEN}"}]]
    stage.analyzer = Analyzer(stage.policy.analysis)
    stage.process(session, events)
    rules = {f["rule"] for f in events[0].risk["findings"]}
    assert {"jsonrpc.unparseable_request", "plugin.x"} <= rules, rules
    assert RM_TOKEN not in str(events[0].risk) and GITHUB in str(events[0].risk)


def test_the_team_server_redacts_findings_a_client_or_its_own_analysis_wrote(api: Api) -> None:
    _, ingest_key, _ = api.org_with_keys("acme")
    session = Session(command=["server"], cwd="/tmp", name="s")
    cap = Capture(session)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": f"tool:{RM_TOKEN}"}}
    events = [e.to_dict() for e in cap.feed(CLIENT_TO_SERVER, orjson.dumps(call) + b"\n", session.started_ns)]
    finding = {"rule": "plugin.x", "severity": "low", "path": "", "message": f"saw {RM_TOKEN}"}
    events[0]["risk"] = {"score": 10, "level": "low", "findings": [finding]}
    r = api.client.post(
        "/api/v1/events/batch",
        json={"session": session.to_dict(), "events": events},
        headers={"Authorization": f"Bearer {ingest_key}"},
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    with api.engine.connect() as conn:
        stored = str([tuple(r) for r in conn.execute(select(events_table.c.findings, events_table.c.tool))])
    assert RM_TOKEN not in stored and "danger.destructive_tool" in stored and f"saw {GITHUB}" in stored


def test_a_secret_or_an_address_used_as_an_object_key_is_redacted() -> None:
    secret, other = _secret(), _secret()
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {
            "tokens": {secret: {"note": "password=hunter2hunter2"}, other: "ci", GITHUB: "a literal"},
            "alice@example.com": {"role": "admin"},
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "additionalProperties": False,
        },
    }
    before = orjson.dumps(message)
    for result in (
        redact(message, AnalysisConfig(redact_pii=True)),
        Analyzer(AnalysisConfig(redact_pii=True)).process(
            SERVER_TO_CLIENT, "response", "tools/call", None, message, redact=True
        ),
    ):
        out = result.message if hasattr(result, "message") else result.redacted
        findings = result.findings if hasattr(result, "findings") else result.risk.findings
        assert orjson.dumps(message) == before  # the input is not modified
        text = orjson.dumps(out).decode() + str(findings)
        assert secret not in text and other not in text and "alice@example.com" not in text
        tokens = out["result"]["tokens"]
        # two tokens and a key that already read like one: three members, none overwritten
        note = {"note": "password=[REDACTED:secret.generic_credential]"}
        assert sorted(map(str, tokens.values())) == sorted(map(str, ["ci", "a literal", note]))
        assert tokens[GITHUB] == "a literal"
        assert out["result"]["[REDACTED:pii.email]"] == {"role": "admin"}
        assert out["result"]["$schema"] == message["result"]["$schema"]  # keys that are names stay
        rules = {(f.rule, f.path) for f in findings}
        assert ("secret.github_token", f"/result/tokens/{GITHUB}") in rules
        assert ("pii.email", "/result/[REDACTED:pii.email]") in rules
        assert any(
            f.rule == "secret.generic_credential" and f.path.endswith(f"{GITHUB}/note") for f in findings
        )
    # a token keyed by itself: one finding, not two that read the same
    both = redact({"env": {secret: secret}})
    assert [(f.rule, f.path) for f in both.findings] == [("secret.github_token", f"/env/{GITHUB}")]
    # keys are read each on its own: "--password" is not a flag naming the key after it
    assert redact({"flags": {"--password": 1, "Xk9fQ2mZ7pL4vB8nTw3abc": 2}}).changed is False
    # without personal-data redaction the address is kept (and reported by the analysis)
    kept = redact(message)
    assert "alice@example.com" in kept.message["result"] and secret not in str(kept.message)
