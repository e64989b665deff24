"""Build hook: every sdist and wheel of km carries the dashboard.

The dashboard (web/, TypeScript) is built by ``npm run build`` into src/kilometers/server/static,
which git does not track. Whatever builds km (pip, uv, ``python -m build``, install.sh from a
checkout) runs ``build_py`` (wheels, editable installs) or ``sdist``; both build the dashboard
first when its output is missing (``npm ci`` only when web/node_modules is not there), and stop
with an error naming Node.js and npm when they cannot. Built output that is present (``make web``
ran, or this is an sdist, which ships the built assets) is used as it is. Metadata stays in
pyproject.toml.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.errors import SetupError

ROOT = Path(__file__).resolve().parent
WEB = ROOT / "web"
STATIC = ROOT / "src" / "kilometers" / "server" / "static"
NEEDS = "Node.js (>= 20.19) and npm"


def missing_assets(static: Path) -> list[str]:
    """What the built dashboard lacks: index.html, or a file under /assets/ that it references."""
    index = static / "index.html"
    if not index.is_file():
        return ["index.html"]
    refs = re.findall(r'(?:src|href)="/(assets/[^"]+)"', index.read_text(encoding="utf-8"))
    if not any(ref.endswith(".js") for ref in refs):
        return ["the script index.html loads"]
    return [ref for ref in refs if not (static / ref).is_file()]


def _npm(npm: str, *args: str) -> None:
    try:
        subprocess.run([npm, *args], cwd=WEB, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SetupError(
            f"building the km dashboard failed (`npm {' '.join(args)}` in {WEB}: {exc}); it needs {NEEDS}"
        ) from None


def build_dashboard() -> None:
    missing = missing_assets(STATIC)
    if not missing:
        return
    where = f"the km dashboard is not built ({STATIC} lacks {', '.join(missing)})"
    if not (WEB / "package.json").is_file():
        raise SetupError(
            f"{where} and its sources (web/) are not here: build from a git checkout or an sdist"
        )
    npm = shutil.which("npm")
    if npm is None:
        raise SetupError(
            f"{where}: building it needs {NEEDS} on PATH (https://nodejs.org); install them and build again"
        )
    print(f"building the km dashboard in {WEB} with npm", flush=True)
    if not (WEB / "node_modules").is_dir():
        _npm(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
    _npm(npm, "run", "build")
    missing = missing_assets(STATIC)
    if missing:
        raise SetupError(
            f"`npm run build` did not produce the dashboard: {STATIC} lacks {', '.join(missing)}"
        )


class BuildPyWithDashboard(build_py):
    def run(self) -> None:
        build_dashboard()
        super().run()


class SdistWithDashboard(sdist):
    def run(self) -> None:
        build_dashboard()
        super().run()


setup(cmdclass={"build_py": BuildPyWithDashboard, "sdist": SdistWithDashboard})
