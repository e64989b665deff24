"""The ``km`` executable: ``km monitor`` on its fast path when it can (cli/relay.py), else the
whole command line interface (cli/main.py)."""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["monitor"]:
        from .relay import fast_monitor

        code = fast_monitor(args[1:])
        if code is not None:
            sys.exit(code)
    from .main import main as cli

    cli()


if __name__ == "__main__":
    main()
