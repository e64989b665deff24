"""Where km's files go without ``KM_HOME``: the platform's directories, exactly as platformdirs
names them (km resolves the plain XDG case itself, so a relay does not import platformdirs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest

from kilometers import paths

ENVIRONMENTS = [
    {"HOME": "/home/ann"},
    {"HOME": "/home/ann/"},
    {"HOME": "/"},
    {"HOME": "/home/ann", "XDG_DATA_HOME": "/data", "XDG_CONFIG_HOME": "/etc/ann/"},
    {"HOME": "/home/ann", "XDG_DATA_HOME": "relative/data", "XDG_CONFIG_HOME": ""},
    {"HOME": "/home/ann", "XDG_DATA_HOME": "   ", "XDG_CONFIG_HOME": "~/conf"},
    {"HOME": "relative-home"},
    {"HOME": ""},
    {},
]


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=[json.dumps(e) for e in ENVIRONMENTS])
def test_the_directories_are_platformdirs_own(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KM_HOME", "HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert paths.data_dir() == Path(platformdirs.user_data_dir(paths.APP, appauthor=False))
    assert paths.config_dir() == Path(platformdirs.user_config_dir(paths.APP, appauthor=False))


def test_km_home_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KM_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", "/data")
    assert paths.data_dir() == paths.config_dir() == tmp_path.resolve()


@pytest.mark.skipif(sys.platform != "linux", reason="the plain XDG case is Linux's")
def test_a_plain_home_resolves_without_importing_platformdirs(tmp_path: Path) -> None:
    probe = (
        "import sys\nfrom kilometers import paths\n"
        "paths.data_dir(), paths.config_dir()\nprint('platformdirs' in sys.modules)"
    )
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, timeout=60, check=True
    ).stdout
    assert out.split() == [b"False"]
