"""One scale decides every level: with a policy's own thresholds, the level stored by the security
stage (the analysis's findings and km's own, such as a blocked call), `km events --risk`,
`km findings --risk`, `km sessions`, and the team server's events and sessions all agree."""

from __future__ import annotations

import json
import random
import string
import subprocess
from pathlib import Path

from sync_helpers import RPC_SERVER, client_env, km_ok, local_sessions

from km_helpers import KM, PYTHON, km_events, km_json

TOKEN = "ghp_" + "".join(random.Random(7).choices(string.ascii_letters + string.digits, k=36))
POLICY = """
mode = "block"
deny_tools = ["delete_*"]

[analysis]
thresholds = {high = 95, critical = 99}
"""


def _conversation() -> bytes:
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"clientInfo": {"name": "scale-test", "version": "1"}, "capabilities": {}}}  # fmt: skip
    secret = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
              "params": {"name": "echo", "arguments": {"token": TOKEN}}}  # fmt: skip
    blocked = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "delete_all", "arguments": {}}}  # fmt: skip
    return b"".join(json.dumps(m).encode() + b"\n" for m in (init, secret, blocked))


def test_the_policy_scale_decides_every_level(km_home: Path, team_server) -> None:  # type: ignore[no-untyped-def]
    server = team_server()
    policy = km_home / "policy.toml"
    policy.write_text(POLICY)
    env = client_env(km_home, server, KM_POLICY=str(policy))
    result = subprocess.run(
        [KM, "monitor", "--name", "scale", "--", PYTHON, RPC_SERVER],
        input=_conversation(),
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    answers = {a["id"]: a for a in map(json.loads, result.stdout.splitlines())}
    assert answers[2]["error"]["code"] == -32001  # the block happened

    # a high finding scores 70: under these thresholds (high from 95) that is medium, everywhere
    risky = [e for e in km_events(km_home) if e["risk"]["findings"]]
    rules = {f["rule"] for e in risky for f in e["risk"]["findings"]}
    assert {"secret.github_token", "policy.blocked"} <= rules, rules
    assert {e["risk"]["level"] for e in risky} == {"medium"}, [e["risk"] for e in risky]
    assert km_events(km_home, "--risk", "high") == []
    assert {e["id"] for e in km_events(km_home, "--risk", "medium")} == {e["id"] for e in risky}
    assert km_json(km_home, "findings", "--risk", "high") == []
    assert {f["rule"] for f in km_json(km_home, "findings", "--risk", "medium")} >= {"policy.blocked"}
    session = local_sessions(km_home)["scale"]
    assert session["risk"]["level"] == "medium", session["risk"]

    km_ok("sync", env=env)
    remote = server.events(session["id"])
    remote_levels = {e["id"]: e["risk"]["level"] for e in remote if e["risk"]["findings"]}
    assert remote_levels == {e["id"]: "medium" for e in risky}
    remote_session = server.session(session["id"])
    assert remote_session is not None and remote_session["risk"]["level"] == "medium", remote_session
