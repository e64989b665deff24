"""``km monitor``'s fast path: forward first, with the fewest imports, and let the agent record.

``km monitor [--name NAME] [--server] [--grace-period S] -- CMD ...`` is what a client's config
runs for every server it starts. When the agent records (the default) and no policy is set,
this path starts the server and forwards its bytes before km has imported its settings, click,
the store or the analysis: the link thread resolves the settings and hands the session to the
agent in the background (agent/link.py), buffering what was forwarded meanwhile.

Anything else (other flags, a policy, the agent or the recorder process turned off, a config
file km cannot read) returns None, and ``km monitor`` runs in full (cli/monitor.py), which
decides the same way with the settings in hand.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping

RUNNERS = {
    "npx", "uvx", "bunx", "pnpx", "node", "python", "python3", "uv", "deno", "bun", "pipx", "run", "-m",
}  # fmt: skip
SWITCH_INTERVAL = 0.0005
"""Seconds a busy thread may hold the GIL before a forwarding thread gets it back."""
DECIDING_VARIABLES = ("KM_POLICY", "KM_AGENT", "KM_RECORDER_PROCESS")
"""Variables that decide whether this path may be taken (whatever their value: the registry
reads them, on the full path)."""
DECIDING = (b"policy", b"agent", b"recorder_process")
"""Config file keys that decide whether this path may be taken."""


def guess_name(command: list[str]) -> str:
    """A readable server name from its command: ``npx -y @scope/server-x@1`` -> ``server-x``."""
    for arg in command:
        if arg.startswith("-"):
            continue
        base = os.path.basename(arg)
        if base.lower().removesuffix(".exe") in RUNNERS:
            continue
        if arg.startswith("@") and "/" in arg:
            base = arg.split("/", 1)[1]
        return base.split("@", 1)[0] or base
    return os.path.basename(command[0]) if command else "server"


def parse(args: list[str]) -> tuple[dict[str, str], list[str]] | None:
    """The simple options and the command, or None for anything this path does not take."""
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            command = args[i + 1 :]
            return (options, command) if command else None
        if arg == "--server":
            i += 1
            continue
        name, eq, value = arg.partition("=")
        if name not in ("--name", "--grace-period"):
            return None
        if not eq:
            if i + 1 >= len(args):
                return None
            value = args[i + 1]
            i += 1
        options[name[2:]] = value
        i += 1
    return None


def _config_says_full() -> bool:
    """Whether the config file sets the policy, the agent or the recorder process (the full path
    reads them), or cannot be read (the full path says why)."""
    from ..paths import config_file

    try:
        raw = config_file().read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    if not any(key in raw for key in DECIDING):
        return False
    import tomllib

    try:
        monitor = tomllib.loads(raw.decode()).get("monitor", {})
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True
    if not isinstance(monitor, dict):
        return True
    if monitor.get("policy"):
        return True
    return monitor.get("agent", True) is not True or monitor.get("recorder_process", True) is not True


def eligible(environ: Mapping[str, str]) -> bool:
    """Whether this path may be taken: nothing that could set a policy or turn the agent off is
    given (its value is for the registry to read, on the full path)."""
    if any(var in environ for var in DECIDING_VARIABLES) or os.name != "posix":
        return False
    return not _config_says_full()


def fast_monitor(args: list[str]) -> int | None:
    """Run ``km monitor ARGS`` here and return its exit status, or None (take the full path)."""
    parsed = parse(args)
    if parsed is None or not eligible(os.environ):
        return None
    options, command = parsed
    grace: float | None = None
    if "grace-period" in options:
        try:
            grace = float(options["grace-period"])
        except ValueError:
            return None  # the full path says what is wrong with it
        if grace < 0:
            return None
    from ..frames import Handover
    from ..proxy.stdio import ServerStartError, StdioProxy

    sys.setswitchinterval(SWITCH_INTERVAL)
    proxy: StdioProxy

    def settings() -> object:
        """Resolved on the link thread, while bytes are already forwarded."""
        from .. import config

        overrides: dict[str, object] = {"grace_period": grace}
        resolved, problem = config.load_lenient(overrides)
        if problem:
            from ..agent.link import _warn

            _warn(f"km: {problem}")
        proxy.grace_period = resolved.grace_period
        return resolved

    name = options.get("name") or guess_name(command)
    info: dict[str, object] = {"command": command, "cwd": os.getcwd(), "name": name}
    handover = Handover()

    def link() -> None:
        """The agent's link, imported and run on its own thread: the server starts and bytes
        flow meanwhile (what they bring is kept in the handover)."""
        from ..agent.link import AgentLink
        from ..paths import data_dir

        AgentLink(settings, info, data_dir(), handover).run()  # type: ignore[arg-type]

    proxy = StdioProxy(command, handover.submit, grace_period=5.0 if grace is None else grace)
    try:
        info["pid"] = proxy.start()
    except ServerStartError as exc:
        sys.stderr.write(f"{exc}\n")
        return exc.exit_code
    thread = threading.Thread(target=link, name="km-link", daemon=True)
    thread.start()
    code = proxy.run()
    handover.end(proxy.status)
    thread.join(60)
    sys.stderr.flush()
    return code
