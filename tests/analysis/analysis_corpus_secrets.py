"""Secret corpus: generated positives in several contexts, and look-alike negatives."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from urllib.parse import quote

from analysis_corpus import ALNUM, B64, HEX, UPPER_DIGITS, URLSAFE, Case, Gen, embed, neg, pos

F = "secret"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(g: Gen, alg: str = "HS256") -> str:
    header = _b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    claims = {
        "sub": g.uuid(),
        "name": g.word().title(),
        "iat": 1732700000 + g.r.randint(0, 10**6),
        "scope": g.pick(["read", "read write", "admin"]),
    }
    payload = _b64url(json.dumps(claims).encode())
    sig = _b64url(bytes(g.r.randrange(256) for _ in range(32))) if alg != "none" else ""
    return f"{header}.{payload}.{sig}"


def _pem(g: Gen, kind: str) -> str:
    lines = [g.chars(64, B64) for _ in range(g.r.randint(4, 12))]
    label = f"{kind} PRIVATE KEY".strip()
    return (
        f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n{g.chars(24, B64)}==\n-----END {label}-----\n"
    )


GENERATORS: dict[str, Callable[[Gen], str]] = {
    "secret.aws_access_key": lambda g: (
        g.pick(["AKIA", "ASIA"]) + g.chars(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    ),
    "secret.gcp_api_key": lambda g: "AIza" + g.chars(35, URLSAFE),
    "secret.gcp_oauth_token": lambda g: "ya29." + g.chars(g.r.randint(80, 160), URLSAFE),
    "secret.gcp_client_secret": lambda g: "GOCSPX-" + g.chars(28, URLSAFE),
    "secret.azure_storage_key": lambda g: (
        f"DefaultEndpointsProtocol=https;AccountName={g.word()}store;AccountKey={g.chars(86, B64)}==;"
        "EndpointSuffix=core.windows.net"
    ),
    "secret.azure_sas_token": lambda g: (
        f"https://{g.word()}acct.blob.core.windows.net/{g.word()}/{g.word()}.csv?sv=2022-11-02&ss=b&srt=o&sp=r"
        f"&se=2026-12-31T23:59:59Z&st=2026-01-01T00:00:00Z&spr=https"
        f"&sig={quote(g.chars(43, B64) + '=', safe='')}"
    ),
    "secret.azure_client_secret": lambda g: (
        g.chars(3, ALNUM) + g.pick("0123456789") + "Q~" + g.chars(34, ALNUM + "_~.-")
    ),
    "secret.github_token": lambda g: (
        g.pick(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + g.chars(36)
        if g.r.random() < 0.75
        else "github_pat_" + g.chars(22) + "_" + g.chars(59)
    ),
    "secret.gitlab_token": lambda g: g.pick(["glpat-", "glpat-", "gldt-", "glrt-"]) + g.chars(20, URLSAFE),
    "secret.slack_token": lambda g: (
        f"{g.pick(['xoxb', 'xoxp'])}-{g.chars(11, '0123456789')}-{g.chars(13, '0123456789')}-{g.chars(24)}"
    ),
    "secret.slack_webhook": lambda g: (
        f"https://hooks.slack.com/services/T{g.chars(8, UPPER_DIGITS)}/"
        f"B{g.chars(10, UPPER_DIGITS)}/{g.chars(24)}"
    ),
    "secret.stripe_key": lambda g: (
        g.pick(["sk_live_", "rk_live_", "sk_test_"]) + g.chars(g.r.randint(24, 99))
    ),
    "secret.openai_api_key": lambda g: (
        "sk-proj-" + g.chars(156, URLSAFE)
        if g.r.random() < 0.6
        else "sk-" + g.chars(20) + "T3BlbkFJ" + g.chars(20)
    ),
    "secret.anthropic_api_key": lambda g: "sk-ant-api03-" + g.chars(93, URLSAFE) + "AA",
    "secret.huggingface_token": lambda g: (
        "hf_" + g.chars(34, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    ),
    "secret.npm_token": lambda g: "npm_" + g.chars(36),
    "secret.pypi_token": lambda g: "pypi-AgEIcHlwaS5vcmc" + g.chars(g.r.randint(60, 140), URLSAFE),
    "secret.private_key": lambda g: _pem(g, g.pick(["RSA", "OPENSSH", "EC", "", "ENCRYPTED", "DSA"])),
    "secret.jwt": lambda g: _jwt(g, g.pick(["HS256", "RS256", "ES256"])),
    "secret.url_password": lambda g: (
        f"{g.pick(['postgres', 'postgresql', 'mysql', 'mongodb+srv', 'amqp', 'https', 'redis'])}://"
        f"{g.pick(['admin', 'app', 'svc_user', 'deploy', ''])}:{g.chars(g.r.randint(10, 24), ALNUM + '!*_-')}"
        f"@{g.word()}-db.internal.example.com:{g.r.randint(1000, 9999)}/{g.word()}"
    ),
}


def _generic(g: Gen) -> list[tuple[str, str, dict[str, object] | str]]:
    """(note, kind, data) for credential-named fields and assignments."""
    out: list[tuple[str, str, dict[str, object] | str]] = []
    for _ in range(6):
        out.append(
            ("env password", "text", f"DB_HOST=db\nDB_PASSWORD={g.chars(14, ALNUM + '!@#%')}\nDB_PORT=5432\n")
        )
        out.append(("json client_secret", "args", {"client_id": g.uuid(), "client_secret": g.chars(40, HEX)}))
        out.append(
            (
                "bearer header",
                "text",
                f"curl -H 'Authorization: Bearer {g.chars(40, URLSAFE)}' https://api.x.io",
            )
        )
        out.append(("api_key field", "args", {"service": "weather", "api_key": g.chars(32)}))
        out.append(
            (
                "yaml password",
                "text",
                f"database:\n  user: app\n  password: {g.chars(12)}{g.r.randint(10, 99)}\n",
            )
        )
        out.append(
            (
                "query access_token",
                "text",
                f"https://graph.example.com/v1/me?access_token={g.chars(48)}&fields=id",
            )
        )
        out.append(("export token", "text", f"export SERVICE_API_TOKEN={g.chars(36)}"))
        out.append(
            ("django secret", "text", f"SECRET_KEY = 'django-insecure-{g.chars(40, ALNUM + '@#%^&*')}'")
        )
    return out


def positives() -> list[Case]:
    g = Gen(101)
    cases: list[Case] = []
    for rule, make in GENERATORS.items():
        for i in range(3):
            value = make(g)
            for text, ctx in embed(value, g):
                if rule == "secret.private_key" and ctx == "json text":
                    text = json.dumps({"type": "service_account", "private_key": value})
                cases.append(pos(F, rule, text, f"{rule} #{i} in {ctx}"))
        cases.append(pos(F, rule, {"content": f"value: {make(g)}"}, f"{rule} in tool arguments", "args"))
    for i in range(4):
        cases.append(
            pos(
                F,
                "secret.aws_secret_key",
                f"[default]\naws_access_key_id = AKIA{g.chars(16, UPPER_DIGITS)}\n"
                f"aws_secret_access_key = {g.chars(40, B64)}\n",
                f"aws credentials file #{i}",
            )
        )
        cases.append(
            pos(
                F,
                "secret.aws_secret_key",
                {"AWS_SECRET_ACCESS_KEY": g.chars(40, B64), "AWS_REGION": "eu-west-1"},
                f"aws secret env #{i}",
                "args",
            )
        )
    for note, kind, data in _generic(g):
        cases.append(pos(F, "secret.generic_credential", data, note, kind))
    # documentation examples are published, not live keys: not reported
    cases.append(neg(F, "aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AWS docs example id"))
    cases.append(
        neg(F, "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS docs example secret")
    )
    cases.append(pos(F, "secret.jwt", _jwt(g, "none"), "unsigned JWT"))
    cases.append(
        pos(
            F,
            "secret.private_key",
            json.dumps({"type": "service_account", "project_id": "demo", "private_key": _pem(g, "")}),
            "service account JSON as text (escaped newlines)",
        )
    )
    cases.append(pos(F, "secret.private_key", "-----BEGIN OPENSSH PRIVATE KEY-----", "truncated PEM header"))
    cases.append(
        pos(
            F,
            "secret.private_key",
            "PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nComment: key\nPublic-Lines: 2\nAAAA\nAAAA\n"
            f"Private-Lines: 2\n{g.chars(64, B64)}\n",
            "PuTTY key",
        )
    )
    cases.append(
        pos(F, "secret.url_password", f"redis://:{g.chars(20)}@cache.internal:6379/0", "redis no user")
    )
    cases.append(pos(F, "secret.stripe_key", "whsec_" + g.chars(32), "stripe webhook secret"))
    cases.append(
        pos(
            F,
            "secret.slack_token",
            f"xapp-1-A{g.chars(10, UPPER_DIGITS)}-{g.chars(13, '0123456789')}-{g.chars(64, HEX)}",
            "slack app token",
        )
    )
    cases.append(
        pos(
            F,
            "secret.azure_storage_key",
            f"Endpoint=sb://{g.word()}.servicebus.windows.net/;SharedAccessKeyName=Root;"
            f"SharedAccessKey={g.chars(43, B64)}=",
            "service bus connection string",
        )
    )
    cases.append(
        pos(F, "secret.generic_api_key", "sk-" + g.chars(32, HEX + "ABCDEF"), "deepseek-style sk key")
    )
    return cases


def _placeholders() -> list[str]:
    return [
        "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "ghp_1234567890abcdefghijklmnopqrstuvwxyz",
        "sk-...",
        "sk-your-api-key-here",
        "OPENAI_API_KEY=sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "AKIAXXXXXXXXXXXXXXXX",
        "AKIA0000000000000000",
        "api_key: YOUR_API_KEY",
        "API_KEY=<your-api-key>",
        "token: ${GITHUB_TOKEN}",
        "NPM_TOKEN={{ secrets.NPM_TOKEN }}",
        "const apiKey = process.env.OPENAI_API_KEY;",
        "aws_secret = os.environ['AWS_SECRET_ACCESS_KEY']",
        "password: str",
        "password = getpass.getpass()",
        "token = None",
        "password = request.form['password']",
        "secret_key = settings.SECRET_KEY",
        "api_key = config.get('api_key')",
        "if password == confirm_password:",
        "def get_token(self) -> str:",
        "token = jwt.encode(payload, signing_key)",
        "Authorization: Bearer <token>",
        "Authorization: Bearer $TOKEN",
        "password: ********",
        "password=changeme",
        "DB_PASSWORD=",
        "client_secret: REPLACE_ME",
        "postgres://user:password@localhost:5432/app",
        "mysql://root:${MYSQL_PASSWORD}@db/app",
        "https://user:<password>@example.com/",
        "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\n<your key here>\n-----END PRIVATE KEY-----",
        "xoxb-your-bot-token",
        "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
    ]


def _lookalikes(g: Gen) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for _ in range(12):
        out.append((g.uuid(), "uuid"))
        out.append((g.chars(40, HEX), "git sha"))
        out.append((f"commit {g.chars(40, HEX)}\nAuthor: dev\n\n    {g.sentence(5)}", "git log"))
        out.append(("sha256:" + g.chars(64, HEX), "docker digest"))
        raw = bytes(g.r.randrange(256) for _ in range(g.r.randint(150, 900)))
        out.append(
            ("data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + raw).decode(), "data url")
        )
        out.append((base64.b64encode(raw).decode(), "base64 blob"))
        out.append(("sha512-" + base64.b64encode(hashlib.sha512(raw).digest()).decode(), "npm integrity"))
        out.append(
            (
                f"{g.word()}-{g.word()}-{g.chars(10, HEX)}-{g.chars(5).lower()}",
                "k8s pod name",
            )
        )
    out += [
        ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC" + g.chars(300, B64) + " alice@laptop", "ssh public key"),
        (
            "-----BEGIN PUBLIC KEY-----\n"
            + g.chars(64, B64)
            + "\n"
            + g.chars(64, B64)
            + "\n-----END PUBLIC KEY-----",
            "PEM public key",
        ),
        ("-----BEGIN CERTIFICATE-----\n" + g.chars(64, B64) + "\n-----END CERTIFICATE-----", "certificate"),
        ("pk_live_" + g.chars(24), "stripe publishable key"),
        ("pk_test_" + g.chars(24), "stripe publishable test key"),
        ("cus_" + g.chars(14) + " pi_" + g.chars(24), "stripe object ids"),
        ("arn:aws:iam::123456789012:role/DeployRole", "aws arn"),
        ("C024BE91L U0G9QF9C6 T12345678", "slack ids"),
        ("xoxo-gossip-girl-fan-club-newsletter", "xoxo word"),
        ("pip install scikit-learn; import sklearn  # sk-learn", "sk-learn"),
        ("task-runner-configuration-settings-file", "task- identifier"),
        ("mask-abcdefghijklmnopqrstuvwxyz012345678", "mask- identifier"),
        ("ASIANCULTUREFESTIVAL", "capital word after ASIA"),
        ("glpat is GitLab's prefix", "glpat word"),
        ("eyJfake.eyJnotreal.signature", "fake jwt"),
        ("eyJhbGciOiJIUzI1NiJ9 is a base64 header", "jwt header only"),
        ("https://github.com/org/repo.git and git@github.com:org/repo.git", "git urls"),
        ("postgres://localhost:5432/app redis://cache:6379/0", "urls without password"),
        ("http://[::1]:8080/health https://example.com:8443/a?b=1", "urls with ports"),
        ("https://alice@bitbucket.org/team/repo.git", "url with user only"),
        ("npm_config_registry=https://registry.npmjs.org/", "npm config var"),
        ("hf_hub_download(repo_id='bert-base')", "hf function"),
        ("The token is valid for 30 days. Enter your password to continue.", "prose about tokens"),
        ("Your password must be at least 12 characters long and include a number.", "password policy"),
        ("API key: see the dashboard under Settings > Keys", "api key prose"),
        ("X-Amz-Signature=" + g.chars(64, HEX), "aws signature param"),
        ("AWS_REGION=us-east-1\nAWS_PROFILE=default\nAWS_DEFAULT_OUTPUT=json", "aws env without secrets"),
        ("AccountName=devstore;EndpointSuffix=core.windows.net", "azure conn string without key"),
        ("config=1&sig=abc&ver=2", "short sig param"),
        ("https://hooks.slack.com/services/", "slack webhook base"),
        ("1Password vault: Personal", "password manager name"),
        ("passwordless login via magic link", "passwordless"),
    ]
    return out


def _benign_fields(g: Gen) -> list[tuple[dict[str, object], str]]:
    out: list[tuple[dict[str, object], str]] = []
    for _ in range(5):
        out += [
            ({"nextPageToken": g.chars(44, URLSAFE)}, "nextPageToken"),
            ({"_meta": {"progressToken": g.chars(24)}}, "progressToken"),
            ({"token_type": "Bearer", "expires_in": 3600}, "token_type"),
            ({"max_tokens": 4096, "model": "claude-sonnet-4"}, "max_tokens"),
            ({"etag": g.chars(32, HEX), "checksum": g.chars(64, HEX)}, "hashes"),
            ({"password_hash": "$2b$12$" + g.chars(53, ALNUM + "./")}, "password hash field"),
            (
                {
                    "secret_name": "prod/db/credentials",
                    "secret_arn": "arn:aws:secretsmanager:eu-west-1:1:secret:x",
                },
                "secret name",
            ),
            ({"publicKey": g.chars(44, B64)}, "public key field"),
            ({"key": "ArrowUp", "code": "ArrowUp"}, "keyboard key"),
            ({"csrf_token": g.chars(32)}, "csrf token"),
            ({"password": {"type": "string", "description": "The account password"}}, "schema property"),
            ({"has_password": True, "password_set": "yes"}, "password flags"),
            ({"cursor": g.chars(40, B64), "requestId": g.uuid()}, "cursor and request id"),
        ]
    return out


def negatives() -> list[Case]:
    g = Gen(202)
    cases = [neg(F, p, f"placeholder {p[:30]!r}") for p in _placeholders()]
    cases += [neg(F, text, note) for text, note in _lookalikes(g)]
    cases += [neg(F, data, note, "args") for data, note in _benign_fields(g)]
    return cases


def cases() -> list[Case]:
    return positives() + negatives()


__all__ = ["GENERATORS", "Case", "cases"]
