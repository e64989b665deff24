"""Library code logs (kilometers.log); only the CLI prints, through one stderr handler."""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import kilometers
from kilometers import log
from kilometers.store.writer import StoreSink

from km_helpers import KM

LIBRARY = Path(kilometers.__file__).parent


def _library_modules() -> list[Path]:
    return [p for p in LIBRARY.rglob("*.py") if "cli" not in p.relative_to(LIBRARY).parts]


def test_no_library_module_calls_print() -> None:
    calls = []
    for path in _library_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                calls.append(f"{path.relative_to(LIBRARY)}:{node.lineno}")
    assert len(_library_modules()) > 50
    assert calls == [], "library code logs (logging.getLogger(__name__)); only kilometers.cli prints"


def test_a_repeated_warning_is_said_once(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("kilometers.test")
    for attempt in range(3):
        logger.warning(f"km: the store is full (attempt {attempt})", extra=log.once("store-full"))
        logger.warning("km: said every time")
    logger.warning("km: another problem", extra=log.once("other"))
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "km: the store is full (attempt 0)",
        "km: said every time",
        "km: said every time",
        "km: said every time",
        "km: another problem",
    ]


def test_setup_again_keeps_one_handler_and_forgets_what_was_said(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("kilometers.test")
    logger.warning("km: once", extra=log.once("k"))
    log.setup()
    log.setup()
    logger.warning("km: once", extra=log.once("k"))
    handlers = [h for h in logging.getLogger(log.LOGGER).handlers if isinstance(h, log.StderrLines)]
    assert len(handlers) == 1
    assert capsys.readouterr().err == "km: once\nkm: once\n"


def test_once_filter_alone() -> None:
    once = log.Once()
    records = [
        logging.LogRecord("kilometers.x", logging.WARNING, __file__, 1, "m", None, None) for _ in range(3)
    ]
    records[0].once = records[1].once = "k"
    assert [once.filter(r) for r in records] == [True, False, True]
    once.reset()
    assert once.filter(records[1])


def test_store_failure_is_said_once_per_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    sink = StoreSink(f"sqlite:///{blocker}/sub/km.db")  # a directory below a file: never writable
    for _ in range(3):
        sink._warn(OSError("nope"))
    err = capsys.readouterr().err
    assert err.count("km: cannot write the event store") == 1 and err.endswith("writable place\n")


def test_the_recorder_child_says_its_lines_on_stderr(km_home: Path) -> None:
    """`python -m kilometers.recorder_process` installs the handler too: its line reaches stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "kilometers.recorder_process"],
        input=b"\x07" + bytes(12),  # a frame that is not the session's: refused with one line
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.decode().splitlines() == ["km: the recorder process got no session to record"]


def test_km_prints_library_lines_on_stderr_only(km_home: Path) -> None:
    """A library warning through the CLI: the usual line, on stderr, nothing on stdout."""
    (km_home / "policy.toml").write_text("mode = 'nonsense'\non_error = 'log'\n")
    proc = subprocess.run(
        [KM, "monitor", "--policy", str(km_home / "policy.toml"), "--", sys.executable, "-c", "pass"],
        capture_output=True,
        timeout=120,
    )
    assert proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    said = [line for line in lines if "using the default policy" in line]
    assert len(said) == 1 and said[0].startswith(f"km: policy file {km_home / 'policy.toml'}"), lines
    assert said[0].endswith('on_error = "log": using the default policy (log only)')
