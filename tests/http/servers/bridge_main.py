"""What ``km monitor --url URL [--header 'K: V']... [--policy FILE]`` runs, as a plain script for the tests.

Until the lead wires ``run_bridge`` into ``km monitor``, the bridge tests spawn this script as
the "server" of a stdio client. It opens the session on a :class:`~kilometers.host.Host` the way
``km monitor`` does (store under ``$KM_HOME``) and calls :func:`kilometers.proxy.bridge.run_bridge`.

    python bridge_main.py URL [--policy FILE] ['Header: value' ...]
"""

from __future__ import annotations

import os
import signal
import sys

from kilometers import config
from kilometers.host import Host
from kilometers.model import Session
from kilometers.proxy.bridge import guess_transport, parse_header, run_bridge
from kilometers.proxy.http import display_url, guess_name


def main() -> int:
    url = sys.argv[1]
    args = sys.argv[2:]
    settings = config.Settings()
    if args[:1] == ["--policy"]:
        settings.policy = args[1]
        args = args[2:]
    headers = dict(parse_header(h) for h in args)
    session = Session(
        command=[display_url(url)], cwd=os.getcwd(), name=guess_name(url), transport=guess_transport(url)
    )
    host = Host(settings).start()
    recording = host.open_session(session)
    code = run_bridge(url, headers, recording)
    # the client closed stdin and may send SIGTERM soon: finish writing the records first
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    recording.close(code, timeout=60)
    host.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
