"""The uploader's pieces that need no team server: settings, backoff, Retry-After, the cursor's
forward-only rule, the lease and the backlog, on a real local SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from kilometers import config
from kilometers.cli.main import cli
from kilometers.jsonrpc import Capture
from kilometers.model import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Session
from kilometers.recorder import Recorder
from kilometers.store import db
from kilometers.store.writer import StoreSink
from kilometers.sync.client import backoff_delay, key_hint, parse_retry_after
from kilometers.sync.sink import UploaderSink
from kilometers.sync.state import lease_owner
from kilometers.sync.uploader import Uploader

KEY = "km_live_" + "s3cr3t" * 7


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in list(os.environ):
        if var.startswith("KM_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("KM_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def engine(home: Path) -> Engine:
    return db.open_store(None)


def record(name: str, calls: int) -> Session:
    """A session through the real capture core and store sink."""
    session = Session(command=["srv"], cwd="/", name=name)
    recorder = Recorder(Capture(session), [StoreSink()])
    recorder.start()
    for i in range(calls):
        call = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call"}\n' % i
        recorder.submit(CLIENT_TO_SERVER, call, 10**18 + i)
        recorder.submit(SERVER_TO_CLIENT, b'{"jsonrpc":"2.0","id":%d,"result":{}}\n' % i, 10**18 + i + 1)
    recorder.stop(0)
    return session


# -- settings --------------------------------------------------------------------------------------------


def test_sync_settings_from_env_and_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not config.load().uploads_enabled
    (home / "config.toml").write_text(
        '[sync]\napi_url = "https://km.example.com/"\napi_key = "km_live_file"\n'
        "batch_size = 50\ninterval = 0.5\n"
    )
    settings = config.load()
    assert (settings.api_url, settings.api_key, settings.upload_batch_size, settings.upload_interval) == (
        "https://km.example.com",
        "km_live_file",
        50,
        0.5,
    )
    monkeypatch.setenv("KM_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("KM_API_KEY", KEY)
    monkeypatch.setenv("KM_UPLOAD_BATCH_SIZE", "7")
    monkeypatch.setenv("KM_UPLOAD_INTERVAL", "3")
    settings = config.load()
    assert (settings.api_url, settings.api_key, settings.upload_batch_size, settings.upload_interval) == (
        "http://127.0.0.1:9",
        KEY,
        7,
        3.0,
    )
    assert settings.uploads_enabled and KEY not in repr(settings)
    monkeypatch.setenv("KM_API_KEY", "")  # empty means none: forwarding is off for this run
    assert config.load().api_key is None and not config.load().uploads_enabled


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("KM_API_URL", "km.example.com", "http:// or https://"),
        ("KM_UPLOAD_BATCH_SIZE", "0", "1 or more"),
        ("KM_UPLOAD_BATCH_SIZE", "many", "KM_UPLOAD_BATCH_SIZE"),
        ("KM_UPLOAD_INTERVAL", "0", "more than 0"),
    ],
)
def test_bad_sync_settings_are_clear(
    home: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str, message: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(config.ConfigError, match=message):
        config.load()


def test_a_bad_key_in_the_file_is_not_echoed(home: Path) -> None:
    (home / "config.toml").write_text("[sync]\napi_key = 12345\n")
    with pytest.raises(config.ConfigError) as info:
        config.load()
    assert "12345" not in str(info.value) and "api_key" in str(info.value)


def test_config_with_a_key_is_private(home: Path) -> None:
    path = home / "config.toml"
    config.write_file(config.Settings(payload_limit=5), path)
    path.chmod(0o644)
    config.write_file(config.Settings(api_url="https://x", api_key=KEY), path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert config.load().api_key == KEY


def test_init_sets_and_clears_the_team_server(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("KM_PAYLOAD_LIMIT", "99")  # a variable of this shell is not written to the file
    result = runner.invoke(cli, ["init", "--api-url", "https://km.example.com", "--api-key", KEY])
    assert result.exit_code == 0, result.output
    assert KEY not in result.output and "km_live_s3cr…" in result.output
    text = (home / "config.toml").read_text()
    assert "[sync]" in text and "payload_limit = 0" in text
    assert (home / "config.toml").stat().st_mode & 0o777 == 0o600
    bad = runner.invoke(cli, ["init", "--api-url", "ftp://x"])
    assert bad.exit_code == 2 and "http:// or https://" in bad.stderr
    result = runner.invoke(cli, ["init", "--api-url", ""])
    assert result.exit_code == 0 and "until --api-url is set too" in result.output
    assert config.load().api_url is None and config.load().api_key == KEY
    result = runner.invoke(
        cli, ["init", "--api-url", "https://km.example.com", "--api-key", "-"], input="km_live_x\n"
    )
    assert result.exit_code == 0 and config.load().api_key == "km_live_x"


# -- small helpers -----------------------------------------------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    assert backoff_delay(1, rng=lambda: 0.0) == 0.5 and backoff_delay(1, rng=lambda: 1.0) == 1.0
    assert backoff_delay(4, rng=lambda: 1.0) == 8.0
    assert backoff_delay(100, cap=300, rng=lambda: 1.0) == 300.0
    delays = {round(backoff_delay(3), 6) for _ in range(50)}
    assert len(delays) > 1 and all(2.0 <= d <= 4.0 for d in delays)


def test_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("-5") == 0.0


def test_key_hint_shows_only_a_prefix() -> None:
    assert key_hint(KEY) == "km_live_s3cr…"
    assert key_hint("short") == "s…" and key_hint(None) == ""


# -- cursor, lease, backlog -------------------------------------------------------------------------------


def test_cursor_only_moves_forward(engine: Engine) -> None:
    a = Uploader(engine, "https://one.example/", KEY)
    b = Uploader(engine, "https://one.example", KEY)  # the same server, another process
    other = Uploader(engine, "https://two.example", KEY)
    assert a.cursor() == 0
    a.state.advance(50)
    b.state.advance(20)  # late: must not move it back
    assert a.cursor() == b.cursor() == 50
    b.state.advance(120)
    assert a.cursor() == 120 and other.cursor() == 0
    assert KEY not in repr(a)
    for up in (a, b, other):
        up.close()


def test_lease_is_exclusive_until_released_expired_or_its_holder_gone(engine: Engine) -> None:
    up = Uploader(engine, "https://one.example", KEY)
    me, you = lease_owner(), lease_owner()
    assert up.acquire_lease(me, 60)
    assert up.acquire_lease(me, 60)  # renewal
    assert not up.acquire_lease(you, 60)
    up.release_lease(me)
    assert up.acquire_lease(you, 60) and not up.acquire_lease(me, 60)
    up.release_lease(you)
    assert up.acquire_lease(me, -1)  # already expired
    assert up.acquire_lease(you, 60)
    # a holder that exited (say it was SIGKILLed) does not keep it for the rest of its ttl
    code = "import os; print(os.getpid())"
    dead = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    gone = lease_owner().rsplit(":", 2)
    gone[1] = dead.stdout.strip()
    up.release_lease(you)
    assert up.acquire_lease(":".join(gone), 60)
    assert up.acquire_lease(me, 60)
    up.close()


def test_backlog_per_server_and_final_states(home: Path, engine: Engine) -> None:
    record("alpha", 3)
    record("beta", 1)
    record("alpha", 2)
    up = Uploader(engine, "https://one.example", KEY)
    backlog = up.backlog()
    assert backlog.by_server == {"alpha": 10, "beta": 2} and backlog.events == 12
    assert backlog.sessions == 0  # final states wait for their events
    up.state.advance(12)
    backlog = up.backlog()
    assert backlog.events == 0 and backlog.sessions == 3  # now their final states are due
    assert up.has_pending_events() is False
    runner = CliRunner()
    result = runner.invoke(cli, ["status"], env={"KM_API_URL": "https://one.example", "KM_API_KEY": KEY})
    assert result.exit_code == 0 and "3 session updates" in result.output and KEY not in result.output
    up.close()


def test_sink_hooks_never_touch_the_network(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listens on the URL: hooks return at once, the final flush gives up within its second,
    and nothing reaches stdout."""
    import time

    sink = UploaderSink("http://127.0.0.1:9", KEY, batch_size=2, interval=0.05)
    session = Session(command=["srv"], cwd="/", name="x")
    recorder = Recorder(Capture(session), [StoreSink(), sink])
    recorder.start()
    for i in range(20):
        recorder.submit(CLIENT_TO_SERVER, b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n' % i, 10**18 + i)
    started = time.monotonic()
    recorder.stop(0, timeout=10)
    assert time.monotonic() - started < 5
    out, err = capsys.readouterr()
    assert out == "" and err.count("km:") <= 1 and KEY not in err
