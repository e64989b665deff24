"""One settings registry (kilometers.config.SPECS): one precedence, flags > environment > config
file > defaults, for recording and server settings alike; one name per setting, older names
still read with a deprecation line said once; `km config` says where each value came from."""

from __future__ import annotations

import ast
import contextlib
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import httpx
import orjson
import pytest

import kilometers
from kilometers import config

from km_helpers import KM, km_env, km_serve

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


@pytest.fixture
def home(km_home: Path) -> Path:
    return km_home


def _write(home: Path, text: str) -> Path:
    path = home / "config.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "section", "key", "var", "flag", "values"),
    [
        ("payload_limit", "monitor", "payload_limit", "KM_PAYLOAD_LIMIT", "--payload-limit", (0, 10, 20, 30)),
        (
            "server_analysis",
            "serve",
            "analysis",
            "KM_SERVER_ANALYSIS",
            "--analysis",
            (True, False, True, False),
        ),
        (
            "metrics_token",
            "serve",
            "metrics_token",
            "KM_METRICS_TOKEN",
            "--metrics-token",
            (None, "f", "e", "c"),
        ),
        ("server_rate", "serve", "rate", "KM_SERVER_RATE", "--rate", (50.0, 5.0, 7.5, 9.0)),
        ("server_port", "serve", "port", "KM_SERVER_PORT", "--port", (8000, 9001, 9002, 9003)),
        (
            "metrics_public",
            "serve",
            "metrics_public",
            "KM_METRICS_PUBLIC",
            "--metrics-public",
            (False, True, False, True),
        ),
        (
            "proxy_max_sessions",
            "proxy",
            "max_sessions",
            "KM_PROXY_MAX_SESSIONS",
            "--max-sessions",
            (100, 3, 4, 5),
        ),
        (
            "proxy_listen",
            "proxy",
            "listen",
            "KM_PROXY_LISTEN",
            "--listen",
            ("127.0.0.1:8800", ":9001", ":9002", ":9003"),
        ),
    ],
)
def test_flag_beats_environment_beats_file_beats_default(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    section: str,
    key: str,
    var: str,
    flag: str,
    values: tuple[object, object, object, object],
) -> None:
    default, in_file, in_env, on_flag = values
    settings, origins = config.resolve()
    assert (getattr(settings, name), origins[name]) == (default, "default")

    def text(value: object) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    path = _write(home, f"[{section}]\n{key} = {orjson.dumps(in_file).decode()}\n")
    settings, origins = config.resolve()
    assert (getattr(settings, name), origins[name]) == (in_file, f"config file {path} [{section}] {key}")
    monkeypatch.setenv(var, text(in_env))
    settings, origins = config.resolve()
    assert (getattr(settings, name), origins[name]) == (in_env, f"environment variable {var}")
    settings, origins = config.resolve({name: on_flag})
    assert (getattr(settings, name), origins[name]) == (on_flag, flag)


@contextlib.contextmanager
def _serve(home: Path, *args: str, **env: str) -> Iterator[str]:
    with km_serve(None, km_env(home, **env), args=args, wait=60) as base:
        yield base


def _metrics_tokens(base: str) -> list[str]:
    return [
        token
        for token in ("from-file", "from-env", "from-flag")
        if httpx.get(f"{base}/metrics", headers={"authorization": f"Bearer {token}"}).status_code == 200
    ]


def test_km_serve_takes_its_settings_in_the_one_order(home: Path) -> None:
    """The config file now reaches km serve too; a variable beats it, a flag beats both."""
    _write(home, f'[store]\nurl = "sqlite:///{home}/team.db"\n[serve]\nmetrics_token = "from-file"\n')
    with _serve(home) as base:
        assert _metrics_tokens(base) == ["from-file"]
    assert (home / "team.db").exists()  # [store] url: the file's database, not the default one
    with _serve(home, KM_METRICS_TOKEN="from-env") as base:
        assert _metrics_tokens(base) == ["from-env"]
    with _serve(home, "--metrics-token", "from-flag", KM_METRICS_TOKEN="from-env") as base:
        assert _metrics_tokens(base) == ["from-flag"]


def _proxy_listening(home: Path, *args: str, **env: str) -> str:
    """Where `km proxy` says it listens (it is stopped as soon as it has said so)."""
    proc = subprocess.Popen(
        [KM, "proxy", "--upstream", "http://127.0.0.1:9/mcp", *args],
        env=km_env(home, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "listening on" in line:
                return line.split("listening on ", 1)[1].split(",", 1)[0]
        raise AssertionError(f"km proxy ended ({proc.wait()}) without listening")
    finally:
        proc.terminate()
        proc.wait(30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_km_proxy_takes_its_own_settings_in_the_one_order(home: Path) -> None:
    in_file, in_env, on_flag = _free_port(), _free_port(), _free_port()
    _write(home, f'[proxy]\nlisten = "127.0.0.1:{in_file}"\n')
    assert _proxy_listening(home) == f"http://127.0.0.1:{in_file}"
    assert _proxy_listening(home, KM_PROXY_LISTEN=f"127.0.0.1:{in_env}") == f"http://127.0.0.1:{in_env}"
    listening = _proxy_listening(
        home, "--listen", f"127.0.0.1:{on_flag}", KM_PROXY_LISTEN=f"127.0.0.1:{in_env}"
    )
    assert listening == f"http://127.0.0.1:{on_flag}"


def test_old_variable_name_still_works_and_is_deprecated_once(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KM_DATABASE_URL", "sqlite:///old.db")
    for _ in range(3):
        settings, origins = config.resolve()
    assert (settings.db_url, origins["db_url"]) == (
        "sqlite:///old.db",
        "environment variable KM_DATABASE_URL",
    )
    assert capsys.readouterr().err == "km: KM_DATABASE_URL is deprecated; use KM_DB\n"
    monkeypatch.setenv("KM_DB", "sqlite:///new.db")
    assert config.load().db_url == "sqlite:///new.db"  # the one name wins
    assert capsys.readouterr().err == ""  # said once per process


def test_km_admin_reads_the_old_name_with_one_line(home: Path) -> None:
    """KM_DATABASE_URL (km serve's and km admin's old name) keeps working for the team server."""
    env = km_env(home, KM_DATABASE_URL=f"sqlite:///{home}/team.db")
    created = subprocess.run([KM, "admin", "create-org", "acme"], env=env, capture_output=True, timeout=120)
    assert created.returncode == 0, created.stderr
    assert created.stderr.decode().splitlines() == ["km: KM_DATABASE_URL is deprecated; use KM_DB"]
    listed = subprocess.run(
        [KM, "admin", "list-orgs"], env=km_env(home, KM_DB=f"sqlite:///{home}/team.db"), capture_output=True
    )
    assert b"acme" in listed.stdout and listed.stderr == b""


@pytest.mark.parametrize(
    ("args", "env", "config_text", "line"),
    [
        (
            ["serve"],
            {"KM_SERVER_ANALYSIS": "maybe"},
            "",
            "km: environment variable KM_SERVER_ANALYSIS: invalid value for server_analysis: "
            "expected true or false, got 'maybe'",
        ),
        (
            ["config"],
            {},
            "[serve]\nmetrics_token = 42\n",
            "km: config file {path} [serve] metrics_token: invalid value for metrics_token: "
            "expected a string",
        ),
        (
            ["admin", "list-orgs"],
            {"KM_DATABASE_URL": ""},
            "[store]\nurl = 5\n",
            "km: config file {path} [store] url: invalid value for db_url: expected a string, got 5",
        ),
        (
            ["serve"],
            {"KM_SERVER_PORT": "70000"},
            "",
            "km: environment variable KM_SERVER_PORT: invalid value for server_port: must be 0–65535",
        ),
        (
            ["serve"],
            {},
            "[serve]\nrate = true\n",
            "km: config file {path} [serve] rate: invalid value for server_rate: expected a number, got True",
        ),
        (
            ["serve", "--oidc-scopes", " "],
            {},
            "",
            "km: --oidc-scopes: invalid value for oidc_scopes: must not be empty",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting_and_its_source(
    home: Path, args: list[str], env: dict[str, str], config_text: str, line: str
) -> None:
    path = _write(home, config_text)
    proc = subprocess.run([KM, *args], env=km_env(home, **env), capture_output=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == b""
    lines = [x for x in proc.stderr.decode().splitlines() if "deprecated" not in x]
    assert lines == [line.format(path=path)]


def test_km_config_shows_each_setting_and_where_it_came_from(home: Path) -> None:
    path = _write(home, "[monitor]\npayload_limit = 7\n[sync]\napi_key = 'km_live_secret'\n")
    env = km_env(home, KM_OTEL="1", KM_DB="postgresql://km:hunter2@db.internal/km")
    proc = subprocess.run([KM, "config", "--json"], env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    rows = {row["setting"]: row for row in map(orjson.loads, proc.stdout.splitlines())}
    assert len(rows) == len(config.SPECS)
    assert rows["monitor.payload_limit"] == {
        "setting": "monitor.payload_limit",
        "variable": "KM_PAYLOAD_LIMIT",
        "value": "7",
        "from": f"config file {path} [monitor] payload_limit",
    }
    assert (rows["export.otel"]["value"], rows["export.otel"]["from"]) == (
        "true",
        "environment variable KM_OTEL",
    )
    assert (rows["sync.batch_size"]["value"], rows["sync.batch_size"]["from"]) == ("500", "default")
    assert rows["sync.api_key"]["value"] == "(set, hidden)"
    assert rows["store.url"]["value"] == "postgresql://km:***@db.internal/km"
    text = subprocess.run([KM, "config"], env=env, capture_output=True, timeout=120).stdout.decode()
    assert b"hunter2" not in proc.stdout and "hunter2" not in text and "km_live_secret" not in text
    assert any(
        x.split() == ["export.otel", "true", "environment", "variable", "KM_OTEL"] for x in text.splitlines()
    )


def test_the_registry_covers_every_setting_once() -> None:
    assert sorted(spec.name for spec in config.SPECS) == sorted(f.name for f in fields(config.Settings))
    names = [spec.env for spec in config.SPECS] + [old for spec in config.SPECS for old in spec.old_env]
    assert len(names) == len(set(names))
    places = [(spec.section, spec.key) for spec in config.SPECS]
    assert len(places) == len(set(places))


def test_no_command_reads_variables_behind_the_registrys_back() -> None:
    """Options take their variables from the registry (config.load), never click's envvar=."""
    cli = Path(kilometers.__file__).parent / "cli"
    for path in cli.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword):
                assert node.arg != "envvar", f"{path.name}:{node.value.lineno}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                # (relay.py only looks whether a variable that decides its path is set: the full
                # path, through the registry, reads its value)
                assert node.value not in {s.env for s in config.SPECS} | {"KM_DATABASE_URL"} or (
                    path.name in ("wrap.py", "relay.py")
                ), f"{path.name}:{node.lineno} reads {node.value} itself"


def test_the_docs_table_is_the_registry() -> None:
    """docs/configuration.md holds `km config --markdown` verbatim (regenerate it with that)."""
    assert config.markdown_table() in DOCS.read_text(encoding="utf-8")
    proc = subprocess.run([KM, "config", "--markdown"], capture_output=True, timeout=120)
    assert proc.stdout.decode() == config.markdown_table()
