"""km starts fast (issue 11, item 4): ``km --help`` and ``km monitor``'s relay leave the heavy
libraries (SQLAlchemy, FastAPI, OpenTelemetry, the analysis) unimported, and the lazily
loaded commands are listed with their own summaries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from kilometers.cli.main import COMMANDS, cli

HEAVY = ("sqlalchemy", "fastapi", "starlette", "opentelemetry", "uvicorn", "alembic", "kilometers.analysis",
         "kilometers.host", "kilometers.store", "kilometers.model", "click")  # fmt: skip


def _imported_after(code: str) -> list[str]:
    probe = (
        "import sys, json\n"
        f"{code}\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({HEAVY!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60, check=True).stdout
    return list(json.loads(out.splitlines()[-1]))


def test_the_relay_path_imports_nothing_heavy() -> None:
    # what km monitor's fast path imports before and while it forwards (cli/relay.py)
    loaded = _imported_after(
        "from kilometers.cli import entry, relay\n"
        "from kilometers.agent import link\n"
        "from kilometers.proxy import stdio\n"
        "from kilometers import paths\n"
        "relay.eligible({})"
    )
    assert loaded == []


def test_what_precedes_the_first_byte_leaves_the_link_and_typing_unimported() -> None:
    """Before the server starts, the relay needs only the handover and the proxy: the agent's
    link (sockets, the wire format) and ``typing`` load on the link thread, while bytes flow."""
    probe = (
        "import sys\n"
        "from kilometers.cli import entry, relay\n"
        "from kilometers.frames import Handover\n"
        "from kilometers.proxy.stdio import StdioProxy\n"
        "relay.eligible({})\n"
        "Handover()\n"
        "print(sorted(m for m in ('typing', 'socket', 'kilometers.agent.link', 'kilometers.config') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60, check=True).stdout
    assert out.decode().split() == ["[]"]


@pytest.mark.parametrize("with_file", [False, True], ids=["no config file", "a config file"])
def test_the_link_resolves_the_settings_with_the_least_imports(tmp_path: Path, with_file: bool) -> None:
    """The link thread reads the settings of every ``km monitor``: writing them (``tomli_w``) is
    ``km setup``'s, logging is for a deprecated variable only, and TOML is read when there is a file."""
    if with_file:
        (tmp_path / "config.toml").write_text("[monitor]\npayload_limit = 100\n")
    probe = (
        "import sys\nfrom kilometers import config\n"
        "assert config.load_lenient({})[0].payload_limit == (100 if sys.argv[1] == 'True' else 0)\n"
        "print(*sorted(m for m in ('tomli_w', 'tomllib', 'logging') if m in sys.modules))"
    )
    env = {**os.environ, "KM_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", probe, str(with_file)], env=env, capture_output=True, timeout=60, check=True
    ).stdout
    assert out.decode().split() == (["tomllib"] if with_file else [])


def test_km_help_imports_no_command_module() -> None:
    loaded = _imported_after(
        "sys.argv = ['km', '--help']\n"
        "from kilometers.cli.entry import main\n"
        "import contextlib, io\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main()"
    )
    assert [m for m in loaded if m != "click" and not m.startswith("click.")] == []


def test_every_command_is_listed_with_its_own_summary() -> None:
    ctx = click.Context(cli)
    for name, (_, _, summary) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
        for limit in (45, 80):
            assert click.Command(None, help=summary).get_short_help_str(limit) == command.get_short_help_str(
                limit
            ), name


def test_an_unknown_command_is_still_refused() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kilometers.cli.entry", "nope"], capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == 2 and b"No such command 'nope'" in proc.stderr
