"""``km serve`` (the team server) and ``km admin …`` (organizations, keys, data rights)."""

from __future__ import annotations

import sys

import click
import orjson

from .. import config
from .common import db_failure, echo_json, fail, freeze_startup_heap


def _settings(**flags: object) -> config.Settings:
    """Settings from these flags, the environment, the config file and the defaults."""
    try:
        return config.load(flags)
    except config.ConfigError as exc:
        fail(str(exc), 2)


def _engine(db_url: str | None, check: bool = True, migrate: bool = False):  # type: ignore[no-untyped-def]
    """An engine on the team server's database: a new, empty one is created at the current
    schema; one at an older revision is refused (migrated with ``migrate``)."""
    from ..store import db

    url = _settings(db_url=db_url).db_url
    engine = db.make_engine(url)
    if check:
        try:
            db.ensure_current(engine, create=True, migrate=migrate)
        except db.SchemaOutOfDate as exc:
            fail(str(exc))
        except Exception as exc:
            fail(db_failure("cannot open the database", exc, url))
    return engine


db_url_option = click.option(
    "--db",
    "db_url",
    help="Database URL (postgresql://… or sqlite:///…; also KM_DB); default: local SQLite.",
)


@click.command("serve")
@click.option("--host", help="Address to listen on (default 127.0.0.1; also KM_SERVER_HOST).")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Port to listen on (default 8000; also KM_SERVER_PORT)."
)
@db_url_option
@click.option(
    "--max-body-mb",
    type=click.FloatRange(min=0.001),
    help="Largest request body in MB, also after gunzip (default 10; also KM_SERVER_MAX_BODY_MB).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    help="Requests/s per key or signed-in user, burst twice that; 0: no limit (default 50; "
    "also KM_SERVER_RATE).",
)
@click.option(
    "--metrics-token", help="Bearer token Prometheus sends to read /metrics (also KM_METRICS_TOKEN)."
)
@click.option(
    "--metrics-public",
    is_flag=True,
    default=None,
    help="Serve /metrics without a token (private networks only; also KM_METRICS_PUBLIC).",
)
@click.option(
    "--redact/--no-redact",
    default=None,
    help="Redact secrets left in uploaded events before storing them (default; --no-redact trusts "
    "the clients; also KM_SERVER_REDACT).",
)
@click.option(
    "--analysis/--no-analysis",
    default=None,
    help="Check uploaded events for secrets, personal data, dangerous calls and tool poisoning "
    "(default; --no-analysis leaves only the secrets redaction; also KM_SERVER_ANALYSIS).",
)
@click.option(
    "--oidc-issuer",
    help="OpenID Connect provider (issuer URL) for single sign-on; off when not given (also KM_OIDC_ISSUER).",
)
@click.option("--oidc-client-id", help="Client id registered at the provider (also KM_OIDC_CLIENT_ID).")
@click.option(
    "--oidc-client-secret",
    help="Client secret (prefer the environment variable KM_OIDC_CLIENT_SECRET over the flag).",
)
@click.option(
    "--oidc-name",
    help='Provider name on the login page ("Sign in with <name>"; default: OpenID Connect; '
    "also KM_OIDC_NAME).",
)
@click.option(
    "--oidc-scopes",
    help='Scopes requested (must include openid and give the email claim; default: "openid email '
    'profile"; also KM_OIDC_SCOPES).',
)
@click.option(
    "--oidc-redirect-uri",
    help="Callback URL registered at the provider; default: <URL the browser used>/auth/oidc/callback "
    "(also KM_OIDC_REDIRECT_URI).",
)
@click.option(
    "--migrate",
    is_flag=True,
    help="Migrate a database at an older schema revision first (as `km db upgrade` does); "
    "a new, empty database is always created.",
)
def serve_cmd(
    host: str | None,
    port: int | None,
    db_url: str | None,
    max_body_mb: float | None,
    rate: float | None,
    metrics_token: str | None,
    metrics_public: bool | None,
    redact: bool | None,
    analysis: bool | None,
    oidc_issuer: str | None,
    oidc_client_id: str | None,
    oidc_client_secret: str | None,
    oidc_name: str | None,
    oidc_scopes: str | None,
    oidc_redirect_uri: str | None,
    migrate: bool,
) -> None:
    """Run the team server (ingestion and query API)."""
    import uvicorn

    from ..server.app import ServerSettings, create_app
    from ..server.oidc import OidcSettings, check_discovery
    from ..store import db

    chosen = _settings(
        db_url=db_url,
        metrics_token=metrics_token,
        server_redact=redact,
        server_analysis=analysis,
        oidc_issuer=oidc_issuer,
        oidc_client_id=oidc_client_id,
        oidc_client_secret=oidc_client_secret,
        oidc_name=oidc_name,
        oidc_scopes=oidc_scopes,
        oidc_redirect_uri=oidc_redirect_uri,
        server_host=host,
        server_port=port,
        server_max_body_mb=max_body_mb,
        server_rate=rate,
        metrics_public=metrics_public,
    )
    db_url, metrics_token = chosen.db_url, chosen.metrics_token
    host, port = chosen.server_host, chosen.server_port
    redact, analysis = chosen.server_redact, chosen.server_analysis
    oidc_issuer, oidc_client_id = chosen.oidc_issuer, chosen.oidc_client_id
    oidc_client_secret, oidc_redirect_uri = chosen.oidc_client_secret, chosen.oidc_redirect_uri
    oidc: OidcSettings | None = None
    given = {
        "--oidc-issuer (KM_OIDC_ISSUER)": oidc_issuer,
        "--oidc-client-id (KM_OIDC_CLIENT_ID)": oidc_client_id,
        "--oidc-client-secret (KM_OIDC_CLIENT_SECRET)": oidc_client_secret,
    }
    if any(given.values()):
        missing = [name for name, value in given.items() if not value]
        if missing:
            fail(f"OpenID Connect sign-in needs {', '.join(missing)} too (or none of them to turn it off)", 2)
        try:
            oidc = OidcSettings(
                issuer=oidc_issuer or "",
                client_id=oidc_client_id or "",
                client_secret=oidc_client_secret or "",
                name=chosen.oidc_name,
                scopes=chosen.oidc_scopes,
                redirect_uri=oidc_redirect_uri,
            )
        except ValueError as exc:
            fail(str(exc), 2)
        problem = check_discovery(oidc)
        if problem:
            click.echo(
                f"km serve: warning: OpenID Connect sign-in fails until this is fixed: {problem}", err=True
            )

    engine = db.make_engine(db_url)
    try:  # a new database is created here; one at an older revision only with --migrate
        db.ensure_current(engine, create=True, migrate=migrate)
    except db.SchemaOutOfDate as exc:
        fail(f"{exc} (or start with `km serve --migrate`)")
    except Exception as exc:
        fail(db_failure("cannot start: cannot open the database", exc, db_url))
    finally:
        engine.dispose()
    settings = ServerSettings(
        db_url=db_url,
        max_body_bytes=int(chosen.server_max_body_mb * 1024 * 1024),
        rate_per_second=chosen.server_rate,
        rate_burst=chosen.server_rate * 2,
        metrics_token=metrics_token,
        metrics_public=chosen.metrics_public,
        redact_secrets=redact,
        analysis=analysis,
        oidc=oidc,
    )
    try:
        app = create_app(settings=settings)
    except db.SchemaOutOfDate as exc:
        fail(str(exc))
    except Exception as exc:
        fail(db_failure("cannot start: cannot reach the database", exc, db_url))
    click.echo(f"km serve: http://{host}:{port} ({db.resolve_url(db_url).split('@')[-1]})", err=True)
    if not analysis:
        click.echo(
            "km serve: analysis of uploads is off (--no-analysis): only secrets are redacted", err=True
        )
    freeze_startup_heap()
    # live streams never end on their own: give them a few seconds on shutdown, then close them
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)


@click.group("admin")
def admin_group() -> None:
    """Manage organizations and API keys on a team server's database."""


@admin_group.command("create-org")
@click.argument("name")
@click.option(
    "--plan",
    default="free",
    show_default=True,
    type=click.Choice(["free", "team", "unlimited"]),
    help="Sets the monthly event limit and the retention (see `km admin set-limits`).",
)
@db_url_option
def create_org(name: str, plan: str, db_url: str | None) -> None:
    """Create an organization."""
    from ..server import tenancy

    try:
        org = tenancy.create_org(_engine(db_url), name, plan)
    except tenancy.TenancyError as exc:
        fail(str(exc))
    click.echo(f"created organization {org.name} ({org.id}), plan {org.plan}")


@admin_group.command("list-orgs")
@db_url_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_orgs(db_url: str | None, as_json: bool) -> None:
    """List organizations."""
    from ..server import tenancy

    for org in tenancy.list_orgs(_engine(db_url)):
        if as_json:
            echo_json(org.to_dict())
        else:
            limit = org.events_per_month if org.events_per_month is not None else "unlimited"
            click.echo(
                f"{org.id}  {org.name}  plan={org.plan}  events/month={limit}  "
                f"retention={f'{org.retention_days}d' if org.retention_days is not None else 'none'}"
            )


@admin_group.command("set-limits")
@click.option("--org", "org_name", required=True, help="Organization name or id.")
@click.option(
    "--events-per-month", type=click.IntRange(min=0), help="New monthly limit (default: unchanged)."
)
@click.option("--retention-days", type=click.IntRange(min=1), help="New retention (default: unchanged).")
@click.option("--unlimited-events", is_flag=True, help="Remove the monthly limit.")
@click.option("--keep-forever", is_flag=True, help="Remove the retention limit.")
@db_url_option
def set_limits(
    org_name: str,
    events_per_month: int | None,
    retention_days: int | None,
    unlimited_events: bool,
    keep_forever: bool,
    db_url: str | None,
) -> None:
    """Set an organization's limits (options not given keep their current value)."""
    from ..server import tenancy

    engine = _engine(db_url)
    try:
        org = tenancy.get_org(engine, org_name)
        events = (
            None
            if unlimited_events
            else (events_per_month if events_per_month is not None else org.events_per_month)
        )
        days = (
            None if keep_forever else (retention_days if retention_days is not None else org.retention_days)
        )
        org = tenancy.set_limits(engine, org, events, days)
    except tenancy.TenancyError as exc:
        fail(str(exc))
    click.echo(f"{org.name}: events/month={org.events_per_month} retention_days={org.retention_days}")


@admin_group.command("create-key")
@click.option("--org", "org_name", required=True, help="Organization name or id.")
@click.option(
    "--scope",
    default="ingest",
    show_default=True,
    type=click.Choice(["ingest", "read", "admin"]),
    help="ingest uploads events, read queries them, admin does both and manages the organization.",
)
@click.option("--name", help="A label for the key.")
@db_url_option
def create_key(org_name: str, scope: str, name: str | None, db_url: str | None) -> None:
    """Create an API key and print it (the only time it is shown)."""
    from ..server import tenancy

    engine = _engine(db_url)
    try:
        key = tenancy.create_key(engine, tenancy.get_org(engine, org_name), scope, name)
    except tenancy.TenancyError as exc:
        fail(str(exc))
    click.echo("store this key now; it will not be shown again:", err=True)
    click.echo(key)


@admin_group.command("list-keys")
@click.option("--org", "org_name", help="Only this organization's keys.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@db_url_option
def list_keys(org_name: str | None, as_json: bool, db_url: str | None) -> None:
    """List API keys (never the keys themselves)."""
    from ..server import tenancy

    engine = _engine(db_url)
    try:
        org = tenancy.get_org(engine, org_name) if org_name else None
    except tenancy.TenancyError as exc:
        fail(str(exc))
    for key in tenancy.list_keys(engine, org):
        if as_json:
            echo_json(key.to_dict())
        else:
            state = "revoked" if key.revoked_ns else "active"
            click.echo(f"{key.id}  {key.prefix}…  scope={key.scope}  {state}  {key.name or ''}")


@admin_group.command("revoke-key")
@click.argument("key_id")
@db_url_option
def revoke_key(key_id: str, db_url: str | None) -> None:
    """Revoke an API key by its id (see list-keys)."""
    from ..server import tenancy

    try:
        key = tenancy.revoke_key(_engine(db_url), key_id)
    except tenancy.TenancyError as exc:
        fail(str(exc))
    click.echo(f"revoked {key.id} ({key.prefix}…)")


@admin_group.command("export-org")
@click.argument("org_name")
@db_url_option
def export_org(org_name: str, db_url: str | None) -> None:
    """Write everything an organization stored to stdout as JSON lines ({"table": …, "row": …})."""
    from ..server import tenancy

    engine = _engine(db_url)
    try:
        org = tenancy.get_org(engine, org_name)
    except tenancy.TenancyError as exc:
        fail(str(exc))
    out = sys.stdout.buffer
    for table, row in tenancy.export_org(engine, org):
        out.write(orjson.dumps({"table": table, "row": row}, option=orjson.OPT_NON_STR_KEYS) + b"\n")
    out.flush()


@admin_group.command("delete-org")
@click.argument("org_name")
@click.option("--yes", is_flag=True, help="Confirm: erase everything this organization stored.")
@db_url_option
def delete_org(org_name: str, yes: bool, db_url: str | None) -> None:
    """Erase an organization and everything it stored."""
    from ..server import tenancy

    engine = _engine(db_url)
    try:
        org = tenancy.get_org(engine, org_name)
    except tenancy.TenancyError as exc:
        fail(str(exc))
    if not yes:
        fail(f"this erases all data of {org.name!r}; run again with --yes to confirm", 2)
    removed = tenancy.delete_org(engine, org)
    click.echo(f"deleted {org.name}: " + ", ".join(f"{n} {t}" for t, n in removed.items() if n))


@admin_group.command("prune")
@click.option("--org", "org_name", help="Only this organization (default: all).")
@db_url_option
def prune(org_name: str | None, db_url: str | None) -> None:
    """Drop data older than each organization's retention now (the server also does it hourly)."""
    from ..server import tenancy
    from ..server.retention import apply_retention

    engine = _engine(db_url)
    try:
        org_id = tenancy.get_org(engine, org_name).id if org_name else None
    except tenancy.TenancyError as exc:
        fail(str(exc))
    for name, n in apply_retention(engine, org_id=org_id).items():
        click.echo(f"{name}: removed {n} events")


@admin_group.command("create-user")
@click.argument("email")
@click.option("--org", "org_name", required=True, help="Organization to add the user to.")
@click.option(
    "--role",
    default="member",
    show_default=True,
    type=click.Choice(["owner", "admin", "member", "viewer"]),
    help="The user's role in that organization.",
)
@click.option("--password", help="Initial password (prompted for when omitted).")
@click.option(
    "--sso-only",
    is_flag=True,
    help="No password: the user signs in with OpenID Connect only (km serve --oidc-issuer …).",
)
@db_url_option
def create_user(
    email: str, org_name: str, role: str, password: str | None, sso_only: bool, db_url: str | None
) -> None:
    """Create a dashboard user (or add an existing one, who keeps their own credentials) with a
    role in an organization, at once (Settings invites instead)."""
    from ..server import accounts, tenancy

    if sso_only and password is not None:
        fail("give either --password or --sso-only, not both", 2)
    engine = _engine(db_url)
    try:
        org = tenancy.get_org(engine, org_name)
        user = accounts.get_user(engine, email)
        if user is not None and (password is not None or sso_only):
            click.echo(
                f"km admin: {user.email} already exists; adding them with their own credentials", err=True
            )
        if user is None:
            if sso_only:
                user = accounts.create_user(engine, email, None)
            else:
                if password is None:
                    password = click.prompt("password", hide_input=True, confirmation_prompt=True, err=True)
                user = accounts.create_user(engine, email, password or "")
        accounts.set_member(engine, org, user, role)
    except tenancy.TenancyError as exc:
        fail(str(exc))
    click.echo(f"{user.email} is {role} of {org.name}")
