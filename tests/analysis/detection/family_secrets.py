"""Secrets recognisable by the key or the name that holds them, in the layouts configuration
comes in (JSON, env lists, .env, YAML, TOML/INI, XML, properties, HTTP headers, command lines),
connection strings with passwords, and look-alikes that must stay quiet (ordinary values under
credential-sounding keys, placeholders, documentation examples, recorded traffic of real servers).

The tune part and the held-out part are built from different seeds *and* different templates
(key spellings, layouts, negative kinds), so the held-out numbers say how the rules generalise.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

from .cases import (
    ALNUM,
    B64,
    HEX,
    URLSAFE,
    Case,
    Gen,
    Split,
    Step,
    call,
    ordinary_steps,
    result_text,
    structured_result,
)

F = "secrets"
ANY = {"secret.*"}

# -- keys, by what they hold -----------------------------------------------------------------------

KEYS: dict[Split, dict[str, list[str]]] = {
    "tune": {
        "password": [
            "DB_PASSWORD",
            "dbPassword",
            "db-password",
            "password",
            "Password",
            "POSTGRES_PASSWORD",
            "MYSQL_ROOT_PASSWORD",
            "passwd",
            "admin_pwd",
            "REDIS_PASS",
            "smtp.password",
            "passphrase",
            "Passwort",
            "contraseña",
            "senha",
        ],
        "secret": [
            "client_secret",
            "clientSecret",
            "APP_SECRET",
            "JWT_SECRET",
            "secret_key",
            "webhook-secret",
        ],
        "token": ["access_token", "accessToken", "AUTH_TOKEN", "api_token", "refresh-token", "bearer_token"],
        "apikey": ["api_key", "apiKey", "API_KEY", "x-api-key", "apikey", "OPENAI_API_KEY"],
        "private": ["private_key", "privateKey", "SIGNING_PRIVATE_KEY"],
        "aws": ["AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"],
    },
    "heldout": {
        "password": [
            "PGPASSWORD",
            "database.password",
            "spring.datasource.password",
            "mot_de_passe",
            "parola",
            "Kennwort",
            "wachtwoord",
            "ROOT_PASS",
            "mailPassword",
            "LDAP_BIND_PASSWORD",
            "keystorePassword",
            "user_passwd",
        ],
        "secret": ["consumer_secret", "SESSION_SECRET", "oauthClientSecret", "signing-secret", "SECRET"],
        "token": ["GH_TOKEN", "auth-token", "SLACK_BOT_TOKEN", "personalAccessToken", "X-Auth-Token"],
        "apikey": ["Ocp-Apim-Subscription-Key", "x-goog-api-key", "ApiKey", "STRIPE_API_KEY", "api.key"],
        "private": ["encryption_key", "privateKeyBase64", "MASTER_KEY"],
        "aws": ["secretAccessKey", "AWS_SECRET_KEY"],
        "credential": ["credentials", "CREDENTIAL", "auth"],
    },
}


def value_for(g: Gen, kind: str) -> str:
    """A realistic generated value for a credential of this kind."""
    if kind == "password":
        return g.password()
    if kind == "aws":
        return g.chars(40, B64)
    if kind == "private":
        return g.chars(g.pick([44, 64, 88]), B64) + g.pick(["", "=", "=="])
    alphabet = g.pick([ALNUM, HEX, URLSAFE, B64])
    return g.chars(g.int(24, 48), alphabet)


# -- layouts ---------------------------------------------------------------------------------------
# a layout turns (key, value, gen) into the steps carrying them


def _flat_args(k: str, v: str, g: Gen) -> list[Step]:
    return [call(g.pick(["configure", "set_config", "deploy"]), {"service": g.word(), k: v, "port": 5432})]


def _nested_args(k: str, v: str, g: Gen) -> list[Step]:
    return [call("create_service", {"name": g.word(), "config": {g.word(): {"host": "db.internal", k: v}}})]


def _env_list_result(k: str, v: str, g: Gen) -> list[Step]:
    env = [
        {"name": "NODE_ENV", "value": "production"},
        {"name": k, "value": v},
        {"name": "PORT", "value": "8080"},
    ]
    g.r.shuffle(env)
    pod = {
        "kind": "Pod",
        "spec": {"containers": [{"name": g.word(), "image": f"{g.word()}:1.4", "env": env}]},
    }
    return [structured_result(pod, "kubectl_get")]


def _dotenv(k: str, v: str, g: Gen) -> list[Step]:
    lines = [
        "# local settings",
        "LOG_LEVEL=debug",
        f"{k.upper().replace('-', '_').replace('.', '_')}={v}",
        "PORT=3000",
    ]
    return [result_text("\n".join(lines) + "\n")]


def _yaml(k: str, v: str, g: Gen) -> list[Step]:
    q = g.pick(["", '"', "'"])
    text = f"{g.word()}:\n  host: db.internal\n  port: 5432\n  {k}: {q}{v}{q}\n  pool: 10\n"
    return [result_text(text, "read_text_file")]


def _toml(k: str, v: str, g: Gen) -> list[Step]:
    return [result_text(f'[{g.word()}]\nhost = "db.internal"\n{k} = "{v}"\ntimeout = 30\n', "read_text_file")]


def _cli_pair(k: str, v: str, g: Gen) -> list[Step]:
    flag = "--" + k.lower().replace("_", "-").replace(".", "-")
    return [
        call(
            "run_command",
            {"command": g.pick(["psql", "mytool", "deploy"]), "args": ["--host", "db", flag, v]},
        )
    ]


def _cli_eq(k: str, v: str, g: Gen) -> list[Step]:
    flag = "--" + k.lower().replace("_", "-").replace(".", "-")
    return [
        call(
            "run_command", {"command": f"{g.pick(['mytool', './deploy.sh'])} --verbose {flag}={v} --dry-run"}
        )
    ]


def _header_text(k: str, v: str, g: Gen) -> list[Step]:
    return [result_text(f"GET /v1/{g.word()} HTTP/1.1\nHost: api.{g.word()}.io\n{k}: {v}\nAccept: */*\n")]


def _headers_list(k: str, v: str, g: Gen) -> list[Step]:
    headers = [{"key": "Content-Type", "value": "application/json"}, {"key": k, "value": v}]
    return [
        call("http_request", {"method": "GET", "url": f"https://api.{g.word()}.io/v1", "header": headers})
    ]


def _compose(k: str, v: str, g: Gen) -> list[Step]:
    key = k.upper().replace("-", "_").replace(".", "_")
    text = (
        f"services:\n  {g.word()}:\n    image: postgres:16\n    environment:\n"
        f'      - TZ=UTC\n      - {key}={v}\n    ports:\n      - "5432:5432"\n'
    )
    return [result_text(text, "read_text_file")]


def _k8s_yaml(k: str, v: str, g: Gen) -> list[Step]:
    q = g.pick(['"', ""])
    text = (
        "    env:\n      - name: LOG_LEVEL\n        value: info\n"
        f'      - name: {k}\n        value: {q}{v}{q}\n      - name: REPLICAS\n        value: "3"\n'
    )
    return [result_text(text, "read_text_file")]


def _ini(k: str, v: str, g: Gen) -> list[Step]:
    return [result_text(f"[{g.word()}]\nhost=db.internal\nuser = admin\n{k} = {v}\n\n[log]\nlevel = info\n")]


def _xml_add(k: str, v: str, g: Gen) -> list[Step]:
    text = (
        '<configuration>\n  <appSettings>\n    <add key="Environment" value="Production" />\n'
        f'    <add key="{k}" value="{v}" />\n  </appSettings>\n</configuration>\n'
    )
    return [result_text(text, "read_text_file")]


def _xml_attr(k: str, v: str, g: Gen) -> list[Step]:
    key = k.replace(".", "_").replace("-", "_")
    return [result_text(f'<datasource url="jdbc:postgresql://db/{g.word()}" username="app" {key}="{v}" />')]


def _properties(k: str, v: str, g: Gen) -> list[Step]:
    return [result_text(f"server.port=8080\n{k}={v}\nlogging.level.root=INFO\n", "read_text_file")]


def _ecs_json(k: str, v: str, g: Gen) -> list[Step]:
    task = {
        "family": g.word(),
        "containerDefinitions": [
            {"name": g.word(), "environment": [{"Name": "STAGE", "Value": "prod"}, {"Name": k, "Value": v}]}
        ],
    }
    return [result_text(json.dumps(task, indent=2), "describe_task_definition")]


def _curl(k: str, v: str, g: Gen) -> list[Step]:
    return [
        call("run_command", {"command": f'curl -s -H "{k}: {v}" https://api.{g.word()}.com/v2/{g.word()}'})
    ]


def _credentials_nested(k: str, v: str, g: Gen) -> list[Step]:
    data = {"service": g.word(), "credentials": {"username": "svc_" + g.word(), k: v}, "region": "eu-west-1"}
    return [structured_result(data, "get_connection")]


def _hcl(k: str, v: str, g: Gen) -> list[Step]:
    text = f'resource "aws_db_instance" "{g.word()}" {{\n  engine   = "postgres"\n  {k} = "{v}"\n}}\n'
    return [result_text(text, "read_text_file")]


def _docker_env(k: str, v: str, g: Gen) -> list[Step]:
    key = k.upper().replace("-", "_").replace(".", "_")
    return [call("run_command", {"command": f"docker run -d -e TZ=UTC -e {key}={v} {g.word()}:latest"})]


Layout = Callable[[str, str, Gen], list[Step]]

LAYOUTS: dict[Split, dict[str, Layout]] = {
    "tune": {
        "json args": _flat_args,
        "nested json": _nested_args,
        "k8s env list": _env_list_result,
        ".env": _dotenv,
        "yaml": _yaml,
        "toml": _toml,
        "cli --flag value": _cli_pair,
        "cli --flag=value": _cli_eq,
        "http header": _header_text,
        "headers list": _headers_list,
    },
    "heldout": {
        "compose env": _compose,
        "k8s yaml env": _k8s_yaml,
        "ini": _ini,
        "xml add key/value": _xml_add,
        "xml attribute": _xml_attr,
        "properties": _properties,
        "ecs Name/Value": _ecs_json,
        "curl header": _curl,
        "credentials object": _credentials_nested,
        "hcl": _hcl,
        "docker -e": _docker_env,
    },
}

HEADER_LAYOUTS = {"http header", "headers list", "curl header"}


def _keyed(split: Split, g: Gen, count: int) -> list[Case]:
    out: list[Case] = []
    layouts = LAYOUTS[split]
    keys = KEYS[split]
    for i in range(count):
        kind = g.pick(sorted(keys))
        key = g.pick(keys[kind])
        name = g.pick(sorted(layouts))
        if name in HEADER_LAYOUTS and kind not in ("token", "apikey"):
            kind, key = "apikey", g.pick(keys["apikey"])
        value = value_for(g, "secret" if kind == "credential" else kind)
        steps = layouts[name](key, value, g)
        out.append(Case(F, tuple(steps), ANY, split, f"{key} in {name} #{i}", (value,)))
    return out


# -- connection strings and authorization headers -------------------------------------------------------


def _conn_tune(g: Gen) -> tuple[str, str]:
    pw = quote(g.password(), safe="")  # as it is written in a URL
    user, host = g.pick(["app", "admin", "svc"]), f"{g.word()}-db.internal"
    template = g.pick(
        [
            f"postgres://{user}:{pw}@{host}:5432/{g.word()}",
            f"postgresql://{user}:{pw}@{host}/{g.word()}?sslmode=require",
            f"mysql://{user}:{pw}@{host}:3306/{g.word()}",
            f"redis://:{pw}@{host}:6379/0",
        ]
    )
    return template, pw


def _conn_heldout(g: Gen) -> tuple[str, str]:
    pw = g.chars(g.int(12, 24), ALNUM)
    user = g.pick(["app", "reporting", "etl"])
    template = g.pick(
        [
            f"mongodb+srv://{user}:{pw}@cluster0.{g.chars(5, HEX)}.mongodb.net/{g.word()}?retryWrites=true",
            f"Server=tcp:{g.word()}.database.windows.net,1433;Database={g.word()};"
            f"User ID={user};Password={pw};",
            f"amqp://{user}:{pw}@rabbit.internal:5672/%2F",
            f"Host={g.word()}.internal;Port=5432;Username={user};Password={pw};Database={g.word()}",
        ]
    )
    return template, pw


def _connections(split: Split, g: Gen, count: int) -> list[Case]:
    out = []
    for i in range(count):
        conn, pw = (_conn_tune if split == "tune" else _conn_heldout)(g)
        where = g.r.randrange(3)
        if where == 0:
            steps = [call("query", {"connection_string": conn, "sql": "select 1"})]
        elif where == 1:
            steps = [result_text(f"Connecting with {conn}\nok\n")]
        else:
            steps = [call("configure", {"database": {"url": conn}})]
        out.append(Case(F, tuple(steps), ANY, split, f"connection string #{i}", (pw,)))
    return out


def _bearer(split: Split, g: Gen, count: int) -> list[Case]:
    out = []
    for i in range(count):
        token = g.chars(g.int(32, 64), URLSAFE)
        if split == "tune":
            steps = [
                call(
                    "fetch",
                    {"url": "https://api.internal/v1/me", "headers": {"Authorization": f"Bearer {token}"}},
                )
            ]
        else:
            steps = [
                result_text(f"> GET /me HTTP/2\n> authorization: bearer {token}\n> user-agent: curl/8.5\n")
            ]
        out.append(Case(F, tuple(steps), ANY, split, f"bearer #{i}", (token,)))
    return out


# -- negatives --------------------------------------------------------------------------------------


def _ordinary_args(g: Gen, split: Split) -> list[dict[str, object]]:
    """Credential-sounding keys holding ordinary values."""
    if split == "tune":
        return [
            {"password": "required", "username": "required"},
            {"token_count": 12, "max_tokens": 100, "model": "gpt-4o"},
            {"secret": False, "public": True},
            {"password_min_length": "12", "passwordPolicy": "strong"},
            {"token_type": "Bearer", "expires_in": 3600},
            {"auth": "oauth2", "auth_method": "password"},
            {"api_key": "${OPENAI_API_KEY}", "model": "gpt-4o-mini"},
            {"password": "<your-password>", "user": "admin"},
            {"token": "{{ secrets.GITHUB_TOKEN }}"},
            {"password": "changeme"},
            {"api_key": "xxxxxxxxxxxxxxxxxxxxxxxx"},
            {"secret": "********"},
            {
                "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
                "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            },
            {"OPENAI_API_KEY": "sk-..."},
            {
                "authorization_endpoint": "https://auth.example.com/oauth2/authorize",
                "token_endpoint": "https://auth.example.com/oauth2/token",
            },
            {"pwd": f"/home/{g.word()}/src/{g.word()}"},
            {"nextPageToken": g.chars(40, URLSAFE)},
            {"password_hash": "$2b$12$" + g.chars(53, ALNUM + "./")},
            {
                "secret_name": f"prod/{g.word()}/db",
                "secretsManagerArn": (
                    f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{g.word()}-AbCdEf"
                ),
            },
            {"tokens": ["the", "quick", "brown", "fox"], "tokenizer": "cl100k_base"},
            {"public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + g.chars(43, B64) + " dev@laptop"},
            {"key": f"src/{g.word()}/{g.word()}.py", "value": "def main(): pass"},
            {"password": "hidden", "token": "none"},
            {"auth": {"type": "bearer", "scopes": ["read", "write"]}},
        ]
    return [
        {"passwordRequired": "true", "passwordResetUrl": "https://id.example.org/reset"},
        {"token_limit": "4096", "tokens_used": "1523"},
        {"secret": "no", "visibility": "internal"},
        {"PASSWORD": "${DB_PASSWORD}", "HOST": "${DB_HOST}"},
        {"api-key": "<API_KEY>", "region": "us-east-1"},
        {"client_secret": "YOUR_CLIENT_SECRET"},
        {"password": "********", "confirm": "********"},
        {"Authorization": "Bearer <token>"},
        {"token": "$(cat ~/.token)"},
        {"passphrase": "null"},
        {"PWD": "/usr/src/app", "OLDPWD": "/usr/src"},
        {"progressToken": g.uuid(), "cursor": g.chars(32, URLSAFE)},
        {"idempotency_key": g.uuid(), "request_id": g.uuid()},
        {"sha256": g.chars(64, HEX), "etag": '"' + g.chars(32, HEX) + '"'},
        {"secretRef": {"name": "db-credentials", "key": "password"}},
        {"auth_type": "api_key", "key_location": "header"},
        {"credentials_file": "~/.aws/credentials", "profile": "default"},
        {"token_url": "https://oauth2.googleapis.com/token", "scope": "openid email"},
        {
            "keyId": "projects/p/locations/global/keyRings/r/cryptoKeys/k",
            "algorithm": "RSA_SIGN_PSS_2048_SHA256",
        },
        {"password": "Password must contain at least 8 characters"},
        {"session_timeout": "30m", "passes": "3"},
        {"commit": g.chars(40, HEX), "tree": g.chars(40, HEX)},
    ]


def _ordinary_lists(g: Gen, split: Split) -> list[Step]:
    """Env lists, headers and configs with credential-looking names but no credential value."""
    if split == "tune":
        return [
            structured_result(
                {
                    "env": [
                        {
                            "name": "DB_PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                        },
                        {"name": "DB_HOST", "value": "db.internal"},
                    ]
                }
            ),
            structured_result(
                {"env": [{"name": "NODE_ENV", "value": "production"}, {"name": "TOKEN_TTL", "value": "3600"}]}
            ),
            call(
                "http_request",
                {
                    "header": [
                        {"key": "Accept", "value": "application/json"},
                        {"key": "X-Request-Id", "value": g.uuid()},
                    ]
                },
            ),
            result_text("DB_PASSWORD=\nAPI_KEY=\nSECRET_KEY=changeme\n"),
            result_text("password: ${POSTGRES_PASSWORD}\ntoken: '{{ vault_token }}'\n"),
            result_text("Set the PASSWORD environment variable and pass --token on the command line.\n"),
            result_text("The token expires after 3600 seconds; refresh it with the refresh endpoint."),
            call("run_command", {"args": ["--password-file", "/run/secrets/db_password", "--verbose"]}),
            call("run_command", {"command": "psql --host db --username app --no-password -c 'select 1'"}),
            result_text("postgres://app@db.internal:5432/orders\nhttps://api.github.com/repos/o/r\n"),
            result_text("Password: ********\nAPI key: sk-...abcd (hidden)\n"),
            result_text(
                "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
            ),
        ]
    return [
        result_text(
            "      - name: POSTGRES_PASSWORD\n        valueFrom:\n"
            "          secretKeyRef:\n            name: pg\n            key: password\n"
        ),
        result_text(
            '<add key="PasswordMinLength" value="12" />\n<add key="TokenLifetime" value="01:00:00" />'
        ),
        result_text("[auth]\nmethod = token\ntoken_ttl = 3600\npassword_required = true\n"),
        result_text("environment:\n  - POSTGRES_PASSWORD_FILE=/run/secrets/pg\n  - POSTGRES_USER=app\n"),
        call("run_command", {"command": "curl -H 'Authorization: Bearer $TOKEN' https://api.internal/v1/me"}),
        result_text("spring.datasource.password=${DB_PASSWORD}\nspring.datasource.username=app\n"),
        result_text("Forgot your password? Enter your e-mail and we'll send a reset link."),
        result_text("mongodb+srv://cluster0.ab1cd.mongodb.net/test?retryWrites=true&w=majority"),
        result_text(
            "Server=tcp:db.database.windows.net,1433;Database=app;Authentication=Active Directory Default;"
        ),
        structured_result(
            {
                "Environment": [
                    {"Name": "LOG_LEVEL", "Value": "info"},
                    {
                        "Name": "SECRET_ARN",
                        "Value": "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-Xy12Ab",
                    },
                ]
            }
        ),
        result_text(
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"
            + g.chars(64, B64)
            + "\n-----END PUBLIC KEY-----\n"
        ),
        result_text("export OPENAI_API_KEY=sk-...\nexport ANTHROPIC_API_KEY=your-key-here\n"),
    ]


def _references(split: Split, g: Gen) -> list[Step]:
    """Names of secrets (Kubernetes/Helm references, CI expressions), forms and schemas: no value."""
    if split == "tune":
        return [
            result_text(
                "postgresql:\n  auth:\n    existingSecret: postgresql-credentials-secret\n"
                "    secretKeys:\n      adminPasswordKey: postgres-password\n"
            ),
            result_text("tls:\n  - hosts: [app.example.com]\n    secretName: tls-wildcard-example-com\n"),
            result_text(
                "jobs:\n  publish:\n    steps:\n      - run: npm publish\n        env:\n"
                "          NODE_AUTH_TOKEN: ${{ secrets.NPM_TOKEN }}\n"
            ),
            result_text(
                '<form><input type="password" name="password" autocomplete="current-password"></form>'
            ),
            structured_result(
                {"properties": {"password": {"type": "string", "format": "password", "minLength": 12}}}
            ),
            structured_result(
                {"apiKeySecretRef": "datadog-api-key-secret", "tokenSecretName": "cluster-issuer-key"}
            ),
        ]
    return [
        result_text(
            "auth:\n  existingSecret: redis-auth-secret\n  existingSecretPasswordKey: redis-password\n"
        ),
        result_text("spec:\n  secretName: letsencrypt-prod-account-key\n"),
        result_text("steps:\n  - script: deploy.sh\n    env:\n      API_TOKEN: $(API_TOKEN)\n"),
        result_text('<label for="pwd">Password</label><input id="pwd" type="password" name="pwd" required>'),
        structured_result({"secretKeyRef": {"name": "mysql-root-credentials", "key": "mysql-root-password"}}),
        structured_result(
            {"clientSecretName": "oauth-proxy-client", "passwordSecret": "grafana-admin-secret"}
        ),
    ]


def _negatives(split: Split, g: Gen) -> list[Case]:
    out = []
    for i, step in enumerate(_references(split, g)):
        out.append(Case(F, (step,), (), split, f"secret reference #{i}"))
    for i, args in enumerate(_ordinary_args(g, split)):
        step = call("configure", args) if i % 2 == 0 else structured_result(args, "get_settings")
        out.append(Case(F, (step,), (), split, f"ordinary value #{i}: {sorted(args)}"))
    for i, step in enumerate(_ordinary_lists(g, split)):
        out.append(Case(F, (step,), (), split, f"ordinary config #{i}"))
    # recorded traffic of real servers: tune gets filesystem, held-out gets everything
    sessions = ordinary_steps()
    names = ("filesystem", "fs_tools_list") if split == "tune" else ("everything", "everything_tools_list")
    for name in names:
        for j, step in enumerate(sessions[name]):
            out.append(Case(F, (step,), (), split, f"{name} message #{j}"))
    return out


def cases() -> list[Case]:
    out: list[Case] = []
    for split, seed in (("tune", 11), ("heldout", 7011)):
        g = Gen(seed)
        out += _keyed(split, g, 160 if split == "tune" else 90)
        out += _connections(split, g, 20 if split == "tune" else 12)
        out += _bearer(split, g, 10 if split == "tune" else 6)
        out += _negatives(split, g)
    return out
