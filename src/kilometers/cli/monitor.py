"""``km monitor [OPTIONS] -- CMD [ARGS...]``: run an MCP server through km and record its traffic.

Nothing here writes to stdout: stdout belongs to the MCP client.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING, Any

import click

from ..agent.link import AgentLink
from ..host import SessionHandle
from ..model import Session
from ..paths import data_dir
from ..proxy.stdio import ServerStartError, StdioProxy
from ..recorder_process import RecorderProcess
from .common import recording_options, recording_policy, recording_settings
from .relay import SWITCH_INTERVAL, guess_name

if TYPE_CHECKING:
    from ..agent.proxy import OwnHost
    from ..config import Settings
    from ..security import Policy


@click.command(context_settings={"allow_interspersed_args": False}, options_metavar="[OPTIONS] --")
@click.option(
    "--server", "server_flag", is_flag=True, help="Accepted for compatibility; the command follows `--`."
)
@click.option("--name", help="Name of this server in the records (default: guessed from the command).")
@click.option(
    "--grace-period",
    type=click.FloatRange(min=0),
    help="Seconds before a server is terminated after stdin closes.",
)
@recording_options
@click.option(
    "--metrics-port", type=click.IntRange(1, 65535), help="Serve Prometheus metrics on 127.0.0.1:PORT."
)
@click.option("--url", help="Bridge to a remote server (Streamable HTTP, or SSE for .../sse) instead of CMD.")
@click.option(
    "--header", "headers", multiple=True, help="With --url: an HTTP header 'Name: value' (repeatable)."
)
@click.option(
    "--transport",
    type=click.Choice(["auto", "streamable_http", "sse"]),
    default="auto",
    show_default=True,
    help="With --url: the upstream transport.",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="COMMAND [ARGS]...")
def monitor(
    server_flag: bool,
    name: str | None,
    db_url: str | None,
    exclude_ping: bool | None,
    include_method: tuple[str, ...],
    exclude_method: tuple[str, ...],
    payload_limit: int | None,
    grace_period: float | None,
    policy: str | None,
    redact_pii: bool | None,
    otel: bool | None,
    otel_payloads: bool | None,
    otel_legacy_names: bool | None,
    metrics_port: int | None,
    url: str | None,
    headers: tuple[str, ...],
    transport: str,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND as an MCP server, relay stdio unchanged and record every message (with --url
    instead of COMMAND: bridge to a remote server)."""
    # never keep a server from starting over a broken config file or variable: say so, go on
    settings = recording_settings(locals(), grace_period=grace_period, metrics_port=metrics_port)

    if bool(url) == bool(command):
        raise click.UsageError("give either the server's command after `--`, or --url for a remote server")
    if headers and not url:
        raise click.UsageError("--header only applies with --url")
    # but a policy that cannot be used stops km here: the user believes the server is protected
    rules = recording_policy(settings)
    sys.setswitchinterval(SWITCH_INTERVAL)
    cmd = list(command)
    if url:
        from urllib.parse import urlsplit

        from ..proxy.bridge import guess_transport, parse_header

        try:
            parsed_headers = dict(parse_header(h) for h in headers)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--header") from None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise click.BadParameter(f"expected an http(s) URL, got {url!r}", param_hint="--url")
        from ..proxy.http import display_url

        safe_url = display_url(url)  # no credentials, no token-like query values
        kind = guess_transport(url) if transport == "auto" else transport
        session = Session(command=[safe_url], cwd=os.getcwd(), name=name or parts.hostname, transport=kind)
    else:
        session = Session(command=cmd, cwd=os.getcwd(), name=name or guess_name(cmd))
    from ..host import Host

    if url:
        from ..proxy.bridge import run_bridge

        # the agent records, as for a command (a blocking policy decides here); with
        # `recorder_process = false`, this process does
        bridge_host: Host | None = None
        own: OwnHost | None = None
        bridged: SessionHandle | AgentLink
        if settings.recorder_process and settings.agent:
            info = {"command": session.command, "cwd": session.cwd, "name": session.name,
                    "transport": session.transport}  # fmt: skip
            bridged, own = agent_link(settings, rules, info)
            bridged.start()
        else:
            bridge_host = Host(settings, policy=rules, metrics_port=settings.metrics_port).start()
            bridged = bridge_host.open_session(session)
        code = run_bridge(url, parsed_headers, bridged, transport=transport)
        # clients SIGTERM their server ~2 s after closing stdin: finish writing the records first
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        bridged.close(code, timeout=60)
        if bridge_host is not None:
            bridge_host.close()
        if own is not None:
            own.close()
        sys.stderr.flush()
        sys.exit(code)
    # the recorder runs in another process (the user's agent, else a child with its own Host),
    # so its work never holds this process's GIL while chunks are forwarded; a blocking policy
    # decides on the forwarding path, here, with the analysis but no store
    host: Host | None = None
    own = None
    recorder: SessionHandle | RecorderProcess | AgentLink
    if settings.recorder_process and settings.agent:
        info = {"command": session.command, "cwd": session.cwd, "name": session.name}
        recorder, own = agent_link(settings, rules, info)
    elif rules.mode == "block" or not settings.recorder_process:
        host = Host(settings, policy=rules, metrics_port=settings.metrics_port).start()
        recorder = host.open_session(session, start=False)
    else:
        recorder = RecorderProcess(settings, session, settings.metrics_port)
    gate = recorder.gate if isinstance(recorder, SessionHandle | AgentLink) else None
    proxy = StdioProxy(cmd, recorder.submit, grace_period=settings.grace_period, gate=gate)
    try:
        session.pid = proxy.start()
    except ServerStartError as exc:
        click.echo(str(exc), err=True)
        if host is not None:
            host.close()
        sys.exit(exc.exit_code)
    if isinstance(recorder, AgentLink):
        recorder.session_info["pid"] = session.pid
    try:
        recorder.start()
    except OSError as exc:
        click.echo(f"km: cannot start the recorder process ({exc}); recording in-process", err=True)
        host = Host(settings, policy=rules, metrics_port=settings.metrics_port).start()
        recorder = host.open_session(session)
        proxy.on_chunk = recorder.submit
    code = proxy.run()
    if isinstance(recorder, SessionHandle):
        recorder.close(proxy.status, timeout=60)
    else:
        recorder.stop(proxy.status, timeout=60)
    if host is not None:
        host.close()
    if own is not None:
        own.close()
    sys.stderr.flush()
    sys.exit(code)


def agent_link(settings: Settings, rules: Policy, info: dict[str, Any]) -> tuple[AgentLink, OwnHost | None]:
    """The session's link to the agent. With a blocking policy, its gate decides here and this
    process's own host (started only then) records if the agent goes away: its recorder answers
    the gate's questions, which a recorder process could not."""
    from ..agent.proxy import OwnHost

    if rules.mode != "block":
        return AgentLink(settings, info, data_dir()), None
    own = OwnHost(settings, rules, metrics_port=settings.metrics_port)
    return AgentLink(settings, info, data_dir(), fallback=own.fallback, policy=rules), own
