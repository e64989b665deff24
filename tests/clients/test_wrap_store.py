"""``km wrap`` makes every client's km record into the store the shell reads.

Clients start servers with an environment of their own, not the shell's: a ``KM_HOME`` or
``KM_DB`` set in the shell must travel in each wrapped entry's ``env``. Here the wrapped commands
run with nothing but ``PATH=/usr/bin:/bin`` and the entry's env, driven by the real ``mcp`` SDK
client, against a real server; the shell's ``km sessions`` must then list every session.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from kilometers.cli.main import cli
from kilometers.clients import location_for
from kilometers.clients.jsonedit import parse
from kilometers.clients.rewrite import server_entries

from km_helpers import ECHO_SERVER, KM, PYTHON, km_sessions

CLIENT_ENV = {"PATH": "/usr/bin:/bin"}


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shell with a scratch HOME, KM_HOME set, in a project directory; returns KM_HOME."""
    for key in list(os.environ):
        if key.startswith(("KM_", "XDG_")):
            monkeypatch.delenv(key)
    for key in ("CLAUDE_CONFIG_DIR", "APPDATA"):
        monkeypatch.delenv(key, raising=False)
    for name in ("home", "project"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KM_HOME", str(tmp_path / "km_home"))
    monkeypatch.chdir(tmp_path / "project")
    return tmp_path / "km_home"


def km(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def echo(**extra: Any) -> dict[str, Any]:
    return {"command": PYTHON, "args": [ECHO_SERVER], **extra}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def entries(path: Path) -> dict[str, dict[str, Any]]:
    location = location_for(path)
    doc = parse(path.read_text(), jsonc=location.format.jsonc)
    return {member.key: member.node.value for _path, member in server_entries(location, doc)}


async def client_session(entry: dict[str, Any], text: str) -> None:
    """What a client does with a server entry: start its command with its env, talk MCP."""
    params = StdioServerParameters(
        command=entry["command"], args=entry["args"], env=entry.get("env"), cwd="/"
    )
    with open(os.devnull, "w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            assert {tool.name for tool in (await session.list_tools()).tools} >= {"echo"}
            result = await session.call_tool("echo", {"text": text})
            assert not result.is_error


def run_as_client(entry: dict[str, Any], text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``entry`` from a client whose environment is only ``PATH=/usr/bin:/bin``."""
    with monkeypatch.context() as patch:
        for key in list(os.environ):
            patch.delenv(key)
        for key, value in CLIENT_ENV.items():
            patch.setenv(key, value)
        anyio.run(client_session, entry, text)


def test_every_client_records_where_the_shell_reads(
    shell: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, patient_sdk_client: None
) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    files = [
        write(
            home / ".config" / "Claude" / "claude_desktop_config.json",
            json.dumps({"mcpServers": {"desktop-echo": echo()}}, indent=2) + "\n",
        ),
        write(
            home / ".claude.json",
            json.dumps(
                {
                    "numStartups": 3,
                    "mcpServers": {"code-echo": echo(type="stdio", env={})},
                    "projects": {str(project): {"mcpServers": {"code-local-echo": echo()}}},
                },
                indent=2,
            )
            + "\n",
        ),
        write(project / ".mcp.json", json.dumps({"mcpServers": {"code-project-echo": echo()}}) + "\n"),
        write(
            home / ".cursor" / "mcp.json",
            json.dumps({"mcpServers": {"cursor-echo": echo(env={"KM_TEST_MARKER": "x"})}}, indent=4) + "\n",
        ),
        write(
            home / ".config" / "Code" / "User" / "mcp.json",
            '// VS Code\n{\n\t"servers": {\n\t\t"vscode-echo": '
            + json.dumps(echo(type="stdio"))
            + ", // the echo server\n\t},\n}\n",
        ),
        write(
            home / ".codeium" / "windsurf" / "mcp_config.json",
            json.dumps({"mcpServers": {"windsurf-echo": echo(disabled=False)}}, indent=2) + "\n",
        ),
    ]
    originals = {path: path.read_bytes() for path in files}

    code, out = km("wrap")
    assert code == 0, out
    names = []
    for path in files:
        for name, entry in entries(path).items():
            assert entry["command"] == KM, (path, entry)
            assert entry["env"]["KM_HOME"] == str(shell), (path, entry)
            names.append(name)
    assert entries(files[3])["cursor-echo"]["env"] == {"KM_TEST_MARKER": "x", "KM_HOME": str(shell)}
    assert len(names) == 7

    for path in files:
        for name, entry in entries(path).items():
            run_as_client(entry, name, monkeypatch)

    assert sorted(session["name"] for session in km_sessions(shell)) == sorted(names)

    code, out = km("unwrap")
    assert code == 0, out
    for path, original in originals.items():
        assert path.read_bytes() == original, path


def test_wrap_refuses_what_it_cannot_write(shell: Path, tmp_path: Path) -> None:
    text = json.dumps(
        {
            "mcpServers": {
                "bad-env": {"command": "srv", "env": "KM_HOME=/x"},
                "other-store": {"command": "srv", "env": {"KM_DB": "sqlite:////srv/other.db"}},
                "fine": {"command": "srv"},
                "flag": {"command": "km", "args": ["monitor", "--db", "sqlite:////srv/flag.db", "--", "srv"]},
            }
        },
        indent=2,
    )
    path = write(tmp_path / "home" / ".cursor" / "mcp.json", text)
    code, out = km("wrap")
    assert code == 1
    assert "bad-env: left as it was: its env is not an object, so km cannot add" in out
    assert (
        "other-store: left as it was: it would record into sqlite:////srv/other.db, not into "
        f"sqlite:///{shell}/km.db, which this shell reads (its env sets KM_DB)"
    ) in out
    assert (
        "flag: left as it was: its km monitor command records into sqlite:////srv/flag.db (--db), "
        f"not into sqlite:///{shell}/km.db, which this shell reads"
    ) in out
    servers = json.loads(path.read_text())["mcpServers"]
    assert "env" not in servers["flag"]
    assert servers["bad-env"] == {"command": "srv", "env": "KM_HOME=/x"}
    assert servers["other-store"] == {"command": "srv", "env": {"KM_DB": "sqlite:////srv/other.db"}}
    assert servers["fine"]["env"] == {"KM_HOME": str(shell)}


def test_wrap_refuses_a_store_the_entries_cannot_carry(
    shell: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shell's store chosen by XDG_DATA_HOME, which km wrap does not put in a server's env."""
    monkeypatch.delenv("KM_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    text = json.dumps({"mcpServers": {"a": {"command": "srv"}}})
    path = write(tmp_path / "home" / ".cursor" / "mcp.json", text)
    code, out = km("wrap")
    assert code == 1
    store = f"sqlite:///{tmp_path}/data/kilometers/km.db"
    assert f"while this shell reads {store}" in out
    assert f"set KM_DB='{store}' (or KM_HOME) in this shell and run km wrap again" in out
    assert path.read_text() == text and not list(path.parent.glob("*.km-backup-*"))

    monkeypatch.setenv("KM_DB", store)  # what the message says to do
    code, out = km("wrap")
    assert code == 0, out
    assert json.loads(path.read_text())["mcpServers"]["a"]["env"] == {"KM_DB": store}


def test_relative_settings_are_written_absolute(
    shell: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KM_HOME", "km")
    monkeypatch.setenv("KM_DB", "sqlite:///data/km.db")
    path = write(
        tmp_path / "home" / ".cursor" / "mcp.json", json.dumps({"mcpServers": {"a": {"command": "x"}}})
    )
    code, out = km("wrap")
    assert code == 0, out
    project = tmp_path / "project"
    assert json.loads(path.read_text())["mcpServers"]["a"]["env"] == {
        "KM_HOME": str(project / "km"),
        "KM_DB": f"sqlite:///{project}/data/km.db",
    }


def test_a_database_password_stays_out_of_project_files(
    shell: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql://km:s3cret@127.0.0.1:5432/km"
    monkeypatch.setenv("KM_DB", url)
    text = json.dumps({"mcpServers": {"a": {"command": "x"}}})
    project_file = write(tmp_path / "project" / ".mcp.json", text)
    user_file = write(tmp_path / "home" / ".cursor" / "mcp.json", text)
    code, out = km("wrap")
    assert code == 1
    assert "KM_DB holds a database password, and this project file is often shared" in out
    assert "s3cret" not in out
    assert project_file.read_text() == text
    assert json.loads(user_file.read_text())["mcpServers"]["a"]["env"] == {
        "KM_HOME": str(shell),
        "KM_DB": url,
    }


def test_wrap_again_follows_the_shell_and_unwrap_still_restores_every_byte(
    shell: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = '{\n  "mcpServers": {\n    "a": {\n      "command": "x",\n'
    text += '      "env": {"TOKEN": "t"}\n    }\n  }\n}\n'
    path = write(tmp_path / "home" / ".cursor" / "mcp.json", text)
    assert km("wrap")[0] == 0
    for n in (1, 2):  # the shell now reads another store: wrapping again adds, then changes, KM_DB
        store = f"sqlite:///{tmp_path}/store{n}.db"
        monkeypatch.setenv("KM_DB", store)
        code, out = km("wrap")
        assert code == 0 and "a: already runs through km; now records into the store this shell reads" in out
        env = json.loads(path.read_text())["mcpServers"]["a"]["env"]
        assert env == {"TOKEN": "t", "KM_HOME": str(shell), "KM_DB": store}
        assert '      "env": {"TOKEN": "t", "KM_HOME": ' in path.read_text()  # its layout kept
    code, out = km("wrap")
    assert code == 0 and "a: already runs through km\n" in out
    code, out = km("unwrap")
    assert code == 0 and "original entry restored" in out
    assert path.read_text() == text


def test_unwrap_of_an_edited_entry_takes_out_exactly_what_wrap_added(shell: Path, tmp_path: Path) -> None:
    servers = {
        "own": {"command": "x", "env": {"KM_HOME": "/srv/km", "A": "1"}},
        "none": {"command": "y"},
        "empty": {"command": "z", "env": {}},
    }
    path = write(tmp_path / "home" / ".cursor" / "mcp.json", json.dumps({"mcpServers": servers}, indent=2))
    assert km("wrap")[0] == 0
    wrapped = json.loads(path.read_text())["mcpServers"]
    assert wrapped["own"]["env"] == {"KM_HOME": str(shell), "A": "1"}
    for entry in wrapped.values():  # the user edits every entry after km wrapped it
        entry["env"]["B"] = "2"
    path.write_text(json.dumps({"mcpServers": wrapped}, indent=2))
    code, out = km("unwrap")
    assert code == 0, out
    assert out.count("it was changed after km wrapped it") == 3
    assert json.loads(path.read_text())["mcpServers"] == {
        "own": {"command": "x", "env": {"KM_HOME": "/srv/km", "A": "1", "B": "2"}},
        "none": {"command": "y", "env": {"B": "2"}},
        "empty": {"command": "z", "env": {"B": "2"}},
    }
