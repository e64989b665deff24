"""Which ``km monitor`` command lines take the fast relay path (cli/relay.py) and which the full
one; both record through the agent, and the full one decides with the settings in hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from kilometers.cli import relay


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--", "npx", "-y", "@scope/server-x@1"], ({}, ["npx", "-y", "@scope/server-x@1"])),
        (["--name", "fs", "--", "cmd"], ({"name": "fs"}, ["cmd"])),
        (["--name=fs", "--server", "--grace-period", "2", "--", "cmd", "--db"],
         ({"name": "fs", "grace-period": "2"}, ["cmd", "--db"])),
        (["--db", "x", "--", "cmd"], None),
        (["--policy", "p.toml", "--", "cmd"], None),
        (["--url", "http://h/mcp"], None),
        (["--name"], None),
        (["--"], None),
        ([], None),
        (["--help"], None),
    ],
)  # fmt: skip
def test_parse(args: list[str], expected: object) -> None:
    assert relay.parse(args) == expected


def test_guess_name() -> None:
    assert relay.guess_name(["npx", "-y", "@modelcontextprotocol/server-filesystem@1.0", "/tmp"]) == (
        "server-filesystem"
    )
    assert relay.guess_name(["uvx", "mcp-server-git"]) == "mcp-server-git"
    assert relay.guess_name(["/usr/bin/python3", "-m", "srv"]) == "srv"


def test_a_policy_or_the_agent_off_takes_the_full_path(km_home: Path) -> None:
    assert relay.eligible({})
    for var in ("KM_POLICY", "KM_AGENT", "KM_RECORDER_PROCESS"):
        assert not relay.eligible({var: "1"})
    config = km_home / "config.toml"
    config.write_text('[sync]\napi_url = "http://h"\n', encoding="utf-8")
    assert relay.eligible({})
    config.write_text("[monitor]\nagent = true\n", encoding="utf-8")
    assert relay.eligible({})
    full = (
        '[monitor]\npolicy = "p.toml"\n',
        "[monitor]\nagent = false\n",
        "[monitor]\nrecorder_process = 0\n",
        "[monitor]\nagent = [broken\n",
    )
    for text in full:
        config.write_text(text, encoding="utf-8")
        assert not relay.eligible({}), text
