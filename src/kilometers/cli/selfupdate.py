"""``km self-update`` (upgrade km the way it was installed) and ``km completion SHELL``."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import click
from click.shell_completion import get_completion_class

from ..install import MARKER, PACKAGE, Install, detect_install
from .common import fail


def _is_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or Path(source).expanduser().exists()


def update_command(install: Install) -> list[str]:
    """The command that upgrades ``install`` in place."""
    source = install.source
    local = _is_path(source)
    if local:
        source = str(Path(source).expanduser().resolve())
    if install.method == "uv":
        uv = shutil.which("uv")
        if not uv:
            fail("km was installed with uv, but uv is not on PATH")
        if local:
            return [uv, "tool", "install", "--force", "--reinstall", source]
        if source == PACKAGE:
            return [uv, "tool", "upgrade", PACKAGE]
        return [uv, "tool", "install", "--force", "--upgrade", source]
    if install.method == "pipx":
        pipx = shutil.which("pipx")
        if not pipx:
            fail("km was installed with pipx, but pipx is not on PATH")
        if source == PACKAGE:
            return [pipx, "upgrade", PACKAGE]
        return [pipx, "install", "--force", source]
    if install.method == "venv":
        python = install.prefix / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        return [str(python), "-m", "pip", "install", "--upgrade", "--quiet", source]
    if install.method == "dev":
        fail(f"this km is a development install (editable, in {install.prefix}): update it with git pull")
    fail(
        f"cannot tell how km was installed (in {install.prefix}); upgrade it the way you installed it, "
        f"e.g. `pip install --upgrade {PACKAGE}`, or reinstall with install.sh"
    )


@click.command("self-update")
@click.option("--dry-run", is_flag=True, help="Print the upgrade command; run nothing.")
@click.option("--source", help="Install from this path or requirement instead (default: as installed).")
def self_update_cmd(dry_run: bool, source: str | None) -> None:
    """Upgrade km the way it was installed (uv tool, pipx, or install.sh's venv)."""
    install = detect_install()
    if source:
        install = Install(install.method, source, install.prefix)
    command = update_command(install)
    click.echo(f"km was installed with {install.method} in {install.prefix}")
    click.echo(f"$ {shlex.join(command)}")
    if dry_run:
        return
    result = subprocess.run(command, check=False, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if result.returncode != 0:
        fail(f"the upgrade failed (exit {result.returncode})")
    if (
        install.method == "venv"
    ):  # keep the marker (pip does not touch it, but a fresh venv would not have it)
        marker = install.prefix / MARKER
        if not marker.exists():
            marker.write_text(
                json.dumps({"method": "venv", "source": install.source}) + "\n", encoding="utf-8"
            )
    scripts = install.prefix / ("Scripts" if os.name == "nt" else "bin")
    km = next((str(p) for p in (scripts / "km", scripts / "km.exe") if p.exists()), shutil.which("km"))
    if km:
        version = subprocess.run([km, "--version"], capture_output=True, text=True, check=False)
        click.echo(f"now: {version.stdout.strip() or version.stderr.strip()}")


SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion_cmd(shell: str) -> None:
    """Print the shell completion script for km.

    \b
    bash: add  eval "$(km completion bash)"  to ~/.bashrc
    zsh:  add  eval "$(km completion zsh)"   to ~/.zshrc
    fish: km completion fish > ~/.config/fish/completions/km.fish
    """
    ctx = click.get_current_context()
    root = ctx.find_root().command
    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - every choice has a class
        fail(f"no completion for {shell}")
    click.echo(cls(root, {}, "km", "_KM_COMPLETE").source())
