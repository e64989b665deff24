"""``km wrap`` / ``km unwrap`` on real-shaped config files of every client.

Each test gets a fresh HOME, KM_HOME and project directory: nothing touches the real home.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kilometers.cli.main import cli
from kilometers.clients import find_locations, location_for
from kilometers.clients.entries import wrap_entry
from kilometers.clients.jsonedit import parse
from kilometers.clients.rewrite import server_entries
from kilometers.clients.storeenv import with_env

DATA = Path(__file__).parent / "data"
KM = str(Path(sys.executable).with_name("km"))


@dataclass
class Case:
    data: str
    client: str
    place: str
    """Where the client reads it: relative to HOME (``~/``) or to the project directory (``./``)."""
    servers: int
    jsonc: bool = False


CASES = [
    Case("claude_desktop_config.json", "claude-desktop", "~/.config/Claude/claude_desktop_config.json", 3),
    Case("claude.json", "claude-code", "~/.claude.json", 5),
    Case("dot_mcp.json", "claude-code", "./.mcp.json", 2),
    Case("cursor_mcp.json", "cursor", "~/.cursor/mcp.json", 3),
    Case("cursor_mcp.json", "cursor", "./.cursor/mcp.json", 3),
    Case("vscode_mcp.json", "vscode", "~/.config/Code/User/mcp.json", 3, jsonc=True),
    Case("vscode_mcp.json", "vscode", "./.vscode/mcp.json", 3, jsonc=True),
    Case("vscode_settings.json", "vscode", "~/.config/Code/User/settings.json", 1, jsonc=True),
    Case("windsurf_mcp_config.json", "windsurf", "~/.codeium/windsurf/mcp_config.json", 3),
]
IDS = [f"{case.client}:{case.place}" for case in CASES]


@dataclass
class Env:
    home: Path
    km_home: Path
    project: Path

    def place(self, case: Case, text: bytes | None = None) -> Path:
        base = self.home if case.place.startswith("~/") else self.project
        path = base / case.place[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((DATA / case.data).read_bytes() if text is None else text)
        return path

    @property
    def state(self) -> Path:
        return self.km_home / "wrap-state.json"

    @property
    def store_env(self) -> dict[str, str]:
        """What km wrap adds to each entry's env: the KM_HOME set in the shell."""
        return {"KM_HOME": str(self.km_home)}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    home, km_home, project = tmp_path / "home", tmp_path / "km_home", tmp_path / "project"
    for directory in (home, km_home, project):
        directory.mkdir()
    for key in list(os.environ):
        if key.startswith("KM_"):
            monkeypatch.delenv(key)
    for key in ("XDG_CONFIG_HOME", "CLAUDE_CONFIG_DIR", "APPDATA"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KM_HOME", str(km_home))
    monkeypatch.chdir(project)
    return Env(home, km_home, project)


def km(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def servers(path: Path, jsonc: bool) -> dict[tuple[str, ...], Any]:
    location = location_for(path)
    doc = parse(path.read_text(encoding="utf-8"), jsonc=jsonc)
    return {p: member.node.value for p, member in server_entries(location, doc)}


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.km-backup-*"))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_wrap_twice_then_unwrap_gives_back_the_identical_file(env: Env, case: Case) -> None:
    path = env.place(case)
    original = path.read_bytes()
    before = servers(path, case.jsonc)
    assert len(before) == case.servers

    code, out = km("wrap", "--client", case.client)
    assert code == 0, out
    assert out.count("now runs through km") == case.servers
    wrapped_bytes = path.read_bytes()
    after = servers(path, case.jsonc)
    assert after.keys() == before.keys()  # same servers, same order
    for key, entry in after.items():
        assert entry == with_env(wrap_entry(key[-1], before[key], KM), env.store_env)
        assert entry["command"] == KM and entry["args"][:3] == ["monitor", "--name", key[-1]]

    # everything but the server entries is as it was: other keys, their order, their values
    old_doc = parse(original.decode(), jsonc=case.jsonc).value
    new_doc = parse(wrapped_bytes.decode(), jsonc=case.jsonc).value
    assert list(new_doc) == list(old_doc)
    for key, entry in before.items():
        node = new_doc
        for part in key[:-1]:
            node = node[part]
        node[key[-1]] = entry
    assert new_doc == old_doc

    [backup] = backups(path)
    assert backup.read_bytes() == original

    code, out = km("wrap", "--client", case.client)  # idempotent
    assert code == 0, out
    assert out.count("already runs through km") == case.servers
    assert path.read_bytes() == wrapped_bytes
    assert len(backups(path)) == 1  # nothing written, no backup

    code, out = km("unwrap", "--client", case.client)
    assert code == 0, out
    assert out.count("original entry restored") == case.servers
    assert path.read_bytes() == original
    assert json.loads(env.state.read_text())["files"] == {}

    code, out = km("unwrap", "--client", case.client)  # nothing left to undo
    assert code == 0 and path.read_bytes() == original


def test_wrapped_entries_look_as_documented(env: Env) -> None:
    code_path = env.place(CASES[1])
    desktop = env.place(CASES[0])
    windsurf = env.place(CASES[8])
    assert km("wrap")[0] == 0

    entries = json.loads(code_path.read_text())
    assert entries["mcpServers"]["sentry"] == {
        "type": "stdio",
        "command": KM,
        "args": [
            "monitor",
            "--name",
            "sentry",
            "--url",
            "https://mcp.sentry.dev/mcp",
            "--header",
            "Authorization: Bearer ${SENTRY_TOKEN}",
            "--header",
            "X-Org: acme",
        ],
        "env": env.store_env,
    }
    assert entries["mcpServers"]["memory"] == {
        "type": "stdio",
        "command": KM,
        "args": ["monitor", "--name", "memory", "--", "npx", "-y", "@modelcontextprotocol/server-memory"],
        "env": env.store_env,
    }
    project = entries["projects"]["/home/ana/src/shop"]
    assert project["mcpServers"]["postgres"]["args"][:5] == ["monitor", "--name", "postgres", "--", "npx"]
    assert project["mcpServers"]["postgres"]["env"] == {"PGPASSWORD": "secret", **env.store_env}
    assert project["history"][0]["display"] == "fix the checkout test"

    github = json.loads(desktop.read_text())["mcpServers"]["github"]
    assert github["args"] == [
        "monitor",
        "--name",
        "github",
        "--",
        "docker",
        *["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"],
    ]
    assert list(github) == ["command", "args", "env"]

    windsurf_servers = json.loads(windsurf.read_text())["mcpServers"]
    assert windsurf_servers["userjot"] == {
        "command": KM,
        "args": [
            "monitor",
            "--name",
            "userjot",
            "--url",
            "https://api.userjot.com/v1/mcp",
            "--header",
            "Authorization: Bearer ${env:USERJOT_API_TOKEN}",
        ],
        "env": env.store_env,
    }
    assert windsurf_servers["git"]["disabled"] is True
    assert windsurf_servers["git"]["disabledTools"] == ["git_push"]


def test_only_changed_values_get_new_text(env: Env) -> None:
    path = env.place(CASES[3])  # cursor, 4-space indentation
    km("wrap", "--config", str(path))
    text = path.read_text()
    # the stdio entry keeps its layout: only command and args changed, args still on one line, and
    # the store setting is added at the end of its env
    assert f'"env": {{"API_KEY": "value", "NAME": "Zoë ✓", "KM_HOME": "{env.km_home}"}},' in text
    assert '"args": ["monitor", "--name", "python-server", "--", "python", "-m", "my_mcp_server"],' in text
    # an entry without args gets them after its command, in the file's indentation
    assert (
        '        "local-tools": {\n'
        f'            "command": "{KM}",\n'
        '            "args": [\n'
        '                "monitor",\n'
    ) in text


def test_vscode_comments_and_trailing_commas_are_kept(env: Env) -> None:
    path = env.place(CASES[5])
    km("wrap", "--client", "vscode")
    text = path.read_text()
    assert text.startswith('// VS Code user MCP servers\n{\n\t"inputs"')
    assert "\t\t// Perplexity, started with npx\n" in text
    assert "\t\t/* a remote server */\n" in text
    assert '\t\t"github": {\n\t\t\t"type": "stdio",\n\t\t\t"command": ' in text  # tabs, like the file
    settings = env.place(CASES[7])
    km("wrap", "--config", str(settings))
    assert '"workbench.colorTheme": "Default Dark Modern", // the theme\n}' in settings.read_text()


def test_dry_run_writes_nothing(env: Env) -> None:
    path = env.place(CASES[0])
    original = path.read_bytes()
    code, out = km("wrap", "--dry-run")
    assert code == 0
    assert f"--- {path}\n+++ {path}\n" in out
    assert f'+      "command": "{KM}",' in out
    assert '-      "command": "npx",' in out
    assert "dry run: nothing was written" in out
    assert path.read_bytes() == original
    assert backups(path) == [] and not env.state.exists()

    km("wrap")
    wrapped = path.read_bytes()
    code, out = km("unwrap", "--dry-run")
    assert code == 0 and '+      "command": "npx",' in out
    assert path.read_bytes() == wrapped and len(backups(path)) == 1


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o604])
def test_permissions_are_kept(env: Env, mode: int) -> None:
    path = env.place(CASES[3])
    path.chmod(mode)
    km("wrap")
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert stat.S_IMODE(backups(path)[0].stat().st_mode) == mode
    assert stat.S_IMODE(env.state.stat().st_mode) == 0o600  # it holds env blocks: private
    km("unwrap")
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_symlinked_config_stays_a_symlink(env: Env) -> None:
    real = env.home / "dotfiles" / "mcp.json"
    real.parent.mkdir()
    real.write_bytes((DATA / "cursor_mcp.json").read_bytes())
    link = env.home / ".cursor" / "mcp.json"
    link.parent.mkdir()
    link.symlink_to(real)
    km("wrap", "--client", "cursor")
    assert link.is_symlink() and json.loads(real.read_text())["mcpServers"]["local-tools"]["command"] == KM
    km("unwrap", "--client", "cursor")
    assert link.is_symlink() and real.read_bytes() == (DATA / "cursor_mcp.json").read_bytes()


@pytest.mark.parametrize(
    "text",
    [
        '{\n  "mcpServers": {\n    "a": {"command": "x",}\n  }\n}\n',  # trailing comma: not JSON
        '{\n  // a comment\n  "mcpServers": {}\n}\n',
        '{\n  "mcpServers": {\n    "a": {"command": "x"}\n',  # cut short
        "",
        "[1, 2]",
    ],
)
def test_malformed_json_is_a_clear_error_and_the_file_is_untouched(env: Env, text: str) -> None:
    path = env.place(CASES[0], text.encode())
    code, out = km("wrap")
    assert code == 1
    assert str(path) in out and "it was left as it was" in out
    assert path.read_bytes() == text.encode()
    assert backups(path) == [] and not env.state.exists()
    if text.startswith('{\n  "mcpServers": {\n    "a"'):
        assert "line 3 column" in out or "line 4 column" in out


def test_a_broken_file_does_not_stop_the_others(env: Env) -> None:
    broken = env.place(CASES[0], b"{ nope")
    good = env.place(CASES[8])
    code, out = km("wrap")
    assert code == 1
    assert "line 1 column 3" in out
    assert broken.read_bytes() == b"{ nope"
    assert json.loads(good.read_text())["mcpServers"]["ollama"]["command"] == KM


def test_unwrap_keeps_edits_made_after_wrapping(env: Env) -> None:
    path = env.place(CASES[8])
    km("wrap")
    doc = json.loads(path.read_text())
    doc["mcpServers"]["ollama"]["env"] = {"OLLAMA_HOST": "http://gpu:11434"}
    doc["mcpServers"]["ollama"]["args"].append("--verbose")
    path.write_text(json.dumps(doc, indent=2) + "\n")
    code, out = km("unwrap")
    assert code == 0, out
    assert "ollama: km taken out: it was changed after km wrapped it" in out
    servers_now = json.loads(path.read_text())["mcpServers"]
    assert servers_now["ollama"] == {
        "command": "py",
        "args": ["-m", "mcp_ollama_python", "--verbose"],
        "disabled": False,
        "env": {"OLLAMA_HOST": "http://gpu:11434"},
    }
    original = json.loads((DATA / "windsurf_mcp_config.json").read_text())["mcpServers"]
    assert servers_now["git"] == original["git"] and servers_now["userjot"] == original["userjot"]


def test_unwrap_without_saved_originals_rebuilds_from_the_command_line(env: Env) -> None:
    originals = {}
    for case in (CASES[1], CASES[3], CASES[8]):
        path = env.place(case)
        originals[path] = json.loads((DATA / case.data).read_text())
    km("wrap")
    env.state.unlink()
    code, out = km("unwrap")
    assert code == 0, out
    assert "no saved original: rebuilt from its km monitor command" in out
    for path, original in originals.items():
        if path.name == ".claude.json":
            # the one thing the command line does not say: an SSE server comes back as "http"
            assert original["mcpServers"]["asana"]["type"] == "sse"
            original["mcpServers"]["asana"]["type"] = "http"
        # nor whether an env km added the store setting to was there before, empty: it is dropped
        _drop_empty_env(original)
        assert json.loads(path.read_text()) == original


def _drop_empty_env(doc: Any) -> None:
    """Remove every ``"env": {}`` from ``doc``."""
    if isinstance(doc, list):
        for item in doc:
            _drop_empty_env(item)
    elif isinstance(doc, dict):
        if doc.get("env") == {}:
            del doc["env"]
        for value in doc.values():
            _drop_empty_env(value)


def test_entries_wrapped_by_hand_count_as_wrapped(env: Env) -> None:
    text = '{"mcpServers": {"a": {"command": "km", "args": ["monitor", "--", "srv", "--x"]}}}\n'
    path = env.place(CASES[3], text.encode())
    code, out = km("wrap")
    assert code == 0 and "a: already runs through km; now records into the store this shell reads" in out
    assert json.loads(path.read_text())["mcpServers"]["a"]["env"] == env.store_env
    code, out = km("wrap")
    assert code == 0 and "a: already runs through km\n" in out
    km("unwrap")
    assert path.read_text() == '{"mcpServers": {"a": {"command": "srv", "args": ["--x"]}}}\n'


def test_unwrap_finds_files_wrapped_with_config(env: Env) -> None:
    path = env.project / "elsewhere" / "servers.json"
    path.parent.mkdir()
    path.write_bytes((DATA / "cursor_mcp.json").read_bytes())
    assert km("wrap", "--config", str(path))[0] == 0
    code, out = km("unwrap")
    assert code == 0 and out.count("original entry restored") == 3
    assert path.read_bytes() == (DATA / "cursor_mcp.json").read_bytes()


def test_crlf_and_one_line_files(env: Env) -> None:
    crlf = (DATA / "claude_desktop_config.json").read_bytes().replace(b"\n", b"\r\n")
    path = env.place(CASES[0], crlf)
    km("wrap")
    assert b"\n" not in path.read_bytes().replace(b"\r\n", b"")
    km("unwrap")
    assert path.read_bytes() == crlf

    compact = b'{"mcpServers":{"a":{"command":"x","args":["1"]}},"z":1}'
    path.write_bytes(compact)
    km("wrap")
    assert (
        path.read_bytes()
        == (
            f'{{"mcpServers":{{"a":{{"command":"{KM}","args":["monitor","--name","a","--","x","1"],'
            f'"env":{{"KM_HOME":"{env.km_home}"}}}}}},"z":1}}'
        ).encode()
    )
    km("unwrap")
    assert path.read_bytes() == compact


def test_entries_km_cannot_wrap_are_reported_and_left(env: Env) -> None:
    text = '{\n  "mcpServers": {\n    "odd": {"disabled": true},\n    "ok": {"command": "x"}\n  }\n}\n'
    path = env.place(CASES[3], text.encode())
    code, out = km("wrap")
    assert code == 1
    assert "odd: left as it was: it has neither a command nor a url" in out
    doc = json.loads(path.read_text())
    assert doc["mcpServers"]["odd"] == {"disabled": True}
    assert doc["mcpServers"]["ok"]["command"] == KM


def test_missing_files_and_options(env: Env) -> None:
    code, out = km("wrap")
    assert code == 0 and "no MCP client config file found" in out
    code, out = km("wrap", "--client", "cursor")
    assert code == 1
    code, out = km("wrap", "--config", str(env.project / "nope.json"))
    assert code == 2
    path = env.place(CASES[3])
    code, out = km("wrap", "--km", "/opt/km/bin/km")
    assert code == 0
    assert json.loads(path.read_text())["mcpServers"]["local-tools"]["command"] == "/opt/km/bin/km"


def test_default_locations_per_os(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    def paths(os_name: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for location in find_locations(os_name=os_name):
            found.setdefault(location.client, []).append(str(location.path.relative_to(env.home.parent)))
        return found

    linux = paths("linux")
    assert linux["claude-desktop"] == ["home/.config/Claude/claude_desktop_config.json"]
    assert linux["claude-code"] == ["home/.claude.json", "project/.mcp.json"]
    assert linux["cursor"] == ["home/.cursor/mcp.json", "project/.cursor/mcp.json"]
    assert linux["vscode"] == [
        "home/.config/Code/User/mcp.json",
        "home/.config/Code/User/settings.json",
        "project/.vscode/mcp.json",
    ]
    assert linux["windsurf"] == ["home/.codeium/windsurf/mcp_config.json"]

    mac = paths("macos")
    assert mac["claude-desktop"] == ["home/Library/Application Support/Claude/claude_desktop_config.json"]
    assert mac["vscode"][0] == "home/Library/Application Support/Code/User/mcp.json"

    monkeypatch.setenv("APPDATA", str(env.home / "AppData" / "Roaming"))
    windows = paths("windows")
    assert windows["claude-desktop"] == ["home/AppData/Roaming/Claude/claude_desktop_config.json"]
    assert windows["vscode"][0] == "home/AppData/Roaming/Code/User/mcp.json"
    assert windows["cursor"][0] == "home/.cursor/mcp.json"

    monkeypatch.setenv("XDG_CONFIG_HOME", str(env.home / "xdg"))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(env.home / "claude"))
    linux = paths("linux")
    assert linux["claude-desktop"] == ["home/xdg/Claude/claude_desktop_config.json"]
    assert linux["claude-code"][0] == "home/claude/.claude.json"


def test_config_file_client_is_guessed_from_its_name(env: Env) -> None:
    guesses = {
        "a/claude_desktop_config.json": "claude-desktop",
        "a/.claude.json": "claude-code",
        "a/.mcp.json": "claude-code",
        "a/mcp_config.json": "windsurf",
        "a/settings.json": "vscode",
        "a/.vscode/mcp.json": "vscode",
        "a/.cursor/mcp.json": "cursor",
    }
    for name, client in guesses.items():
        assert location_for(env.project / name).client == client, name
    other = env.project / "servers.json"
    other.write_text('{"servers": {}}')
    assert location_for(other).client == "vscode"
    other.write_text('{"mcpServers": {}}')
    assert location_for(other).client == "cursor"
    assert location_for(other, "windsurf").format.url_key == "serverUrl"


def test_a_big_claude_code_file(env: Env) -> None:
    doc = json.loads((DATA / "claude.json").read_text())
    history = [{"display": "x" * 300, "pastedContents": {}} for _ in range(100)]
    for i in range(300):
        servers = {"db": {"command": "npx", "args": ["-y", f"server-{i}"]}}
        doc["projects"][f"/home/ana/src/p{i}"] = {"history": history, "mcpServers": servers}
    text = json.dumps(doc, indent=2, ensure_ascii=False).encode()
    assert len(text) > 9_000_000
    path = env.place(CASES[1], text)
    code, out = km("wrap", "--client", "claude-code")
    assert code == 0 and out.count("now runs through km") == 305
    assert json.loads(path.read_text())["projects"]["/home/ana/src/p7"]["mcpServers"]["db"]["command"] == KM
    code, out = km("unwrap", "--client", "claude-code")
    assert code == 0 and path.read_bytes() == text
