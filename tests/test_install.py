"""install.sh (run for real into a fresh HOME), ``km self-update`` and ``km completion``.

The install test uses the venv fallback with a PATH that has Python and a few coreutils but no uv
or pipx; pip downloads km's dependencies from the package registry, so it takes a minute.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kilometers.cli.main import cli
from kilometers.cli.selfupdate import update_command
from kilometers.install import Install, detect_install

from km_helpers import KM, ROOT

INSTALL = ROOT / "install.sh"
TOOLS = ("uname", "id", "sed", "dirname", "basename", "mkdir", "ln", "cat", "rm")
"""The commands install.sh needs besides the shell and Python."""


def _base_python() -> str:
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def _bin(tmp_path: Path, python: bool = True) -> Path:
    """A directory for PATH with only the tools install.sh uses (and Python): no uv, no pipx."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    if python:
        (bin_dir / "python3").symlink_to(_base_python())
    return bin_dir


def _env(home: Path, path: str, **extra: str) -> dict[str, str]:
    drop = ("KM_", "XDG_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PIP_USER", "PIP_PREFIX", "NO_COLOR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(HOME=str(home), PATH=path, KM_INSTALL_SOURCE=str(ROOT))
    env.update(extra)
    return env


def _install(env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(INSTALL)], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.timeout(1800)
def test_install_sh_venv_fallback_in_a_fresh_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = _bin(tmp_path)
    assert shutil.which("uv", path=str(bin_dir)) is None and shutil.which("pipx", path=str(bin_dir)) is None
    env = _env(home, str(bin_dir))

    proc = _install(env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"installing from: {ROOT}" in out
    assert "Installing km in a virtualenv" in out and "km, version 0.1.0" in out
    assert "\033[" not in out  # not a terminal: no colours
    assert "is not on your PATH" in out

    venv = home / ".local" / "share" / "kilometers" / "venv"
    km = home / ".local" / "bin" / "km"
    assert km.is_symlink() and km.resolve() == (venv / "bin" / "km").resolve()
    version = subprocess.run([str(km), "--version"], capture_output=True, text=True, env=env, check=False)
    assert version.returncode == 0 and version.stdout.strip() == "km, version 0.1.0"
    assert json.loads((venv / "km-install.json").read_text()) == {"method": "venv", "source": str(ROOT)}

    env_on_path = {**env, "PATH": f"{km.parent}{os.pathsep}{bin_dir}"}
    update = subprocess.run(
        [str(km), "self-update", "--dry-run"], capture_output=True, text=True, env=env_on_path, check=False
    )
    assert update.returncode == 0, update.stderr
    assert f"km was installed with venv in {venv}" in update.stdout
    assert f"{venv}/bin/python -m pip install --upgrade --quiet {ROOT}" in update.stdout

    doctor = subprocess.run(
        [str(km), "doctor", "--offline"], capture_output=True, text=True, env=env_on_path, check=False
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"✓ km on PATH: {km}" in doctor.stdout and "installed with venv" in doctor.stdout

    again = _install(env_on_path)  # running it again upgrades in place
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{km.parent} is on PATH" in again.stdout
    assert km.is_symlink()


def test_install_sh_without_python_says_what_to_do(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    proc = _install(_env(home, str(_bin(tmp_path, python=False))), timeout=60)
    assert proc.returncode == 1
    assert "km needs Python 3.11 or newer" in proc.stderr
    assert not (home / ".local").exists()


def test_install_sh_rejects_a_missing_source_and_unknown_method(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    path = str(_bin(tmp_path))
    proc = _install(_env(home, path, KM_INSTALL_SOURCE=str(tmp_path / "nope")), timeout=60)
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    proc = _install(_env(home, path, KM_INSTALL_METHOD="brew"), timeout=60)
    assert proc.returncode == 1 and "unknown KM_INSTALL_METHOD=brew" in proc.stderr


@pytest.mark.parametrize("no_color", [False, True])
def test_install_sh_colours_only_on_a_terminal(tmp_path: Path, no_color: bool) -> None:
    home = tmp_path / "home"
    home.mkdir()
    extra = {"KM_INSTALL_METHOD": "brew", "TERM": "xterm"}
    if no_color:
        extra["NO_COLOR"] = "1"
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            ["/bin/sh", str(INSTALL)],
            env=_env(home, str(_bin(tmp_path)), **extra),
            stdout=secondary,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
    out = b"".join(chunks).decode()
    assert proc.returncode == 1 and "Checking this system" in out
    assert ("\033[" in out) is not no_color


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_install_sh_passes_shellcheck() -> None:
    proc = subprocess.run(
        ["shellcheck", "-s", "sh", str(INSTALL)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("method", ["uv", "pipx"])
def test_install_sh_with_uv_or_pipx(tmp_path: Path, method: str) -> None:
    tool = shutil.which(method)
    if tool is None:
        pytest.skip(f"{method} is not installed")
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = _bin(tmp_path)
    (bin_dir / method).symlink_to(tool)
    proc = _install(_env(home, str(bin_dir)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"installed with {method}" in proc.stdout and "km, version 0.1.0" in proc.stdout


# -- km self-update -------------------------------------------------------------------------------


def test_detect_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KM_INSTALL_SOURCE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    prefix = tmp_path / "somewhere"
    prefix.mkdir()
    (prefix / "km-install.json").write_text('{"method": "pipx", "source": "/src/km"}')
    assert detect_install(prefix) == Install("pipx", "/src/km", prefix)
    monkeypatch.setenv("KM_INSTALL_SOURCE", "kilometers==9.0")
    assert detect_install(prefix).source == "kilometers==9.0"
    monkeypatch.delenv("KM_INSTALL_SOURCE")

    assert detect_install(tmp_path / "x" / "uv" / "tools" / "kilometers").method == "uv"
    assert detect_install(tmp_path / "x" / "pipx" / "venvs" / "kilometers").method == "pipx"
    assert detect_install(tmp_path / "data" / "kilometers" / "venv").method == "venv"
    assert detect_install(Path(sys.prefix)).method == "dev"  # this checkout's editable install


def test_update_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("uv", "pipx"):
        (bin_dir / tool).write_text("#!/bin/sh\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    uv, pipx = str(bin_dir / "uv"), str(bin_dir / "pipx")
    prefix = tmp_path / "prefix"
    assert update_command(Install("uv", "kilometers", prefix)) == [uv, "tool", "upgrade", "kilometers"]
    assert update_command(Install("uv", str(ROOT), prefix)) == [
        *(uv, "tool", "install", "--force", "--reinstall", str(ROOT))
    ]
    assert update_command(Install("pipx", "kilometers", prefix)) == [pipx, "upgrade", "kilometers"]
    assert update_command(Install("pipx", str(ROOT), prefix)) == [pipx, "install", "--force", str(ROOT)]
    assert update_command(Install("venv", "kilometers", prefix)) == [
        *(str(prefix / "bin" / "python"), "-m", "pip", "install", "--upgrade", "--quiet", "kilometers")
    ]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SystemExit):
        update_command(Install("uv", "kilometers", prefix))


def test_self_update_refuses_a_development_install() -> None:
    result = CliRunner().invoke(cli, ["self-update", "--dry-run"])
    assert result.exit_code == 1
    assert "development install" in result.stderr and "git pull" in result.stderr


# -- km completion --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shell", "marker"), [("bash", "complete -o"), ("zsh", "compdef"), ("fish", "complete")]
)
def test_completion_scripts(shell: str, marker: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0
    assert "_KM_COMPLETE" in result.stdout and marker in result.stdout


def test_completion_completes_commands() -> None:
    env = {**os.environ, "_KM_COMPLETE": "bash_complete", "COMP_WORDS": "km wr", "COMP_CWORD": "1"}
    proc = subprocess.run([KM], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0
    assert "plain,wrap" in proc.stdout.splitlines()
    env["COMP_WORDS"], env["COMP_CWORD"] = "km wrap --client c", "3"
    proc = subprocess.run([KM], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert {"plain,claude-desktop", "plain,claude-code", "plain,cursor"} <= set(proc.stdout.splitlines())
