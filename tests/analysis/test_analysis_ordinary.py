"""Ordinary MCP traffic must not raise anything above ``low``.

``data/ordinary_traffic.json`` was recorded from the real filesystem and everything servers
(``@modelcontextprotocol/server-filesystem``/``server-everything``, 2026.8.31): initialize,
tools/list (with annotations), prompts/resources lists, directory listings and trees, file
reads and writes, a diff, a tiny PNG image, structured content. The hand-written payloads below
cover what such sessions also carry: code, configs, lockfiles, git logs, API JSON, HTML, CSV.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kilometers.analysis import SEVERITIES, Analyzer, Finding
from kilometers.jsonrpc import classify

DATA = Path(__file__).resolve().parent / "data"
LOW = SEVERITIES.index("low")


def _replay(messages: list[dict[str, Any]]) -> list[tuple[str | None, Finding]]:
    analyzer = Analyzer()
    pending: dict[Any, tuple[str, str | None]] = {}
    out: list[tuple[str | None, Finding]] = []
    for m in messages:
        kind = classify(m)
        method = m.get("method")
        tool = None
        if kind == "request":
            name = m.get("params", {}).get("name")
            tool = name if method == "tools/call" else None
            pending[m["id"]] = (method, tool)
            direction = "client_to_server"
        elif kind == "notification":
            direction = "server_to_client" if method and "list_changed" in method else "client_to_server"
        else:
            method, tool = pending.pop(m["id"], (None, None))
            direction = "server_to_client"
        risk = analyzer.analyze(direction, kind, method, tool, m)
        out.extend((method, f) for f in risk.findings)
    return out


@pytest.mark.parametrize("server", ["filesystem", "everything"])
def test_recorded_sessions_of_real_servers(server: str) -> None:
    with open(DATA / "ordinary_traffic.json", encoding="utf-8") as f:
        traffic = json.load(f)
    findings = _replay(traffic[server])
    for method, finding in findings:
        print(server, method, finding.to_dict())
    assert all(SEVERITIES.index(f.severity) <= LOW for _, f in findings)


_CODE = """import os
import requests

API_URL = "https://api.example.com/v2"
API_KEY = os.environ["EXAMPLE_API_KEY"]


def fetch_user(user_id: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token or API_KEY}"}
    response = requests.get(f"{API_URL}/users/{user_id}", headers=headers, timeout=10)
    response.raise_for_status()
    return response.json()


class Settings:
    password_min_length = 12
    secret_key = os.getenv("SECRET_KEY", "")
    max_tokens = 4096
"""

_PACKAGE_LOCK = json.dumps(
    {
        "name": "web",
        "lockfileVersion": 3,
        "packages": {
            "node_modules/react": {
                "version": "18.3.1",
                "resolved": "https://registry.npmjs.org/react/-/react-18.3.1.tgz",
                "integrity": "sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/"
                "oWgHgm4WIcV+i7F2pTVj+2iQ==",
            }
        },
    },
    indent=2,
)

_GIT_LOG = """commit 3f9c2a1b7e4d5c6f8a9b0c1d2e3f4a5b6c7d8e9f
Author: Alice Example <alice@example.com>
Date:   Fri Nov 27 10:15:42 2026 +0100

    Fix pagination token handling (closes #418)

commit 9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b
Merge: 1a2b3c4 5d6e7f8
Author: Bob Builder <bob@example.org>
Date:   Thu Nov 26 18:02:11 2026 +0000

    Merge pull request #417 from acme/feature/export
"""

_API_JSON = json.dumps(
    {
        "data": [
            {
                "id": "7d9f8b6c-5d2e-4f3a-9b1c-0a1b2c3d4e5f",
                "type": "invoice",
                "attributes": {
                    "number": "INV-2026-000123",
                    "total": "1499.00",
                    "currency": "EUR",
                    "issued_at": "2026-11-27T10:15:42Z",
                    "status": "paid",
                },
            }
        ],
        "links": {"next": "https://api.example.com/v2/invoices?page[cursor]=eyJpZCI6IDEyM30"},
        "meta": {"nextPageToken": "CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA3czJjMnQ0EAE", "total": 1},
    }
)

_HTML = """<!doctype html><html><head><title>Docs</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><nav><a href="/">Home</a> | <a href="/pricing">Pricing</a></nav>
<main><h1>Getting started</h1><p>Install the CLI, then run <code>acme login</code>.</p>
<p>Need help? Write to support or open an issue.</p></main></body></html>"""

_CSV = """date,region,orders,revenue
2026-11-01,EMEA,1204,48213.55
2026-11-02,EMEA,1187,47002.10
2026-11-01,AMER,2310,99811.00
"""

_README = """# acme-cli

```sh
export ACME_TOKEN=<your-token>
acme deploy --env staging
curl -H "Authorization: Bearer $ACME_TOKEN" https://api.acme.dev/v1/status
```

IMPORTANT: the token needs the `deploy` scope.
"""

PAYLOADS = {
    "code": _CODE,
    "package-lock": _PACKAGE_LOCK,
    "git log": _GIT_LOG,
    "api json": _API_JSON,
    "html": _HTML,
    "csv": _CSV,
    "readme": _README,
    "listing": "\n".join(
        f"[FILE] {n}"
        for n in [".env.example", "id_rsa.pub", "docker-compose.yml", "secrets.md", ".gitignore", "Makefile"]
    ),
}


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_ordinary_tool_results(name: str) -> None:
    message = {"jsonrpc": "2.0", "id": 4, "result": {"content": [{"type": "text", "text": PAYLOADS[name]}]}}
    risk = Analyzer().analyze("server_to_client", "response", "tools/call", "read_text_file", message)
    print(name, risk.to_dict())
    assert risk.level in ("none", "low")


def test_ordinary_tool_calls() -> None:
    analyzer = Analyzer()
    with open(DATA / "fs_tools_list.json", encoding="utf-8") as f:
        listing = dict(json.load(f))["tools/list"]
    analyzer.analyze(
        "server_to_client", "response", "tools/list", None, {"jsonrpc": "2.0", "id": 1, "result": listing}
    )
    calls = [
        ("read_text_file", {"path": "/home/alice/projects/demo/src/main.py", "head": 40}),
        ("list_directory", {"path": "/home/alice/projects/demo"}),
        ("search_files", {"path": "/home/alice/projects/demo", "pattern": "**/*.test.ts"}),
        ("write_file", {"path": "/home/alice/projects/demo/notes.md", "content": _README}),
        (
            "edit_file",
            {
                "path": "/home/alice/projects/demo/src/main.py",
                "edits": [{"oldText": "print('hi')", "newText": "print('hello')"}],
            },
        ),
        (
            "move_file",
            {"source": "/home/alice/projects/demo/a.txt", "destination": "/home/alice/projects/demo/b.txt"},
        ),
        ("get_file_info", {"path": "/home/alice/projects/demo/.env.example"}),
    ]
    for i, (tool, arguments) in enumerate(calls):
        message = {
            "jsonrpc": "2.0",
            "id": 10 + i,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        }
        risk = analyzer.analyze("client_to_server", "request", "tools/call", tool, message)
        print(tool, risk.to_dict())
        assert risk.level in ("none", "low"), risk
