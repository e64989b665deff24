"""Plugins load through the `kilometers` entry-point group (an example plugin lives in
tests/plugin_example, installed by putting its directory, with its .dist-info, on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kilometers import plugins

EXAMPLE = Path(__file__).resolve().parents[1] / "plugin_example"


@pytest.fixture
def example_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setattr(plugins, "_manager", None)
    monkeypatch.delenv("KM_NO_PLUGINS", raising=False)


def test_example_plugin_provides_a_sink_and_a_detector(
    example_installed: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KM_EXAMPLE_PLUGIN_OUT", str(tmp_path / "kinds.txt"))
    [sink] = plugins.plugin_sinks(settings=None)
    assert sink.name == "example-kinds"
    [detector] = plugins.plugin_detectors()
    message = {"params": {"name": "t", "arguments": {"q": "HELLO"}}}
    [finding] = detector("client_to_server", "request", "tools/call", "t", message)
    assert finding["rule"] == "plugin.example.shouting"
    assert "km_example_plugin" in sys.modules


def test_plugins_can_be_disabled(example_installed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KM_NO_PLUGINS", "1")
    assert plugins.plugin_detectors() == []
