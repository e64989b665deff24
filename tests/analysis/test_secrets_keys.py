"""Key-aware secret detection: a value is a secret when the key, the sibling name or the flag
holding it says so; guards keep ordinary values, placeholders and documentation examples quiet;
redaction follows detection (payloads, command lines, environments, session fields)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kilometers.analysis import Analyzer, Finding, redact
from kilometers.analysis.text import credential_key_kind
from kilometers.model import Session
from kilometers.security import Policy, SecurityStage

from km_helpers import ECHO_SERVER, PYTHON, km_events, km_sessions

PASSWORD = "Tq8#wV2m!Lp9zR"
TOKEN = "f3Kq9ZtP0xW7bN2mC5vL8dR1yH4sJ6aE"
AWS_SECRET = "q7Xb2Lm9Pz4Kt8Wv1Nc6Rd3Hs5Jf0Gy/Ae+BuQiZ"


def call_findings(arguments: Any) -> list[Finding]:
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "t", "arguments": arguments},
    }
    risk = Analyzer().analyze("client_to_server", "request", "tools/call", "t", message)
    return [f for f in risk.findings if f.rule.startswith("secret.")]


def text_findings(text: str) -> list[Finding]:
    message = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": text}]}}
    risk = Analyzer().analyze("server_to_client", "response", "tools/call", "read_file", message)
    return [f for f in risk.findings if f.rule.startswith("secret.")]


def redacted_text(message: Any) -> str:
    return json.dumps(redact(message).message)


# -- key spellings and languages ------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "DB_PASSWORD",
        "dbPassword",
        "db-password",
        "spring.datasource.password",
        "PGPASSWORD",
        "admin_pw",
        "passphrase",
        "Passwort",
        "Kennwort",
        "contraseña",
        "CONTRASEÑA",
        "mot_de_passe",
        "senha",
        "parola",
        "wachtwoord",
        "hasło",
        "пароль",
    ],
)
def test_password_keys_in_any_spelling_and_language(key: str) -> None:
    assert credential_key_kind(key) == "password"
    assert [f.rule for f in call_findings({key: PASSWORD})] == ["secret.generic_credential"]
    assert [f.rule for f in text_findings(f"{key}={PASSWORD}\n")] == ["secret.generic_credential"]


@pytest.mark.parametrize(
    "key", ["client_secret", "x-api-key", "Ocp-Apim-Subscription-Key", "privKey", "bearer", "SLACK_BOT_TOKEN"]
)
def test_token_and_key_names(key: str) -> None:
    assert credential_key_kind(key) == "secret"
    assert [f.rule for f in call_findings({key: TOKEN})] == ["secret.generic_credential"]


@pytest.mark.parametrize("key", ["password_hash", "passwordPolicy", "hashedPassword", "password_salt", "kpw"])
def test_what_only_mentions_a_password_is_no_credential_name(key: str) -> None:
    assert credential_key_kind(key) == ""


# -- sibling names, flags, layouts ----------------------------------------------------------------


def test_env_lists_name_their_value() -> None:
    env = [{"name": "NODE_ENV", "value": "production"}, {"name": "POSTGRES_PASSWORD", "value": PASSWORD}]
    [f] = call_findings({"env": env})
    assert f.path == "/params/arguments/env/1/value"
    ecs = [{"Name": "AWS_SECRET_ACCESS_KEY", "Value": AWS_SECRET}]
    assert [f.rule for f in call_findings({"environment": ecs})] == ["secret.aws_secret_key"]
    headers = [{"key": "X-Api-Key", "value": TOKEN}]
    assert [f.rule for f in call_findings({"header": headers})] == ["secret.generic_credential"]


def test_a_sibling_that_names_nothing_secret_or_a_reference_is_quiet() -> None:
    assert call_findings({"env": [{"name": "BUILD_ID", "value": TOKEN}]}) == []
    ref = {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
    assert call_findings({"env": [ref]}) == []


def test_command_line_flags_and_header_pairs() -> None:
    [f] = call_findings({"args": ["--host", "db", "--password", PASSWORD, "--verbose"]})
    assert f.path == "/params/arguments/args/3"
    assert call_findings({"args": ["--password-file", "/run/secrets/db", "--no-password", "--verbose"]}) == []
    assert [f.rule for f in call_findings({"headers": [["Authorization", f"Bearer {TOKEN}"]]})] == [
        "secret.generic_credential"
    ]
    # two unrelated strings (an event's tool name and its string JSON-RPC id) are no pair
    assert not redact(["rotate_api_key", TOKEN]).changed
    assert len(text_findings(f"mytool --token {TOKEN} --dry-run")) == 1
    assert len(text_findings(f'psql --password "{PASSWORD}" -h db')) == 1
    assert text_findings("psql --no-password --host db --username app") == []


@pytest.mark.parametrize(
    "text",
    [
        f"    env:\n      - name: DB_PASSWORD\n        value: {PASSWORD}\n",
        f'<add key="DbPassword" value="{PASSWORD}" />',
        f'{{"Name": "API_TOKEN", "Value": "{TOKEN}"}}',
        f"[database]\npassword = {PASSWORD}\n",
        f'<datasource username="app" password="{PASSWORD}" />',
        f"spring.datasource.password={PASSWORD}\n",
        f"Server=tcp:db,1433;Database=app;User ID=app;Password={PASSWORD};",
    ],
)
def test_configuration_languages(text: str) -> None:
    found = text_findings(text)
    assert found and all(PASSWORD not in f.message and TOKEN not in f.message for f in found)


def test_sibling_value_of_the_next_entry_is_not_taken() -> None:
    text = (
        "      - name: DB_PASSWORD\n        valueFrom:\n          secretKeyRef:\n            name: db\n"
        "      - name: REPLICA_COUNT\n        value: Abc123xyz789\n"
    )
    assert text_findings(text) == []


# -- guards ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        {"password": "required"},
        {"password": "not_required", "passwd": "Optional"},
        {"token_count": 12, "max_tokens": 100},
        {"secret": False, "password": True},
        {"password": "3600", "pwd": "/home/dev/project"},
        {"token_ttl": "30m", "password": "12:00:00"},
        {"api_key": "${OPENAI_API_KEY}", "token": "{{ secrets.TOKEN }}"},
        {"password": "<your-password>", "secret": "********", "token": "xxxxxxxxxxxxxxxxxxxx"},
        {"password": "changeme", "client_secret": "YOUR_CLIENT_SECRET"},
        {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE"},
        {"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
        {"OPENAI_API_KEY": "sk-..."},
        {"database_url": "postgres://app@db.internal:5432/orders"},
        {"password_hash": "$2b$12$KIXQJ0d8zq1F7wYc3mJx0eYpP9WZ0R5f8qYt2bL3nV6sM1aC4dE7u"},
        {"url": "redis://:%7Bpassword%7D@cache:6379/0"},
    ],
)
def test_ordinary_values_placeholders_and_examples_stay_quiet(arguments: dict[str, Any]) -> None:
    assert call_findings(arguments) == []


def test_a_base64_key_that_starts_with_a_slash_is_not_a_path() -> None:
    assert [f.rule for f in call_findings({"aws_secret_access_key": "/" + AWS_SECRET[1:]})] == [
        "secret.aws_secret_key"
    ]


def test_percent_encoded_url_passwords_are_found() -> None:
    [f] = text_findings("redis://:%21Xq9%5EvT2mLp7w@cache.internal:6379/0")
    assert f.rule == "secret.url_password"


# -- redaction follows detection ------------------------------------------------------------------


def test_credential_named_fields_are_redacted_not_only_reported() -> None:
    message = {
        "params": {"arguments": {"DB_PASSWORD": PASSWORD, "env": [{"name": "API_KEY", "value": TOKEN}]}}
    }
    text = redacted_text(message)
    assert PASSWORD not in text and TOKEN not in text
    assert text.count("[REDACTED:secret.generic_credential]") == 2
    risk, payload = (
        Analyzer().process_payload(
            "client_to_server",
            "request",
            "tools/call",
            "t",
            json.dumps({"jsonrpc": "2.0", "id": 1, **message}),
        )[0],
        None,
    )
    assert risk.level == "medium" and payload is None


def test_session_command_line_and_error_messages_are_redacted() -> None:
    session = Session(
        command=["mytool", "--password", PASSWORD, "--api-key=" + TOKEN, "-e", f"DB_PASSWORD={PASSWORD}"],
        cwd="/srv",
        server={"name": "s", "env": [{"name": "SECRET_KEY", "value": TOKEN}]},
    )
    SecurityStage(Policy()).redact_session(session)
    stored = json.dumps([session.command, session.server])
    assert PASSWORD not in stored and TOKEN not in stored
    assert session.command[:2] == ["mytool", "--password"]
    error = {
        "jsonrpc": "2.0",
        "id": 1,
        "error": {"code": -1, "message": f"login failed: password={PASSWORD}"},
    }
    assert PASSWORD not in redacted_text(error)


def test_printf_formats_are_placeholders_but_a_percent_inside_a_password_is_not() -> None:
    assert call_findings({"password": "%s", "db_password": "%(password)s"}) == []
    assert [f.rule for f in call_findings({"password": "Order350%server"})] == ["secret.generic_credential"]


def test_km_monitor_stores_key_aware_secrets_only_redacted(run_km: Any, km_home: Path) -> None:
    """End to end: the server's command line, a tool call's env list and YAML, a tool error:
    the client and server see the real values, nothing km stores or exports does."""
    km = run_km([PYTHON, ECHO_SERVER, "--password", PASSWORD, f"--api-key={TOKEN}"])
    yaml = f"env:\n  - name: DB_PASSWORD\n    value: {PASSWORD}\n"
    client = {"name": "t", "version": "1"}
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": client}
    reason = f"login refused: password={PASSWORD}"
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": yaml}},
        },
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "fail", "arguments": {"reason": reason}},
        },
    ]
    km.write(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
    km.stdout.wait_for(lambda data: b'"id":3' in data.replace(b" ", b""), timeout=60)
    code, out, _ = km.finish()
    assert code == 0 and PASSWORD.encode() in out  # the client got the real bytes
    for db_file in km_home.glob("km.db*"):
        assert PASSWORD.encode() not in db_file.read_bytes() and TOKEN.encode() not in db_file.read_bytes()
    events = km_events(km_home)
    [session] = km_sessions(km_home)
    stored = json.dumps([events, session])
    assert PASSWORD not in stored and TOKEN not in stored
    assert session["command"][-3:] == ["--password", "[REDACTED:secret.generic_credential]",
                                       "--api-key=[REDACTED:secret.generic_credential]"]  # fmt: skip


def test_working_directories_are_paths_not_passwords() -> None:
    assert call_findings({"pwd": "C:\\Users\\dev\\project", "PWD": "/usr/src/app", "cwd": "~/code/km"}) == []
    assert text_findings("PWD=C:\\Users\\dev\\My Project\n") == []


def test_code_assigning_credential_names_is_not_reported() -> None:
    code = (
        "        token = request.cookies.get(SESSION_COOKIE)\n"
        "        api_key = sys.stdin.readline().strip()\n"
        "password = m.group(2)\n"
        '_HEADER_TOKEN = re.compile(r"^[!#$%&*+.^_|~0-9A-Za-z]+$")\n'
    )
    assert text_findings(code) == []
    assert len(text_findings("DB_PASSWORD=p&ss;w0rd!x\n")) == 1  # a .env line runs to its end
