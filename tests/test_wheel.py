"""Every build of km carries the dashboard (issue 13, items 1 and 6).

A clean clone of this checkout's committed HEAD is built with pip (PEP 517, build isolation:
setuptools comes from the package registry), the wheel is installed with its dependencies into a
fresh virtualenv with no repository on the path, and that venv's `km ui` serves `/` and the
script it loads. The build reuses this checkout's web/node_modules when there is one (else the
build hook runs `npm ci`). About a minute, most of it pip installing km's dependencies.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from km_helpers import ROOT

pytestmark = pytest.mark.timeout(900)


def _base_python() -> str:
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def _env(home: Path, path: str | None = None) -> dict[str, str]:
    """This environment without anything that points at the repository or another venv."""
    drop = ("KM_", "XDG_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PIP_USER", "PIP_PREFIX")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(HOME=str(home), NO_COLOR="1")
    if path is not None:
        env["PATH"] = path
    return env


def _run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _clone(where: Path) -> Path:
    """A clean clone of this checkout's committed HEAD: no built dashboard, no node_modules."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    src = where / "src"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(src)], check=True)
    subprocess.run(["git", "-C", str(src), "checkout", "-q", head], check=True)
    assert not (src / "src" / "kilometers" / "server" / "static" / "index.html").exists()
    return src


def _wheel_files(dist: Path) -> list[str]:
    (wheel,) = dist.glob("kilometers-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


@dataclass
class Installed:
    src: Path  # the clone the wheel was built from
    venv: Path
    home: Path
    build_log: str

    @property
    def km(self) -> str:
        return str(self.venv / "bin" / "km")

    def env(self) -> dict[str, str]:  # km on PATH, as an installed km is
        return _env(self.home, f"{self.venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    home = tmp / "home"
    home.mkdir()
    src = _clone(tmp)
    node_modules = ROOT / "web" / "node_modules"
    if node_modules.is_dir():
        (src / "web" / "node_modules").symlink_to(node_modules.resolve())
    dist = tmp / "dist"
    build = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(src)], _env(home), tmp
    )
    assert build.returncode == 0, build.stdout + build.stderr
    files = _wheel_files(dist)
    assert "kilometers/server/static/index.html" in files
    assert any(re.fullmatch(r"kilometers/server/static/assets/index-.+\.js", f) for f in files), files

    venv = tmp / "venv"
    subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True, env=_env(home))
    (wheel,) = dist.glob("kilometers-*.whl")
    install = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], _env(home), tmp)
    assert install.returncode == 0, install.stdout + install.stderr
    return Installed(src, venv, home, build.stdout + build.stderr)


def _start_ui(installed: Installed) -> tuple[subprocess.Popen[str], str, list[str]]:
    """`km ui` from the venv, started outside any checkout: its launch URL and what it said before."""
    proc = subprocess.Popen(
        [installed.km, "ui", "--port", "0", "--no-open"],
        stderr=subprocess.PIPE,
        text=True,
        env=installed.env(),
        cwd=installed.home,
    )
    assert proc.stderr is not None
    before: list[str] = []
    for line in proc.stderr:
        if line.startswith("km ui: http://127.0.0.1:"):
            return proc, line.split(" ", 2)[2].strip(), before
        before.append(line)
    proc.wait(timeout=30)
    raise AssertionError("km ui did not start: " + "".join(before))


def test_wheel_from_a_clean_clone_serves_the_dashboard(installed: Installed) -> None:
    proc, launch, before = _start_ui(installed)
    try:
        assert "token=" in launch
        parts = urlsplit(launch)
        base = f"{parts.scheme}://{parts.netloc}"
        deadline = time.monotonic() + 60
        while True:  # until it answers
            try:
                page = httpx.get(launch, timeout=5)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "km ui never answered"
                time.sleep(0.1)
        assert page.status_code == 200, page.text
        assert "The dashboard" not in page.text
        script = re.search(r'<script[^>]+src="(/assets/[^"]+\.js)"', page.text)
        assert script, page.text
        asset = httpx.get(base + script[1], timeout=5)
        assert asset.status_code == 200
        assert "javascript" in asset.headers["content-type"] and len(asset.content) > 1000
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    said = "".join(before) + err
    assert "DeprecationWarning" not in said, said  # item 6: no AuthlibDeprecationWarning at start

    doctor = _run([installed.km, "doctor", "--offline"], installed.env(), installed.home)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "✓ dashboard assets present" in doctor.stdout


def test_no_authlib_deprecation_warning(installed: Installed) -> None:
    """Authlib's httpx integration warns (always: Authlib sets that filter itself, so `-W error`
    would not catch it) unless httpx2 is installed; km depends on httpx2."""
    python = str(installed.venv / "bin" / "python")
    for args in ([python, "-c", "import kilometers.server.oidc"], [installed.km, "serve", "--help"]):
        proc = _run(args, installed.env(), installed.home)
        assert proc.returncode == 0, proc.stderr
        assert "DeprecationWarning" not in proc.stderr, proc.stderr


def test_doctor_fails_when_the_dashboard_assets_are_missing(installed: Installed) -> None:
    python = str(installed.venv / "bin" / "python")
    static = (
        Path(
            _run(
                [python, "-c", "import kilometers, pathlib; print(pathlib.Path(kilometers.__file__).parent)"],
                installed.env(),
                installed.home,
            ).stdout.strip()
        )
        / "server"
        / "static"
    )
    (script,) = (static / "assets").glob("index-*.js")
    away = script.with_name("moved-away")
    script.rename(away)
    try:
        doctor = _run([installed.km, "doctor", "--offline"], installed.env(), installed.home)
    finally:
        away.rename(script)
    assert doctor.returncode == 1
    assert f"✗ the dashboard is not installed ({static} lacks assets/{script.name})" in doctor.stdout
    assert "fix: reinstall km" in doctor.stdout


def test_sdist_carries_the_dashboard_and_needs_no_node(installed: Installed, tmp_path: Path) -> None:
    """`python -m build`: the sdist has web/ and the built assets, so the wheel built from it
    (here with no npm on PATH) has the dashboard; present output is not rebuilt."""
    python = str(installed.venv / "bin" / "python")
    pip = _run([python, "-m", "pip", "install", "-q", "build"], installed.env(), tmp_path)
    assert pip.returncode == 0, pip.stderr
    no_node = tmp_path / "bin"
    no_node.mkdir()
    assert shutil.which("npm", path=str(no_node)) is None
    dist = tmp_path / "dist"
    build = _run(
        [python, "-m", "build", "-o", str(dist), str(installed.src)],
        _env(installed.home, str(no_node)),
        tmp_path,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert "building the km dashboard" not in build.stdout
    (sdist,) = dist.glob("kilometers-*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = [name.split("/", 1)[1] for name in tf.getnames() if "/" in name]
    assert {"setup.py", "web/package.json", "web/package-lock.json", "web/index.html"} <= set(names)
    assert "src/kilometers/server/static/index.html" in names
    assert not any(name.startswith("web/node_modules") for name in names)
    files = _wheel_files(dist)
    assert "kilometers/server/static/index.html" in files
    assert any(re.fullmatch(r"kilometers/server/static/assets/index-.+\.js", f) for f in files), files


def test_a_build_that_cannot_build_the_dashboard_fails_clearly(tmp_path: Path) -> None:
    """A clean clone and no npm on PATH: no wheel, and an error naming Node.js and npm."""
    src = _clone(tmp_path)
    no_node = tmp_path / "bin"
    no_node.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    dist = tmp_path / "dist"
    build = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(src)],
        _env(home, str(no_node)),
        tmp_path,
    )
    out = build.stdout + build.stderr
    assert build.returncode != 0, out
    assert not list(dist.glob("*.whl"))
    assert "the km dashboard is not built" in out and "needs Node.js (>= 20.19) and npm on PATH" in out, out
