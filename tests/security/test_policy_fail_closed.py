"""Issue "Security you can trust", item 1: policies fail closed.

A policy file that was missing, mistyped or held an invalid value was reported on stderr (which
MCP clients hide) and replaced by the log-only default: the user believed calls were blocked
while everything passed. Now such a policy stops ``km monitor`` / ``km proxy`` before the server
starts (exit status 78, one stderr line naming the file, line and problem) unless the file says
``on_error = "log"`` (or, when it cannot say, ``KM_POLICY_ON_ERROR=log``); ``km policy check``
validates a file. And a denied tool is refused whatever the case, width or look-alike letters
of its name, alone or in a JSON-RPC batch.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kilometers.security import BLOCKED_CODE

from km_helpers import ECHO_SERVER, KM, NODE_BIN, PYTHON, KmProcess, km_env, km_events

POLICY_EXIT = 78
INITIALIZE = (
    b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    b'"capabilities":{},"clientInfo":{"name":"fail-closed","version":"1"}}}\n'
    b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
)

# each case: (policy text or None for a missing file, extra environment, what stderr says)
CASES: dict[str, tuple[str | None, dict[str, str], str]] = {
    "missing file": (None, {}, "does not exist"),
    "syntax error": (
        'mode = "block"\ndeny_tools = [echo]\n',
        {},
        ", line 2, column 15: not valid TOML: Invalid value",
    ),
    "unclosed array": (
        'mode = "block"\ndeny_tools = ["echo"\n',
        {},
        ", line 2 (end of file): not valid TOML",
    ),
    "invalid value": (
        'deny_tools = ["echo"]\nmode = "deny"\n',
        {},
        ", line 2: mode must be 'log' or 'block'",
    ),
    "wrong type": (
        'mode = "block"\nblock_changed_tools = "false"\n',
        {},
        ", line 2: block_changed_tools must be true or false, not 'false'",
    ),
    "unknown key": (
        'mode = "block"\ndeny_tool = ["echo"]\n',
        {},
        ", line 2: deny_tool is not a policy setting (did you mean 'deny_tools'?)",
    ),
    "unknown rule": (
        'mode = "block"\ndeny_tools = ["echo"]\n\n[analysis]\ndisabled_rules = ["pii", "pii.phon"]\n',
        {},
        ", line 5: analysis.disabled_rules names an unknown rule 'pii.phon' (did you mean 'pii.phone'?)",
    ),
    "unknown rule override": (
        'mode = "block"\n[analysis.severity_overrides]\n"danger" = "low"\n"danger.shel_exec" = "low"\n',
        {},
        "analysis.severity_overrides names an unknown rule 'danger.shel_exec'",
    ),
    "block mode without analysis": (
        'mode = "block"\ndeny_tools = ["echo"]\n',
        {"KM_ANALYSIS": "0"},
        'says mode = "block", but the analysis is off',
    ),
}


def _policy(tmp_path: Path, text: str | None) -> Path:
    path = tmp_path / "policy.toml"
    if text is not None:
        path.write_text(text)
    return path


def _assert_refused(proc: subprocess.CompletedProcess[bytes], policy: Path, says: str) -> None:
    stderr = proc.stderr.decode()
    assert proc.returncode == POLICY_EXIT, (proc.returncode, stderr)
    assert proc.stdout == b""  # stdout belongs to the MCP client
    [line] = stderr.splitlines()  # one line
    assert line.startswith(f"km: policy file {policy}") and says in line, line
    assert "the server was not started" in line


@pytest.mark.parametrize("case", sorted(CASES))
def test_km_monitor_refuses_to_start_the_server(case: str, km_home: Path, tmp_path: Path) -> None:
    text, env, says = CASES[case]
    policy = _policy(tmp_path, text)
    marker = tmp_path / "server-started"
    server = ["sh", "-c", f'touch "{marker}" && exec "$0" "$1"', PYTHON, ECHO_SERVER]
    proc = subprocess.run(
        [KM, "monitor", "--policy", str(policy), "--", *server],
        input=INITIALIZE,
        capture_output=True,
        env=km_env(km_home, **env),
        timeout=120,
        check=False,
    )
    _assert_refused(proc, policy, says)
    assert not marker.exists(), "km started the server"


@pytest.mark.parametrize("case", ["missing file", "invalid value", "unknown rule"])
def test_km_monitor_url_and_km_proxy_refuse_too(case: str, km_home: Path, tmp_path: Path) -> None:
    text, _, says = CASES[case]
    policy = _policy(tmp_path, text)
    with socket.socket() as upstream:  # never connected to: km stops before the first request
        upstream.bind(("127.0.0.1", 0))
        upstream.listen()
        url = f"http://127.0.0.1:{upstream.getsockname()[1]}/mcp"
        for argv in (
            [KM, "monitor", "--policy", str(policy), "--url", url],
            [KM, "proxy", "--upstream", url, "--listen", "127.0.0.1:0", "--policy", str(policy)],
        ):
            proc = subprocess.run(
                argv, input=INITIALIZE, capture_output=True, env=km_env(km_home), timeout=60, check=False
            )
            _assert_refused(proc, policy, says)
            assert b"listening" not in proc.stderr
        upstream.setblocking(False)
        with pytest.raises(BlockingIOError):
            upstream.accept()


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ('on_error = "log"\nmode = "deny"\n', {}),  # the file says so itself
        (None, {"KM_POLICY_ON_ERROR": "log"}),  # a missing file cannot: the setting does
        ('mode = "block"\ndeny_tools = [echo\n', {"KM_POLICY_ON_ERROR": "log"}),
    ],
    ids=["file on_error", "missing file, KM_POLICY_ON_ERROR", "syntax error, KM_POLICY_ON_ERROR"],
)
def test_on_error_log_keeps_running_with_the_default_policy(
    text: str | None, env: dict[str, str], km_home: Path, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, text)
    km = KmProcess(km_home, [PYTHON, ECHO_SERVER], ["--policy", str(policy)], env=km_env(km_home, **env))
    try:
        km.write(INITIALIZE)
        km.write(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":'
                 b'{"text":"still here"}}}\n')  # fmt: skip
        km.stdout.wait_for(lambda out: b"still here" in out)  # log only: the call ran
        code, _, stderr = km.finish()
    finally:
        km.cleanup()
    assert code == 0
    [warning] = [line for line in stderr.decode().splitlines() if "policy file" in line]
    assert str(policy) in warning and warning.endswith(
        'on_error = "log": using the default policy (log only)'
    )


def test_a_setting_on_error_does_not_override_the_file(km_home: Path, tmp_path: Path) -> None:
    policy = _policy(tmp_path, 'on_error = "refuse"\nmode = "deny"\n')
    proc = subprocess.run(
        [KM, "monitor", "--policy", str(policy), "--", PYTHON, ECHO_SERVER],
        input=INITIALIZE,
        capture_output=True,
        env=km_env(km_home, KM_POLICY_ON_ERROR="log"),
        timeout=120,
        check=False,
    )
    _assert_refused(proc, policy, ", line 2: mode must be")


def test_km_policy_check(km_home: Path, tmp_path: Path) -> None:
    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KM, "policy", "check", str(path)],
            capture_output=True,
            text=True,
            env=km_env(km_home),
            timeout=60,
        )

    good = tmp_path / "good.toml"
    good.write_text('mode = "block"\ndeny_tools = ["delete_*"]\n[analysis]\ndisabled_rules = ["pii"]\n')
    ok = check(good)
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout == "ok: mode = 'block', deny_tools = ['delete_*']\n"
    good.write_text('mode = "block"\nblock_at = "info"\non_error = "log"\n')  # info: every call (documented)
    ok = check(good)
    assert (ok.returncode, ok.stdout) == (0, "ok: mode = 'block', block_at = 'info', on_error = 'log'\n")
    for case, (text, _, says) in CASES.items():
        if case == "block mode without analysis":  # a valid file: the conflict is km monitor's
            continue
        policy = _policy(tmp_path, text)
        bad = check(policy)
        assert bad.returncode == POLICY_EXIT and bad.stdout == "", case
        [line] = bad.stderr.splitlines()
        assert line.startswith(f"km: policy file {policy}") and says in line, (case, line)
        policy.unlink(missing_ok=True)


# -- blocked tools through case, look-alike and batch variants ---------------------------------------

VARIANTS = {
    11: "ECHO",  # case
    12: "Echo",
    13: "\uff45\uff43\uff48\uff4f",  # fullwidth
    14: "\u0435cho",  # Cyrillic e
    15: "\u0415\u0421\u041d\u041e",  # Cyrillic capitals: ЕСНО
    16: "ec\u200bho",  # a zero-width space
    17: "e\u0301cho",  # a combining accent
}


def _call(jsonrpc_id: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": jsonrpc_id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}}  # fmt: skip


def _answers(km: KmProcess, ids: set[Any]) -> dict[Any, dict[str, Any]]:
    """The answers (single or in batches) for ``ids``, once all arrived."""
    found: dict[Any, dict[str, Any]] = {}

    def complete(data: bytes) -> bool:
        for line in data.splitlines():
            try:
                decoded = json.loads(line)
            except ValueError:
                continue
            for message in decoded if isinstance(decoded, list) else [decoded]:
                if isinstance(message, dict) and message.get("id") in ids and "method" not in message:
                    found[message["id"]] = message
        return set(found) == ids

    km.stdout.wait_for(complete)
    return found


@pytest.mark.parametrize("pattern", ["echo", "ＥＣＨＯ", "ech?"])
def test_a_denied_tool_is_refused_whatever_its_name_looks_like(
    pattern: str, run_km: Any, km_home: Path, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, f'mode = "block"\ndeny_tools = ["{pattern}"]\n')
    km = run_km([str(NODE_BIN / "mcp-server-everything")], km_args=["--policy", str(policy)])
    km.write(INITIALIZE)
    _answers(km, {0})
    lines = [_call(i, name, {"message": "ran"}) for i, name in VARIANTS.items()]
    lines.append([_call(21, "get-sum", {"a": 1, "b": 2}), _call(22, "echo", {"message": "ran"})])  # batch
    lines.append([_call(23, "get-sum", {"a": 1, "b": 2}), _call(24, "ECHO", {"message": "ran"})])
    lines.append(_call(30, "get-sum", {"a": 2, "b": 3}))  # allowed: reaches the server
    km.write(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    answers = _answers(km, {*VARIANTS, 21, 22, 23, 24, 30})
    code, _, _ = km.finish()
    assert code == 0
    for jsonrpc_id in (*VARIANTS, 22, 24):
        answer = answers[jsonrpc_id]
        assert answer.get("error", {}).get("code") == BLOCKED_CODE, (jsonrpc_id, answer)
        assert f"matches deny pattern '{pattern}'" in answer["error"]["message"]
    for jsonrpc_id in (21, 23):  # the batch was held back whole
        assert answers[jsonrpc_id]["error"]["message"].startswith("Not sent"), answers[jsonrpc_id]
    assert "5" in json.dumps(answers[30]["result"])  # 2 + 3: other tools still work

    events = km_events(km_home)
    requests = {e["jsonrpc_id"]: e for e in events if e["direction"] == "client_to_server"}
    for jsonrpc_id in (*VARIANTS, 22, 24):  # recorded as denied in the store too
        assert "policy.denied_tool" in {f["rule"] for f in requests[jsonrpc_id]["risk"]["findings"]}


def test_an_allow_list_is_not_widened_by_look_alikes(run_km: Any, tmp_path: Path) -> None:
    policy = _policy(tmp_path, 'mode = "block"\nallow_tools = ["get-sum"]\n')
    km = run_km([str(NODE_BIN / "mcp-server-everything")], km_args=["--policy", str(policy)])
    km.write(INITIALIZE)
    _answers(km, {0})
    names = {1: "get-sum", 2: "GET-SUM", 3: "g\u0435t-sum"}
    km.write(b"".join(json.dumps(_call(i, n, {"a": 1, "b": 2})).encode() + b"\n" for i, n in names.items()))
    answers = _answers(km, set(names))
    km.finish()
    assert "result" in answers[1], answers[1]
    for jsonrpc_id in (2, 3):
        assert answers[jsonrpc_id]["error"]["code"] == BLOCKED_CODE, answers[jsonrpc_id]
        assert "is not in the allow list" in answers[jsonrpc_id]["error"]["message"]
