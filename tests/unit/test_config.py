"""Configuration precedence (flags > env > file > defaults) and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kilometers import config, paths


def test_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KM_HOME", str(tmp_path))
    settings = config.load()
    assert settings == config.Settings()
    assert paths.default_db_path() == tmp_path / "km.db"
    assert paths.config_file() == tmp_path / "config.toml"


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KM_HOME", str(tmp_path))
    config.write_file(config.Settings(payload_limit=100, exclude_ping=True, exclude_methods=["a/*"]))
    assert config.load().payload_limit == 100
    monkeypatch.setenv("KM_PAYLOAD_LIMIT", "200")
    monkeypatch.setenv("KM_EXCLUDE_METHODS", "b/*, c")
    settings = config.load()
    assert (settings.payload_limit, settings.exclude_methods, settings.exclude_ping) == (
        200,
        ["b/*", "c"],
        True,
    )
    settings = config.load({"payload_limit": 300, "exclude_ping": False, "exclude_methods": ()})
    assert (settings.payload_limit, settings.exclude_ping, settings.exclude_methods) == (
        300,
        False,
        ["b/*", "c"],
    )


def test_database_url_aliases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KM_HOME", str(tmp_path))
    monkeypatch.setenv("KM_DATABASE_URL", "sqlite:///x.db")
    assert config.load().db_url == "sqlite:///x.db"
    monkeypatch.setenv("KM_DB", "sqlite:///y.db")
    assert config.load().db_url == "sqlite:///y.db"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[monitor\n", "cannot read config file"),
        ("[monitor]\npayload_limit = -1\n", "payload_limit"),
        ("[monitor]\nexclude_ping = 'maybe'\n", "exclude_ping"),
        ("[monitor]\nexclude_methods = [1, 2]\n", "exclude_methods"),
        ("[store]\nurl = 5\n", "db_url"),
    ],
)
def test_bad_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    monkeypatch.setenv("KM_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(config.ConfigError, match=message) as info:
        config.load()
    assert str(tmp_path / "config.toml") in str(info.value)


def test_bad_env_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KM_HOME", str(tmp_path))
    monkeypatch.setenv("KM_GRACE_PERIOD", "soon")
    with pytest.raises(config.ConfigError, match="KM_GRACE_PERIOD"):
        config.load()


def test_lenient_load_keeps_flags_when_the_file_is_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KM_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text("[monitor]\npayload_limit = -1\n")
    monkeypatch.setenv("KM_EXCLUDE_PING", "yes")
    settings, problem = config.load_lenient({"db_url": "sqlite:///flag.db", "grace_period": None})
    assert settings.db_url == "sqlite:///flag.db" and settings.exclude_ping is True
    assert problem is not None and "config file is ignored" in problem
    monkeypatch.setenv("KM_GRACE_PERIOD", "soon")
    settings, problem = config.load_lenient({"db_url": "sqlite:///flag.db"})
    assert settings.db_url == "sqlite:///flag.db"
    assert problem is not None and "only command-line flags" in problem
    assert config.load_lenient({})[1] is not None
